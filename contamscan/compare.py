"""Two scans compared: what changed per shard and per model (``contamscan report --compare OLD NEW``).

A change is called out ("changed") when the 95% interval of the difference of the two rates
excludes zero: Newcombe's hybrid score interval (method 10 of Newcombe 1998), built from the
two Wilson intervals the reports already give, so a shard whose rate moved within its noise
is not called changed. Shards and models present in one scan only are listed as such.
"""

from __future__ import annotations

import math

from .report import ci_text, pct, wilson


def diff_ci(k1: int, n1: int, k0: int, n0: int) -> tuple[float, float]:
    """95% interval of p1 - p0 (p = k / n) by Newcombe's hybrid score method."""
    p1, p0 = (k1 / n1 if n1 else 0.0), (k0 / n0 if n0 else 0.0)
    l1, u1 = wilson(k1, n1)
    l0, u0 = wilson(k0, n0)
    d = p1 - p0
    return (d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


def _side(docs: int, flagged: int) -> dict:
    return {"documents": docs, "flagged": flagged, "rate": flagged / docs if docs else 0.0,
            "ci95": list(wilson(flagged, docs))}


def _delta(old: dict, new: dict) -> dict:
    lo, hi = diff_ci(new["flagged"], new["documents"], old["flagged"], old["documents"])
    return {"delta": new["rate"] - old["rate"], "delta_ci95": [lo, hi], "changed": lo > 0 or hi < 0}


def _differences(old: dict, new: dict) -> list[str]:
    """What besides the data differs between the two scans (results are then not comparable as such)."""
    out = []
    oi, ni = old.get("index", {}), new.get("index", {})
    if oi.get("params") != ni.get("params"):
        keys = sorted(k for k in set(oi.get("params", {})) | set(ni.get("params", {}))
                      if oi.get("params", {}).get(k) != ni.get("params", {}).get(k))
        out.append(f"the indexes were built with different parameters ({', '.join(keys)})")
    if oi.get("labels") != ni.get("labels") or oi.get("refs") != ni.get("refs"):
        out.append(f"the indexes hold different references ({oi.get('refs', 0):,} vs {ni.get('refs', 0):,})")
    if old.get("match_rules") != new.get("match_rules"):
        out.append("the match rules differ (--verify, --min-anchors, --min-words)")
    return out


def compare_reports(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> dict:
    """The comparison of two report.json documents, as data (rates are fractions)."""
    ot, nt = old["totals"], new["totals"]
    o_tot, n_tot = _side(ot["documents"], ot["flagged_documents"]), _side(nt["documents"], nt["flagged_documents"])
    totals = {"old": o_tot, "new": n_tot, **_delta(o_tot, n_tot)}

    o_shards = {s["shard"]: s for s in old["shards"]}
    n_shards = {s["shard"]: s for s in new["shards"]}
    shards = []
    for name in list(n_shards) + [s for s in o_shards if s not in n_shards]:
        o, n = o_shards.get(name), n_shards.get(name)
        row = {"shard": name, "presence": "both" if o and n else "new only" if n else "old only",
               "old": None, "new": None, "delta": None, "delta_ci95": None, "changed": False,
               "old_status": o["status"] if o else None, "new_status": n["status"] if n else None}
        if o and o["status"] == "ok":
            row["old"] = _side(o["documents"], o["flagged_documents"])
        if n and n["status"] == "ok":
            row["new"] = _side(n["documents"], n["flagged_documents"])
        if row["old"] and row["new"]:
            row.update(_delta(row["old"], row["new"]))
        shards.append(row)

    models = []
    o_lab, n_lab = ot["by_label"], nt["by_label"]
    for label in sorted(set(o_lab) | set(n_lab), key=lambda x: (-max(o_lab.get(x, 0), n_lab.get(x, 0)), x)):
        o, n = _side(ot["documents"], o_lab.get(label, 0)), _side(nt["documents"], n_lab.get(label, 0))
        models.append({"label": label, "presence": "both" if label in o_lab and label in n_lab
                       else "new only" if label in n_lab else "old only",
                       "old": o, "new": n,
                       "old_share": o["flagged"] / ot["flagged_documents"] if ot["flagged_documents"] else 0.0,
                       "new_share": n["flagged"] / nt["flagged_documents"] if nt["flagged_documents"] else 0.0,
                       **_delta(o, n)})
    return {"old_name": old_name, "new_name": new_name,
            "old_scanned": [old.get("started_at"), old.get("finished_at")],
            "new_scanned": [new.get("started_at"), new.get("finished_at")],
            "warnings": _differences(old, new), "totals": totals, "shards": shards, "models": models}


# --------------------------------------------------------------------------- text


def _md(text: str) -> str:
    """A name in a Markdown table cell (its pipes escaped)."""
    return str(text).replace("|", "\\|")


def points(x: float) -> str:
    """A difference of rates in percentage points, signed."""
    return f"{100 * x:+.2f} pts"


def ci_points(ci) -> str:
    return f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"


def arrow(a, b, fmt=lambda v: f"{v:,}") -> str:
    return f"{fmt(a)} → {fmt(b)}" if a != b else fmt(a)


def shard_order(cmp: dict) -> list[dict]:
    """Shards in both scans, the changed ones first, then by the size of the change."""
    both = [r for r in cmp["shards"] if r["delta"] is not None]
    return sorted(both, key=lambda r: (not r["changed"], -abs(r["delta"]), r["shard"]))


def _side_text(side: dict | None, status: str | None) -> str:
    if side is None:
        return "failed" if status == "failed" else "-"
    return f"{side['flagged']:,} / {side['documents']:,} ({pct(side['rate'])})"


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


def render_markdown(cmp: dict) -> str:
    """The comparison for people: totals, shards in both scans, shards in one, models."""
    t = cmp["totals"]
    lines = ["# contamscan: scans compared", "",
             f"OLD `{cmp['old_name']}` (scanned {cmp['old_scanned'][0]}) → NEW `{cmp['new_name']}` "
             f"(scanned {cmp['new_scanned'][0]}). A change is called out when the 95% interval of the difference "
             "of the two rates (Newcombe) excludes zero.", ""]
    lines += [f"> **Warning**: {w}; differences may come from that rather than from the data." for w in cmp["warnings"]]
    lines += ["", "## Dataset", "",
              "| | OLD | NEW | Δ rate | 95% CI of Δ | changed |", "|---|---:|---:|---:|---:|---|",
              f"| documents | {t['old']['documents']:,} | {t['new']['documents']:,} | | | |",
              f"| flagged | {t['old']['flagged']:,} | {t['new']['flagged']:,} | | | |",
              f"| rate | {pct(t['old']['rate'])} {ci_text(t['old']['ci95'])} | {pct(t['new']['rate'])} "
              f"{ci_text(t['new']['ci95'])} | {points(t['delta'])} | {ci_points(t['delta_ci95'])} | "
              f"{'**yes**' if t['changed'] else 'no'} |",
              "", "## Shards in both scans", "",
              "| shard | flagged / documents OLD | NEW | rate OLD | NEW | Δ rate | 95% CI of Δ | changed |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    rows = shard_order(cmp)
    for r in rows:
        lines.append(f"| {_md(r['shard'])} | {_side_text(r['old'], r['old_status'])} | {_side_text(r['new'], r['new_status'])}"
                     f" | {ci_text(r['old']['ci95'])} | {ci_text(r['new']['ci95'])} | {points(r['delta'])} | "
                     f"{ci_points(r['delta_ci95'])} | {'**yes**' if r['changed'] else 'no'} |")
    if not rows:
        lines.append("| (none) | | | | | | | |")
    failed = [r for r in cmp["shards"] if r["presence"] == "both" and r["delta"] is None]
    if failed:
        lines += ["", "## Shards that failed in one scan or both", "", "| shard | OLD | NEW |", "|---|---|---|"]
        lines += [f"| {_md(r['shard'])} | {_side_text(r['old'], r['old_status'])} | {_side_text(r['new'], r['new_status'])} |"
                  for r in failed]
    for presence, title, key, status in (("new only", f"Shards only in NEW ({cmp['new_name']})", "new", "new_status"),
                                         ("old only", f"Shards only in OLD ({cmp['old_name']})", "old", "old_status")):
        only = [r for r in cmp["shards"] if r["presence"] == presence]
        if only:
            lines += ["", f"## {title}", "", "| shard | flagged / documents | rate | 95% CI |", "|---|---:|---:|---:|"]
            for r in only:
                side = r[key]
                lines.append(f"| {_md(r['shard'])} | {_side_text(side, r[status])} | "
                             f"{pct(side['rate']) if side else '-'} | {ci_text(side['ci95']) if side else '-'} |")
    lines += ["", "## Models", "",
              "| model | flagged OLD | NEW | Δ flagged | share of flagged OLD | NEW | rate OLD | NEW | Δ rate | "
              "95% CI of Δ | changed |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in cmp["models"]:
        note = {"new only": " (only in NEW)", "old only": " (only in OLD)"}.get(m["presence"], "")
        lines.append(f"| {_md(m['label'])}{note} | {m['old']['flagged']:,} | {m['new']['flagged']:,} | "
                     f"{m['new']['flagged'] - m['old']['flagged']:+,} | {m['old_share']:.1%} | {m['new_share']:.1%} | "
                     f"{pct(m['old']['rate'])} | {pct(m['new']['rate'])} | {points(m['delta'])} | "
                     f"{ci_points(m['delta_ci95'])} | {'**yes**' if m['changed'] else 'no'} |")
    if not cmp["models"]:
        lines.append("| (no flagged documents in either scan) | | | | | | | | | | |")
    return "\n".join(lines) + "\n"


__all__ = ["compare_reports", "diff_ci", "render_markdown", "shard_order", "summary_lines"]
