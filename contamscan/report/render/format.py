"""How numbers read in every rendering: percentages, intervals, differences, top labels."""

from __future__ import annotations

import re

# characters from the data that would reorder or hide what a report shows: bidi embeddings,
# overrides, isolates and marks, C0 controls but tab and line ends, DEL, C1 controls
_HIDDEN = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def visible_controls(text: str) -> str:
    """``text`` with each bidi or control character shown as its escape (``\\u202e``); text
    without any is returned unchanged."""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def pct(x: float, digits: int = 2) -> str:
    """A fraction as a percentage: ``pct(0.0759)`` is ``7.59%``; None is ``-``."""
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def ci_text(ci, digits: int = 2, sep: str = ", ", brackets: bool = True) -> str:
    """An interval of fractions as percentages: ``[6.57, 8.75]%`` (or ``6.57–8.75%``)."""
    inner = f"{100 * ci[0]:.{digits}f}{sep}{100 * ci[1]:.{digits}f}"
    return f"[{inner}]%" if brackets else f"{inner}%"


def pct1(x: float) -> str:
    """A share to one decimal (the style estimate's α): ``24.5%``."""
    return pct(x, 1)


def ci1(ci) -> str:
    return ci_text(ci, 1)


def ci_range(ci) -> str:
    """An interval as a range, for tables with little room: ``6.57–8.75%``."""
    return ci_text(ci, sep="–", brackets=False)


def points(x: float) -> str:
    """A difference of rates in percentage points, signed."""
    return f"{100 * x:+.2f} pts"


def ci_points(ci) -> str:
    return f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"


def arrow(a, b, fmt=lambda v: f"{v:,}") -> str:
    return f"{fmt(a)} → {fmt(b)}" if a != b else fmt(a)


def top_label(by_label: dict) -> str:
    if not by_label:
        return "-"
    label, n = max(by_label.items(), key=lambda kv: (kv[1], kv[0]))
    return f"{label} ({n})"


def top_family(share: dict | None) -> str:
    """What a shard's AI share resembles: its attribution's family, model and confidence,
    "none of these", or "-" (no AI share); "unreliable" when its α is."""
    if not share or not share.get("alpha"):
        text = "-"
    elif "attribution" not in share:  # (reports of older scans)
        label, w = max(share["by_label"].items(), key=lambda kv: (kv[1], kv[0])) if share.get("by_label") else ("-", 0)
        text = f"{label} ({100 * w:.0f}%)"
    else:
        a = share["attribution"] or {}
        if a.get("family"):
            model = f", {a['model']}" if a.get("model") else ""
            text = f"{a['family']}{model} (confidence {a['confidence']:.2f})"
        else:
            text = "none of these" if a.get("margin") is not None else "-"
    return text + (" — α unreliable" if share and share.get("warnings") else "")


def style_warnings(report: dict) -> list[str]:
    """The style estimate's warnings, for the renderers: the profile's own, then each shard's."""
    out = list((report.get("style") or {}).get("warnings", []))
    for s in report.get("shards", []):
        for w in (s.get("ai_share") or {}).get("warnings", []):
            out.append(f"{s['shard']}: {w}")
    return out


def fingerprint_words(share: dict | None, n: int = 8) -> str:
    if not share or not share.get("fingerprint"):
        return "-"
    return ", ".join(f"{w} ×{r:g}" for w, r in share["fingerprint"][:n])


def summary_lines(cmp: dict) -> list[str]:
    t = cmp["totals"]
    changed = sum(r["changed"] for r in cmp["shards"])
    only_new = [r["shard"] for r in cmp["shards"] if r["presence"] == "new only"]
    only_old = [r["shard"] for r in cmp["shards"] if r["presence"] == "old only"]
    both = len(cmp["shards"]) - len(only_new) - len(only_old)
    lines = [f"dataset: {pct(t['old']['rate'])} {ci_text(t['old']['ci95'])} → {pct(t['new']['rate'])} "
             f"{ci_text(t['new']['ci95'])}, {points(t['delta'])} (95% CI {ci_points(t['delta_ci95'])})"
             f"{', changed' if t['changed'] else ', within noise'}; flagged {arrow(t['old']['flagged'], t['new']['flagged'])}"
             f" of {arrow(t['old']['documents'], t['new']['documents'])} documents",
             f"shards: {both:,} in both ({changed:,} changed beyond noise), {len(only_new):,} only in "
             f"{cmp['new_name']}, {len(only_old):,} only in {cmp['old_name']}"]
    lines += [f"warning: {w}" for w in cmp["warnings"]]
    return lines
