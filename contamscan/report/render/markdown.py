"""report.md, and the Markdown of a comparison: the same numbers as report.json, for people."""

from __future__ import annotations

from ..build import CLAIM
from ..compare import shard_order
from .format import ci1, ci_points, ci_text, fingerprint_words, pct, pct1, points, style_warnings, top_family, top_label, visible_controls


def render_markdown(report: dict) -> str:
    t = report["totals"]
    p = report["index"]["params"]
    lines = [
        "# contamscan report",
        "",
        f"Index `{report['index']['path']}`: {report['index']['refs']} references from "
        f"{len(report['index']['labels'])} models; {p['ngram']}-word shingles, {p['num_perm']} permutations, "
        f"flag at estimated Jaccard >= {p['threshold']}.",
        f"Scanned {report['started_at']} to {report['finished_at']}.",
        *(["", f"**{report['sampling']['note']}.**"] if report.get("sampling") else []),
        "",
        "## Totals",
        "",
        "| shards | documents | flagged | rate | 95% CI | byte rate | bad records | failed shards |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {t['shards']} | {t['documents']} | {t['flagged_documents']} | {pct(t['contamination_rate'])} | "
        f"{ci_text(t['ci95'])} | {pct(t['byte_rate'])} | {t['errors']['bad_records']} | "
        f"{t['errors']['failed_shards']} |",
        "",
        "## By model",
        "",
        "| model | flagged documents |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {n} |" for label, n in t["by_label"].items()] or ["| - | 0 |"]
    lines += ["", "## Shards", "",
              "| shard | status | documents | flagged | rate | 95% CI | top model | bad records |",
              "|---|---|---:|---:|---:|---:|---|---:|"]
    for s in report["shards"]:
        if s["status"] == "failed":
            lines.append(f"| {s['shard']} | **failed**: {s['error']} | - | - | - | - | - | - |")
        else:
            lines.append(f"| {s['shard']} | ok | {s['documents']} | {s['flagged_documents']} | "
                         f"{pct(s['contamination_rate'])} | {ci_text(s['ci95'])} | {top_label(s['by_label'])} | "
                         f"{s['errors']['bad_records']} |")
    lines += markdown_lines(report)  # the style estimate (scans with a profile)
    examples = [(s["shard"], m) for s in report["shards"] for m in s["top_matches"]]
    examples.sort(key=lambda e: (-e[1]["containment"], -e[1]["similarity"]))
    if examples:
        lines += ["", "## Strongest matches", "",
                  "| shard | row | doc id | reference | model | containment | similarity |",
                  "|---|---:|---|---|---|---:|---:|"]
        for shard, m in examples[:20]:
            lines.append(f"| {shard} | {m['row']} | {m['doc_id'] or ''} | {m['ref_id']} | {m['label']} | "
                         f"{m['containment']:.3f} | {m['similarity']:.3f} |")
        lines += ["", "Document and reference excerpts side by side, shared text marked: report.html "
                      "(evidence.parquet)."]
    skipped = t["errors"]["skipped_files"]
    if skipped:
        failed = {s["path"] for s in t["errors"].get("failed_inputs", [])}
        lines += ["", "## Skipped files", ""] + [f"- `{s['path']}`: {s['reason']}"
                                                 + (" (**failed input**: not read, the scan fails)"
                                                    if s["path"] in failed else "") for s in skipped]
    return visible_controls("\n".join(lines)) + "\n"  # no bidi or control character from the data acts


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
        lines.append(f"| {name} | {docs} | {pct1(rate)} | {ci1(ci)} | {pct1((sh or {}).get('alpha'))} | "
                     f"{ci1(sh['ci95']) if sh and sh.get('alpha') is not None else '-'} | {top_family(sh)} | "
                     f"{fingerprint_words(sh)} |")
    if share.get("by_family"):
        lines += ["", "Dataset AI share by profile family: " +
                  ", ".join(f"{k} {100 * v:.1f}%" for k, v in share["by_family"].items() if v >= 0.005) + "."]
    families = report["style"].get("families")
    if families:
        lines += ["", "Families of the profile: " + "; ".join(f"{_md(f)}: {', '.join(map(_md, ms))}"
                                                            for f, ms in families.items()) + "."]
    lines += [f"- warning: {_md(w)}" for w in style_warnings(report)]
    return lines


def _md(text: str) -> str:
    """A name in a Markdown table cell (its pipes escaped)."""
    return str(text).replace("|", "\\|")


def _side_text(side: dict | None, status: str | None) -> str:
    if side is None:
        return "failed" if status == "failed" else "-"
    return f"{side['flagged']:,} / {side['documents']:,} ({pct(side['rate'])})"


def render_comparison(cmp: dict) -> str:
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
    return visible_controls("\n".join(lines)) + "\n"  # no bidi or control character from the data acts
