"""The style estimate in the reports: ``ai_share`` entries of report.json, and the Markdown
and HTML sections that show it beside the near-duplicate rate."""

from __future__ import annotations

from html import escape

from .profile import combine, public

CLAIM = ("α is the estimated share of a shard's documents whose word usage follows the AI profiles rather than "
         "the human baseline (maximum likelihood over word occurrence in fixed-length windows, Liang et al. 2024), "
         "with a 95% bootstrap interval over documents; `by_label` says which AI profile that share resembles most. "
         "It is a statement about the shard, not about any document: no document is labelled AI-written. "
         "It assumes the shard's human text is like the profile's human baseline (an unlike source can read as AI "
         "and raise α) and that AI text resembles some AI profile (a model unlike every profile can be missed or "
         "attributed to its nearest family). It does not tell copies from originals: near-duplicates of known "
         "outputs are the other estimate.")


def add_ai_share(report: dict, results, profile) -> dict:
    """Add ``ai_share`` to every shard of ``report`` (None for failed shards) and to its totals,
    and a ``style`` entry saying which profile was used and what α claims."""
    for entry, r in zip(report["shards"], results):
        entry["ai_share"] = public(r.ai_share) if r.status == "ok" else None
    report["totals"]["ai_share"] = combine(profile, [r.ai_share for r in results if r.status == "ok"])
    report["style"] = {"profile": str(profile.path), "windows": list(profile.params.windows),
                       "words": len(profile.words), "labels": profile.labels,
                       "human_components": int(profile.human_mask.sum()), "claim": CLAIM}
    return report


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]%"


def top_family(share: dict | None) -> str:
    if not share or not share.get("by_label") or not share.get("alpha"):
        return "-"
    label, w = max(share["by_label"].items(), key=lambda kv: (kv[1], kv[0]))
    return f"{label} ({100 * w:.0f}%)"


def _words(share: dict | None, n: int = 8) -> str:
    if not share or not share.get("fingerprint"):
        return "-"
    return ", ".join(f"{w} ×{r:g}" for w, r in share["fingerprint"][:n])


def markdown_lines(report: dict) -> list[str]:
    """The "AI-written share" section of report.md (nothing when the scan had no profile)."""
    if "style" not in report:
        return []
    t = report["totals"]
    share = t.get("ai_share") or {}
    lines = ["", "## AI-written share (style estimate)", "",
             f"Profile `{report['style']['profile']}`. {CLAIM}", "",
             "| shard | documents | near-duplicate rate | 95% CI | AI share α | 95% CI | resembles | over-represented words |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    rows = [("**total**", t["documents"], t["contamination_rate"], t["ci95"], share)]
    rows += [(s["shard"], s["documents"], s["contamination_rate"], s["ci95"], s.get("ai_share"))
             for s in report["shards"] if s["status"] == "ok"]
    for name, docs, rate, ci, sh in rows:
        lines.append(f"| {name} | {docs} | {_pct(rate)} | {_ci(ci)} | {_pct((sh or {}).get('alpha'))} | "
                     f"{_ci(sh['ci95']) if sh and sh.get('alpha') is not None else '-'} | {top_family(sh)} | "
                     f"{_words(sh)} |")
    if share.get("by_label"):
        lines += ["", "Dataset AI share by profile label: " +
                  ", ".join(f"{k} {100 * v:.1f}%" for k, v in share["by_label"].items() if v >= 0.005) + "."]
    return lines


def html_section(report: dict) -> str:
    """The "AI-written share" section of report.html ("" when the scan had no profile)."""
    if "style" not in report:
        return ""
    e = escape
    t = report["totals"]
    rows = [("total", t["documents"], t["contamination_rate"], t["ci95"], t.get("ai_share"))]
    rows += [(s["shard"], s["documents"], s["contamination_rate"], s["ci95"], s.get("ai_share"))
             for s in report["shards"] if s["status"] == "ok"]
    body = "".join(
        f"<tr><td>{e(str(name))}</td><td class=\"num\">{docs:,}</td><td class=\"num\">{_pct(rate)}</td>"
        f"<td class=\"num\">{_ci(ci)}</td><td class=\"num\"><b>{_pct((sh or {}).get('alpha'))}</b></td>"
        f"<td class=\"num\">{_ci(sh['ci95']) if sh and sh.get('alpha') is not None else '-'}</td>"
        f"<td>{e(top_family(sh))}</td><td>{e(_words(sh))}</td></tr>" for name, docs, rate, ci, sh in rows)
    return (f'<section id="ai-share"><h2>AI-written share (style estimate)</h2>'
            f'<p class="note">{e(CLAIM)}</p>'
            '<table><thead><tr><th>shard</th><th>documents</th><th>near-duplicate rate</th><th>95% CI</th>'
            '<th>AI share α</th><th>95% CI</th><th>resembles</th><th>over-represented words</th></tr></thead>'
            f'<tbody>{body}</tbody></table></section>')


__all__ = ["add_ai_share", "markdown_lines", "html_section", "top_family", "CLAIM"]


def style_table(report: dict):
    """A rich table for the terminal summary: near-duplicate rate and α side by side."""
    from rich.table import Table

    table = Table(title="AI-written share (style estimate; a property of each shard, not of documents)",
                  title_justify="left")
    for col, just in (("shard", "left"), ("near-dup rate", "right"), ("AI share α", "right"), ("95% CI", "right"),
                      ("resembles", "left")):
        table.add_column(col, justify=just)
    ok = [s for s in report["shards"] if s["status"] == "ok"]
    for s in ok[:40]:
        sh = s.get("ai_share")
        table.add_row(s["shard"], _pct(s["contamination_rate"]), _pct((sh or {}).get("alpha")),
                      _ci(sh["ci95"]) if sh and sh.get("alpha") is not None else "-", top_family(sh))
    if len(ok) > 40:
        table.add_row(f"… {len(ok) - 40} more shards in report.md", "", "", "", "")
    t = report["totals"]
    sh = t.get("ai_share")
    table.add_section()
    table.add_row("total", _pct(t["contamination_rate"]), _pct((sh or {}).get("alpha")),
                  _ci(sh["ci95"]) if sh and sh.get("alpha") is not None else "-", top_family(sh))
    return table
