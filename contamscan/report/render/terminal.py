"""The terminal summary: the shard table, the style table, flagged documents per model as
bars, and the comparison of two scans. Rendered with rich, which leaves out colours when
NO_COLOR is set and every escape code when the output is not a terminal (a log, a pipe)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ...io import Location
from ..compare import shard_order
from .format import arrow, ci1, ci_points, ci_text, pct, pct1, points, style_warnings, summary_lines, top_family, top_label, visible_controls

MAX_SHARD_ROWS = 40
MAX_MODEL_BARS = 8


BAR_WIDTH = 30


MAX_COMPARE_ROWS = 30


_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``fraction`` of ``width`` cells, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def model_bars(report: dict):
    """A rich table: each model's flagged documents as a bar, with its share of the flagged
    documents and of all documents (None when nothing was flagged)."""
    t = report["totals"]
    items = list(t["by_label"].items())
    if not items:
        return None
    top = max(n for _, n in items)
    table = Table(title="flagged documents by model", title_justify="left", box=None, show_header=False,
                  pad_edge=False, padding=(0, 1))
    table.add_column("model", no_wrap=True)
    table.add_column("bar", no_wrap=True, style="magenta")
    table.add_column("flagged", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("rate", justify="right", no_wrap=True, style="dim")
    for label, n in items[:MAX_MODEL_BARS]:
        share = n / t["flagged_documents"] if t["flagged_documents"] else 0.0
        table.add_row(_name(label), bar(n / top), f"{n:,}", f"{share:.1%} of flagged",
                      f"{pct(n / t['documents']) if t['documents'] else '-'} of documents")
    if len(items) > MAX_MODEL_BARS:
        rest = items[MAX_MODEL_BARS:]
        table.add_row(f"… {len(rest)} more model{'s' if len(rest) > 1 else ''}", "", f"{sum(n for _, n in rest):,}",
                      "", "")
    return table


def print_comparison(cmp: dict, console) -> None:
    """Per-shard and per-model changes between two scans, compact (the Markdown has all rows)."""
    for line in summary_lines(cmp):
        console.print(line, style="yellow" if line.startswith("warning") else None, markup=False, highlight=False)
    rows = shard_order(cmp)
    table = Table(title=Text(f"shards: {cmp['old_name']} → {cmp['new_name']}"), title_justify="left")
    for col, just in (("shard", "left"), ("flagged", "right"), ("documents", "right"), ("rate", "right"),
                      ("Δ rate", "right"), ("95% CI of Δ", "right"), ("", "left")):
        table.add_column(col, justify=just)
    for r in rows[:MAX_COMPARE_ROWS]:
        o, n = r["old"], r["new"]
        table.add_row(_name(r["shard"]), arrow(o["flagged"], n["flagged"]), arrow(o["documents"], n["documents"]),
                      arrow(o["rate"], n["rate"], pct), points(r["delta"]), ci_points(r["delta_ci95"]),
                      "changed" if r["changed"] else "", style="bold" if r["changed"] else None)
    if len(rows) > MAX_COMPARE_ROWS:
        table.add_row(f"… {len(rows) - MAX_COMPARE_ROWS} more shards (--markdown FILE lists all)", *[""] * 6)
    for r in cmp["shards"]:
        if r["presence"] == "both" and r["delta"] is None:
            table.add_row(_name(r["shard"]), "", "", f"{r['old_status']} → {r['new_status']}", "", "", "failed")
    only = [r for r in cmp["shards"] if r["presence"] != "both"]
    if only:
        table.add_section()
        for r in only[:MAX_COMPARE_ROWS]:
            side = r["new"] if r["presence"] == "new only" else r["old"]
            name = cmp["new_name"] if r["presence"] == "new only" else cmp["old_name"]
            table.add_row(_name(r["shard"]), f"{side['flagged']:,}" if side else "-", f"{side['documents']:,}" if side else "-",
                          f"{pct(side['rate'])} {ci_text(side['ci95'])}" if side else "failed", "", "",
                          f"only in {name}")
        if len(only) > MAX_COMPARE_ROWS:
            table.add_row(f"… {len(only) - MAX_COMPARE_ROWS} more shards in one scan only", *[""] * 6)
    console.print(table)

    models = Table(title="models", title_justify="left")
    for col, just in (("model", "left"), ("flagged", "right"), ("Δ flagged", "right"), ("share of flagged", "right"),
                      ("rate", "right"), ("Δ rate", "right"), ("95% CI of Δ", "right"), ("", "left")):
        models.add_column(col, justify=just)
    for m in cmp["models"][:MAX_COMPARE_ROWS]:
        note = {"new only": f"only in {cmp['new_name']}", "old only": f"only in {cmp['old_name']}"}.get(m["presence"])
        models.add_row(_name(m["label"]), arrow(m["old"]["flagged"], m["new"]["flagged"]),
                       f"{m['new']['flagged'] - m['old']['flagged']:+,}",
                       arrow(m["old_share"], m["new_share"], lambda v: f"{v:.1%}"),
                       arrow(m["old"]["rate"], m["new"]["rate"], pct), points(m["delta"]), ci_points(m["delta_ci95"]),
                       ", ".join(x for x in (note, "changed" if m["changed"] else None) if x),
                       style="bold" if m["changed"] else None)
    if not cmp["models"]:
        models.add_row("(no flagged documents in either scan)", *[""] * 7)
    console.print(models)


def style_table(report: dict):
    """A rich table for the terminal summary: near-duplicate rate and α side by side."""
    table = Table(title="AI-written share (style estimate; a property of each shard, not of documents)",
                  title_justify="left")
    for col, just in (("shard", "left"), ("near-dup rate", "right"), ("AI share α", "right"), ("95% CI", "right"),
                      ("resembles", "left")):
        table.add_column(col, justify=just)
    ok = [s for s in report["shards"] if s["status"] == "ok"]
    for s in ok[:40]:
        sh = s.get("ai_share")
        table.add_row(_name(s["shard"]), pct1(s["contamination_rate"]), pct1((sh or {}).get("alpha")),
                      ci1(sh["ci95"]) if sh and sh.get("alpha") is not None else "-", _name(top_family(sh)))
    if len(ok) > 40:
        table.add_row(f"… {len(ok) - 40} more shards in report.md", "", "", "", "")
    t = report["totals"]
    sh = t.get("ai_share")
    table.add_section()
    table.add_row("total", pct1(t["contamination_rate"]), pct1((sh or {}).get("alpha")),
                  ci1(sh["ci95"]) if sh and sh.get("alpha") is not None else "-", top_family(sh))
    return table


def console() -> Console:
    """The console of the summary: on a terminal as wide as it is; in a log or a pipe wide
    enough that tables do not wrap."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _name(text: str) -> Text:
    """A name from the data as a table cell: never rich markup, bidi and control characters shown."""
    return Text(visible_controls(text))


def shard_table(report: dict) -> Table:
    """Each shard's documents, flagged documents, rate with its interval, top model and bad records."""
    t = report["totals"]
    table = Table(title="contamscan", title_justify="left")
    for col, just in (("shard", "left"), ("documents", "right"), ("flagged", "right"), ("rate", "right"),
                      ("95% CI", "right"), ("top model", "left"), ("bad", "right")):
        table.add_column(col, justify=just)
    for s in report["shards"][:MAX_SHARD_ROWS]:
        if s["status"] == "failed":
            table.add_row(_name(s["shard"]), "-", "-", "FAILED", "-", _name((s["error"] or "")[:60]), "-")
        else:
            table.add_row(_name(s["shard"]), f"{s['documents']:,}", f"{s['flagged_documents']:,}",
                          pct(s["contamination_rate"]), ci_text(s["ci95"]), _name(top_label(s["by_label"])), f"{s['errors']['bad_records']:,}")
    if len(report["shards"]) > MAX_SHARD_ROWS:
        table.add_row(f"… {len(report['shards']) - MAX_SHARD_ROWS} more shards in report.md", "", "", "", "", "", "")
    table.add_section()
    table.add_row("total", f"{t['documents']:,}", f"{t['flagged_documents']:,}", pct(t["contamination_rate"]),
                  ci_text(t["ci95"]), _name(top_label(t["by_label"])), f"{t['errors']['bad_records']:,}")
    return table


def print_summary(report: dict, out, con: Console | None = None) -> None:
    """The summary of a scan: shards, the style estimate (with a profile), models, where the report is."""
    con = con or console()
    con.print(shard_table(report))
    if report.get("sampling"):
        con.print(report["sampling"]["note"], style="bold yellow", markup=False)
    if "style" in report:  # scan --profile: the AI-written share beside the near-duplicate rate
        con.print(style_table(report))
        for w in style_warnings(report)[:10]:
            con.print(f"warning: {w}", style="yellow", markup=False, highlight=False)
    bars = model_bars(report)
    if bars is not None:
        con.print(bars)
    html = Location.of(out).join("report.html").shown
    con.print(f"report: {html} (and report.md, report.json, matches.parquet, evidence.parquet)", markup=False)


def summary_json(report: dict) -> dict:
    """What ``scan --json`` prints on stdout instead of the tables: the totals, each shard
    and the flagged documents by model, as report.json holds them (without the evidence)."""
    t = report["totals"]
    keys = ("documents", "bytes", "flagged_documents", "contamination_rate", "ci95", "by_label", "ai_share")
    return {
        "totals": {"shards": t["shards"], **{k: t[k] for k in keys if k in t},
                   "bad_records": t["errors"]["bad_records"], "failed_shards": t["errors"]["failed_shards"],
                   "skipped_files": len(t["errors"]["skipped_files"]),
                   "failed_inputs": len(t["errors"].get("failed_inputs", []))},
        "shards": [{"shard": s["shard"], "status": s["status"], "error": s["error"],
                    **{k: s[k] for k in keys if k in s}, "bad_records": s["errors"]["bad_records"]}
                   for s in report["shards"]],
        "by_label": dict(t["by_label"]),
        "sampling": report.get("sampling"),
    }


def rows_table(rows: list[dict], columns: list[str], more: int = 0, title: str | None = None) -> Table:
    """Rows of matches (``contamscan matches``, ``contamscan lookup``) as a table: names from
    the data shown as written, numbers right-aligned, similarity and containment to 3 places;
    ``more`` rows left out are said in a last line."""
    table = Table(title=title, title_justify="left")
    numeric = {"row", "similarity", "containment", "char_start", "char_end", "rank", "turn"}
    for c in columns:
        table.add_column(c, justify="right" if c in numeric else "left")
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if v is None:
                cells.append("-")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}")
            elif isinstance(v, int):
                cells.append(f"{v:,}" if c != "row" else str(v))
            else:
                cells.append(_name(str(v)))
        table.add_row(*cells)
    if more:
        table.add_row(f"… {more:,} more", *[""] * (len(columns) - 1))
    return table
