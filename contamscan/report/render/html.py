"""report.html: one self-contained page for people who decide from the report.

Dataset totals; the contamination rate of every shard with its 95% interval; flagged
documents by model (whole copies and passages); the similarity histogram; a sortable,
filterable table of shards; and the evidence: the strongest matches with the document's
excerpt beside the reference's, the shared text marked.

Everything is inline (CSS, SVG charts drawn here, a few lines of vanilla JavaScript for
sorting and filtering): the page loads nothing, works offline, and its Content Security
Policy forbids loading anything and runs only its own script (by hash). Every piece of text
from the data (document and reference text, shard names, ids, labels, errors) is escaped:
document text is untrusted input.

The page is a function of report.json, matches.parquet and evidence.parquet only, so
``contamscan report OUT`` renders the same bytes again from an output directory.
"""

from __future__ import annotations

import base64
import hashlib
import math
from bisect import bisect_right
from collections import Counter
from html import escape

import pyarrow as pa

from ...model import match_order
from ..build import CLAIM
from .format import ci1, ci_range, fingerprint_words, pct, pct1, style_warnings, top_family, top_label, visible_controls

MAX_MODEL_ROWS = 15  # more models are summed into one row
MAX_RATE_ROWS = 50  # shards in the rate chart (the table has all)
MAX_EVIDENCE = 24  # evidence cards: the strongest match of each shard first, then the next, ...
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#5f6b7a")


def e(x) -> str:
    """Escaped text for element content and quoted attribute values."""
    return escape("" if x is None else str(x), quote=True)


def _n(x) -> str:
    return f"{x:,}"


def _ticks(top: float, n: int = 5, least: float = 0.0) -> tuple[float, float]:
    """An axis from 0 to ``top`` (> 0) in about ``n`` steps of 1, 2 or 5 × 10^k (at least
    ``least``): (the axis's end, its step)."""
    raw = max(top / n, least, 1e-12)
    k = math.floor(math.log10(raw))
    step = next(m * 10**k for m in (1, 2, 5, 10) if m * 10**k >= raw * (1 - 1e-9))
    return step * max(1, math.ceil(top / step - 1e-9)), step


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def _colours(report: dict) -> dict:
    """A colour per model, stable for an index (its labels in sorted order)."""
    labels = sorted(report["index"]["labels"])
    for s in report["shards"]:
        labels += [x for x in s["by_label"] if x not in report["index"]["labels"]]
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(dict.fromkeys(labels))}


# --------------------------------------------------------------------------- charts


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{e(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def model_chart(report: dict, kinds: Counter | None, colours: dict) -> str:
    """Flagged documents per model: a bar each, solid for whole-document copies, light for
    passages (``kinds``: :func:`match_kinds` of matches.parquet; None if it is missing)."""
    t = report["totals"]
    items = list(t["by_label"].items())
    if not items:
        return '<p class="empty">No document was flagged.</p>'
    kinds = kinds or {}
    rows = [(label, n, kinds.get((label, "whole"), 0), kinds.get((label, "partial"), 0)) for label, n in items]
    if not all(w + p == n for _, n, w, p in rows):  # matches.parquet missing or not this report's
        rows = [(label, n, n, 0) for label, n, _, _ in rows]
    if len(rows) > MAX_MODEL_ROWS:
        rest = rows[MAX_MODEL_ROWS - 1:]
        rows = rows[:MAX_MODEL_ROWS - 1] + [(f"{len(rest)} other models", sum(r[1] for r in rest),
                                             sum(r[2] for r in rest), sum(r[3] for r in rest))]
    width, left, right, row_h, top = 960, 360, 220, 30, 8
    bar_w = width - left - right - 10
    top_n = max(r[1] for r in rows)
    body = []
    for i, (label, n, whole, partial) in enumerate(rows):
        y = top + i * row_h
        colour = colours.get(label, "#8a8f98")
        w_whole, w_part = bar_w * whole / top_n, bar_w * partial / top_n
        share = n / t["flagged_documents"] if t["flagged_documents"] else 0
        tip = (f"{label}: {n:,} flagged documents ({whole:,} whole copies, {partial:,} passages); "
               f"{share:.1%} of flagged, {pct(n / t['documents']) if t['documents'] else '-'} of documents")
        body.append(f'<g class="row"><title>{e(tip)}</title>'
                    f'<text class="lbl" x="{left - 10}" y="{y + 19}" text-anchor="end">{e(_short(label, 48))}</text>'
                    f'<rect x="{left}" y="{y + 5}" width="{w_whole:.1f}" height="{row_h - 10}" fill="{colour}"/>'
                    f'<rect class="partial" x="{left + w_whole:.1f}" y="{y + 5}" width="{w_part:.1f}" '
                    f'height="{row_h - 10}" fill="{colour}" stroke="{colour}"/>'
                    f'<text class="val" x="{left + w_whole + w_part + 8:.1f}" y="{y + 19}">{n:,} · {share:.1%} of '
                    f'flagged</text></g>')
    height = top + len(rows) * row_h + 8
    legend = ('<p class="legend"><span class="swatch solid"></span> whole-document copies '
              '<span class="swatch light"></span> passages inside longer documents</p>')
    return legend + _svg(width, height, "flagged documents by model", body)


def rate_chart(report: dict) -> str:
    """Each shard's contamination rate (dot) with its 95% Wilson interval (bar), and the dataset's rate."""
    t = report["totals"]
    ok = [s for s in report["shards"] if s["status"] == "ok"]
    if not ok:
        return '<p class="empty">No shard could be read.</p>'
    note = ""
    if len(ok) > MAX_RATE_ROWS:
        ok = sorted(ok, key=lambda s: (-s["contamination_rate"], -s["ci95"][1], s["shard"]))[:MAX_RATE_ROWS]
        note = (f'<p class="note">The {MAX_RATE_ROWS} shards with the highest rates of {len(report["shards"]):,}; '
                'the table below has all of them.</p>')
    failed = sum(s["status"] == "failed" for s in report["shards"])
    if failed:
        note += f'<p class="note">{failed:,} failed shard(s) not shown.</p>'
    width, left, right, row_h, top, axis_h = 960, 260, 190, 22, 26, 26
    plot_w = width - left - right
    x_max, step = _ticks(max([s["ci95"][1] for s in ok] + [t["contamination_rate"], 1e-3]))

    def x(v: float) -> float:
        return left + plot_w * min(v, x_max) / x_max

    height = top + len(ok) * row_h + axis_h
    body = []
    for k in range(round(x_max / step) + 1):  # grid and ticks
        v = k * step
        body.append(f'<line class="grid" x1="{x(v):.1f}" y1="{top - 6}" x2="{x(v):.1f}" y2="{height - axis_h + 4}"/>'
                    f'<text class="tick" x="{x(v):.1f}" y="{height - 8}" text-anchor="middle">'
                    f'{100 * v:.{max(0, -math.floor(math.log10(100 * step) + 1e-9))}f}%</text>')
    total = t["contamination_rate"]
    body.append(f'<line class="total" x1="{x(total):.1f}" y1="{top - 10}" x2="{x(total):.1f}" '
                f'y2="{height - axis_h + 4}"/><text class="total-lbl" x="{x(total) + 4:.1f}" y="{top - 12}">'
                f'dataset {pct(total)}</text>')
    for i, s in enumerate(ok):
        y = top + i * row_h + row_h / 2
        lo, hi = s["ci95"]
        cls = "above" if lo > total else "below" if hi < total else "within"
        tip = (f"{s['shard']}: {s['flagged_documents']:,} of {s['documents']:,} documents flagged, "
               f"{pct(s['contamination_rate'])} (95% CI {ci_range(s['ci95'])})")
        body.append(f'<g class="shard {cls}"><title>{e(tip)}</title>'
                    f'<text class="lbl" x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{e(_short(s["shard"], 34))}'
                    f'</text><line class="ci" x1="{x(lo):.1f}" y1="{y:.1f}" x2="{x(hi):.1f}" y2="{y:.1f}"/>'
                    f'<line class="ci" x1="{x(lo):.1f}" y1="{y - 5:.1f}" x2="{x(lo):.1f}" y2="{y + 5:.1f}"/>'
                    f'<line class="ci" x1="{x(hi):.1f}" y1="{y - 5:.1f}" x2="{x(hi):.1f}" y2="{y + 5:.1f}"/>'
                    f'<circle cx="{x(s["contamination_rate"]):.1f}" cy="{y:.1f}" r="4.5"/>'
                    f'<text class="val" x="{width - right + 12}" y="{y + 4:.1f}">{pct(s["contamination_rate"])} '
                    f'[{ci_range(s["ci95"])}]</text></g>')
    legend = ('<p class="legend"><span class="dot above"></span> interval above the dataset\'s rate '
              '<span class="dot within"></span> overlaps it <span class="dot below"></span> below it</p>')
    return legend + _svg(width, height, "contamination rate per shard with 95% intervals", body) + note


def histogram_chart(report: dict) -> str:
    """Documents with an LSH candidate, by their best candidate's estimated similarity."""
    bins = [0] * 10
    for s in report["shards"]:
        if s["status"] == "ok":
            bins = [a + b for a, b in zip(bins, s["similarity_histogram"])]
    if not any(bins):
        return '<p class="empty">No document had an LSH candidate.</p>'
    threshold = report["index"]["params"].get("threshold", 0.5)
    width, left, right, top, bottom = 960, 70, 20, 24, 44
    height = 300
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max, step = _ticks(max(bins), 4, least=1)
    bw = plot_w / len(bins)
    body = []
    for k in range(round(y_max / step) + 1):
        v = k * step
        y = top + plot_h - plot_h * v / y_max
        body.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
                    f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    for i, n in enumerate(bins):
        h = plot_h * n / y_max
        x0 = left + i * bw
        lo_b, hi_b = i / 10, (i + 1) / 10
        cls = "hbar flag" if lo_b >= threshold - 1e-9 else "hbar"
        body.append(f'<g><title>{lo_b:.1f}–{hi_b:.1f}: {n:,} documents</title>'
                    f'<rect class="{cls}" x="{x0 + 3:.1f}" y="{top + plot_h - h:.1f}" width="{bw - 6:.1f}" '
                    f'height="{h:.1f}"/><text class="val" x="{x0 + bw / 2:.1f}" y="{top + plot_h - h - 5:.1f}" '
                    f'text-anchor="middle">{n:,}</text>'
                    f'<text class="tick" x="{x0 + bw / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                    f'{lo_b:.1f}–{hi_b:.1f}</text></g>')
    tx = left + plot_w * threshold
    body.append(f'<line class="threshold" x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{top + plot_h}"/>'
                f'<text class="total-lbl" x="{tx + 4:.1f}" y="{top - 10}">threshold {threshold}</text>'
                f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">estimated '
                f'Jaccard similarity of the best candidate</text>')
    return _svg(width, height, "similarity histogram", body)


# --------------------------------------------------------------------------- tables


def _bar(rate: float, scale: float) -> str:
    w = 100 * min(rate / scale, 1.0) if scale > 0 else 0
    return f'<span class="bar"><i style="width:{w:.1f}%"></i></span>'


def shard_table(report: dict) -> str:
    cols = (("shard", "shard", "text"), ("status", "status", "text"), ("documents", "documents", "num"),
            ("flagged", "flagged", "num"), ("rate", "rate", "num"), ("95% CI", "ci", "num"),
            ("byte rate", "byte_rate", "num"), ("top model", "model", "text"), ("bad records", "bad", "num"))
    head = "".join(f'<th data-key="{key}" data-type="{typ}"{" class=num" if typ == "num" else ""}>'
                   f'<button type="button">{e(name)}</button></th>' for name, key, typ in cols)
    scale = max([s["contamination_rate"] for s in report["shards"] if s["status"] == "ok"] + [1e-9])
    rows = []
    for s in report["shards"]:
        if s["status"] == "failed":
            rows.append(f'<tr class="failed"><td data-v="{e(s["shard"].lower())}">{e(s["shard"])}</td>'
                        f'<td data-v="failed" title="{e(s["error"])}">failed: {e((s["error"] or "")[:120])}</td>'
                        + '<td class="num" data-v="">–</td>' * 5 + '<td data-v="">–</td><td class="num" data-v="">–</td>'
                        + "</tr>")
            continue
        lo, hi = s["ci95"]
        rows.append(
            f'<tr><td data-v="{e(s["shard"].lower())}">{e(s["shard"])}</td><td data-v="ok">ok</td>'
            f'<td class="num" data-v="{s["documents"]}">{_n(s["documents"])}</td>'
            f'<td class="num" data-v="{s["flagged_documents"]}">{_n(s["flagged_documents"])}</td>'
            f'<td class="num" data-v="{s["contamination_rate"]!r}">{_bar(s["contamination_rate"], scale)}'
            f'{pct(s["contamination_rate"])}</td>'
            f'<td class="num" data-v="{lo!r}" title="sorts by the lower bound">{ci_range((lo, hi))}</td>'
            f'<td class="num" data-v="{s["byte_rate"]!r}">{pct(s["byte_rate"])}</td>'
            f'<td class="wrap" data-v="{e(top_label(s["by_label"]).lower())}">{e(top_label(s["by_label"]))}</td>'
            f'<td class="num" data-v="{s["errors"]["bad_records"]}">{_n(s["errors"]["bad_records"])}</td></tr>')
    t = report["totals"]
    foot = (f'<tr><td>total</td><td>{t["shards"]:,} shards</td><td class="num">{_n(t["documents"])}</td>'
            f'<td class="num">{_n(t["flagged_documents"])}</td><td class="num">{pct(t["contamination_rate"])}</td>'
            f'<td class="num">{ci_range(t["ci95"])}</td><td class="num">{pct(t["byte_rate"])}</td>'
            f'<td class="wrap">{e(top_label(t["by_label"]))}</td><td class="num">{_n(t["errors"]["bad_records"])}</td></tr>')
    n = len(report["shards"])
    return (f'<div class="tools"><input type="search" id="shard-filter" placeholder="filter shards by name" '
            f'aria-label="filter shards by name"> <span id="shard-count">{n:,} shards</span> '
            f'<span class="hint">click a column to sort</span></div>'
            f'<div class="scroll"><table id="shards-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f'</tbody><tfoot>{foot}</tfoot></table></div>')


# --------------------------------------------------------------------------- evidence


def marked(text: str, marks: list[dict], span: tuple[int, int] | None = None) -> str:
    """``text`` escaped, the ``marks`` (merged, sorted character spans) in <mark>, and the
    characters of ``span`` in class "span" (the matched span of a document)."""
    cuts = {0, len(text)}
    for m in marks:
        cuts.update((max(0, min(m["start"], len(text))), max(0, min(m["end"], len(text)))))
    if span is not None:
        cuts.update((max(0, min(span[0], len(text))), max(0, min(span[1], len(text)))))
    cuts = sorted(cuts)
    starts = [m["start"] for m in marks]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        if a == b:
            continue
        k = bisect_right(starts, a) - 1
        in_mark = k >= 0 and marks[k]["end"] >= b
        in_span = span is not None and span[0] <= a and b <= span[1]
        seg = e(text[a:b])
        if in_mark:
            out.append(f'<mark{" class=span" if in_span else ""}>{seg}</mark>')
        elif in_span:
            out.append(f'<span class="span">{seg}</span>')
        else:
            out.append(seg)
    return "".join(out)


def _excerpt_html(kind: str, text: str, start: int, total: int, marks: list[dict], span=None) -> str:
    end = start + len(text)
    before = '<span class="cut">…</span>' if start > 0 else ""
    after = '<span class="cut">…</span>' if end < total else ""
    return (f'<div class="side"><h4>{kind} <small>characters {start:,}–{end:,} of {total:,}</small></h4>'
            f'<pre class="excerpt">{before}{marked(text, marks, span)}{after}</pre></div>')


def evidence_card(ev: dict, number: int, colours: dict) -> str:
    colour = colours.get(ev["label"], "#8a8f98")
    span = None
    span_text = "no span (a whole-document match of a text too short for anchors)"
    if ev["char_start"] is not None and ev["char_end"] is not None:
        span = (ev["char_start"] - ev["doc_excerpt_start"], ev["char_end"] - ev["doc_excerpt_start"])
        span_text = f"matched span: characters {ev['char_start']:,}–{ev['char_end']:,}"
    alt = (f'<span class="alt">as close: {e(ev["alt_ref_id"])} ({e(ev["alt_label"])})</span>'
           if ev["ambiguous"] else "")
    doc_id = f' · doc id <code>{e(ev["doc_id"])}</code>' if ev["doc_id"] is not None else ""
    head = (f'<header><span class="num-badge">{number}</span> <span class="kind {e(ev["kind"])}">{e(ev["kind"])}'
            f'</span> <b>{e(ev["shard"])}</b> row {ev["row"]:,}{doc_id} → reference <code>{e(ev["ref_id"])}</code> '
            f'<span class="model" style="border-color:{colour}">{e(ev["label"])}</span>{alt}'
            f'<div class="metrics">containment <b>{ev["containment"]:.3f}</b> · similarity '
            f'<b>{ev["similarity"]:.3f}</b> · {span_text}</div></header>')
    doc = _excerpt_html("Document", ev["doc_excerpt"], ev["doc_excerpt_start"], ev["doc_chars"],
                        ev["doc_highlights"] or [], span)
    if ev["ref_excerpt"] is not None:
        ref = _excerpt_html("Reference", ev["ref_excerpt"], ev["ref_excerpt_start"], ev["ref_chars"],
                            ev["ref_highlights"] or [])
        foot = (f'<p class="evfoot">{ev["shared_shingles"]:,} word {"n-grams" if ev["shared_shingles"] != 1 else "n-gram"}'
                f' in both excerpts</p>')
    else:
        ref = f'<div class="side missing"><h4>Reference</h4><p>{e(ev["note"])}</p></div>'
        foot = ""
    return f'<article class="ev" id="ev-{number}">{head}<div class="pair">{doc}{ref}</div>{foot}</article>'


def evidence_section(report: dict, evidence: pa.Table | None, colours: dict) -> str:
    flagged = report["totals"]["flagged_documents"]
    if evidence is None or evidence.num_rows == 0:
        if flagged:
            return ('<p class="empty">No evidence.parquet in this output directory (a scan by an older contamscan): '
                    'scan again to see excerpts.</p>')
        return '<p class="empty">No document was flagged.</p>'
    order = {s["shard"]: i for i, s in enumerate(report["shards"])}
    rows = evidence.to_pylist()
    rows.sort(key=lambda r: (r["rank"], *match_order(r["containment"], r["similarity"], 0)[:2],
                             order.get(r["shard"], len(order)), r["row"]))
    shown = rows[:MAX_EVIDENCE]
    per_shard = max(r["rank"] for r in rows) + 1
    intro = (f'<p class="note">The strongest match of each shard first, then the second, …: {len(shown):,} of the '
             f'{len(rows):,} in evidence.parquet (up to {per_shard:,} per shard, the order of report.json\'s '
             f'top_matches: containment, then similarity). <mark>Marked</mark>: word n-grams found in both '
             f'excerpts (compared as the scan compares text: case, accents, punctuation and markup ignored). '
             f'<span class="span">Underlined</span>: the matched span of the document, as in matches.parquet.</p>')
    if any(r["ref_excerpt"] is None for r in rows):
        intro += (f'<p class="warn">Reference text is not stored: {e(next(r["note"] for r in rows if r["note"]))}.'
                  '</p>')
    return intro + "".join(evidence_card(r, i + 1, colours) for i, r in enumerate(shown))


def problems_section(report: dict) -> str:
    t = report["totals"]
    items = []
    for s in report["shards"]:
        if s["status"] == "failed":
            items.append(f"<li><b>{e(s['shard'])}</b> could not be read: {e(s['error'])}</li>")
    for reason, n in t["errors"]["by_reason"].items():
        items.append(f"<li>{n:,} bad record(s): {e(reason)}</li>")
    failed = {s["path"] for s in t["errors"].get("failed_inputs", [])}
    for s in t["errors"]["skipped_files"]:
        if s["path"] in failed:
            items.append(f"<li><b><code>{e(s['path'])}</code></b> could not be read (a failed input): "
                         f"{e(s['reason'])}</li>")
        else:
            items.append(f"<li>skipped <code>{e(s['path'])}</code>: {e(s['reason'])}</li>")
    if not items:
        return ""
    examples = [x for s in report["shards"] for x in s["errors"]["examples"]][:10]
    ex = "".join(f"<li><code>{e(x['file'])}</code> row {e(x['row'])}"
                 f"{' line ' + e(x['line']) if x.get('line') is not None else ''}: {e(x['reason'])}"
                 f"{' — ' + e(x['detail']) if x.get('detail') else ''}</li>" for x in examples)
    return ('<section id="problems"><h2>Problems</h2><ul>' + "".join(items) + "</ul>"
            + (f"<details><summary>examples of bad records</summary><ul>{ex}</ul></details>" if ex else "")
            + "</section>")


# --------------------------------------------------------------------------- page

CSS = """
:root{--fg:#1d232b;--muted:#5d6673;--bg:#fff;--panel:#f5f7fa;--line:#d9dee5;--accent:#c2410c;--ok:#2f7d4f;
--mark:#fde68a;--span:#c2410c}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa4b2;--bg:#14181d;--panel:#1d232b;--line:#343c47;
--mark:#7c5e10;--accent:#fb923c;--ok:#5fbf86;--span:#fb923c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h4{margin:0 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
h4 small{text-transform:none;letter-spacing:0;font-weight:normal}
.meta{color:var(--muted);font-size:13px;margin:2px 0}
nav{margin:12px 0 0;font-size:14px}nav a{color:inherit;margin-right:14px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:24px;font-weight:650;margin-top:2px}.card .s{font-size:12.5px;color:var(--muted)}
.card.main{border-color:var(--accent)}.card.main .v{color:var(--accent)}
.chart{width:100%;height:auto;display:block}
.chart text{fill:var(--fg);font-size:13px}.chart .tick{fill:var(--muted);font-size:12px}
.chart .grid{stroke:var(--line);stroke-width:1}.chart .val{fill:var(--muted);font-size:12.5px}
.chart .partial{fill-opacity:.35;stroke-width:1.5}.chart .total,.chart .threshold{stroke:var(--accent);stroke-width:1.5;stroke-dasharray:5 4}
.chart .total-lbl{fill:var(--accent);font-size:12.5px}
.chart .ci{stroke:#6b7280;stroke-width:2}.chart circle{fill:#6b7280}
.chart .above .ci{stroke:var(--accent)}.chart .above circle{fill:var(--accent)}
.chart .below .ci{stroke:var(--ok)}.chart .below circle{fill:var(--ok)}
.chart .hbar{fill:#9aa7b8}.chart .hbar.flag{fill:var(--accent)}
.chart g:hover text.lbl{font-weight:650}
.legend{font-size:13px;color:var(--muted);margin:0 0 6px}
.swatch{display:inline-block;width:14px;height:10px;background:#4e79a7;margin:0 4px 0 10px;vertical-align:middle}
.swatch.light{background:rgba(78,121,167,.35);border:1.5px solid #4e79a7}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin:0 4px 0 10px;background:#6b7280;
vertical-align:middle}.dot.above{background:var(--accent)}.dot.below{background:var(--ok)}
.note{font-size:13px;color:var(--muted)}.empty{color:var(--muted);font-style:italic}
.warn{background:#fff4e5;color:#7a3e00;border:1px solid #f5c27a;border-radius:6px;padding:8px 12px;font-size:14px}
.tools{display:flex;gap:12px;align-items:center;margin:0 0 8px;font-size:13px;color:var(--muted)}
.tools input{font:inherit;padding:5px 9px;border:1px solid var(--line);border-radius:6px;min-width:260px;
background:var(--bg);color:var(--fg)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td:first-child{white-space:normal;word-break:break-all;min-width:180px}td.wrap{white-space:normal;min-width:140px}
th{position:sticky;top:0;background:var(--panel)}
th button{all:unset;cursor:pointer;font-weight:650}th button::after{content:" ↕";color:var(--muted);font-weight:normal}
th[aria-sort=ascending] button::after{content:" ▲";color:var(--fg)}th[aria-sort=descending] button::after{content:" ▼";color:var(--fg)}
.num{text-align:right;font-variant-numeric:tabular-nums}
tfoot td{font-weight:650;border-top:2px solid var(--line)}
tr.failed td{color:var(--accent)}
.bar{display:inline-block;width:60px;height:8px;background:var(--line);border-radius:4px;margin-right:8px;
vertical-align:middle;overflow:hidden}.bar i{display:block;height:100%;background:var(--accent)}
.ev{border:1px solid var(--line);border-radius:8px;margin:14px 0;padding:12px 14px;background:var(--bg)}
.ev header{font-size:14px;margin-bottom:10px}.ev .metrics{color:var(--muted);font-size:13px;margin-top:3px}
.num-badge{display:inline-block;min-width:22px;text-align:center;background:var(--fg);color:var(--bg);
border-radius:11px;font-size:12px;padding:1px 6px}
.kind{display:inline-block;font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;padding:1px 7px;
border-radius:4px;background:var(--panel);border:1px solid var(--line)}
.model{display:inline-block;border-left:5px solid;padding:0 6px;background:var(--panel);border-radius:3px}
.alt{margin-left:8px;color:var(--accent);font-size:13px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:14px}
@media (max-width:800px){.pair{grid-template-columns:1fr}}
.excerpt{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font:12.5px/1.5 ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px;
max-height:26em;overflow:auto}
mark{background:var(--mark);color:inherit;border-radius:2px}
.span{text-decoration:underline;text-decoration-color:var(--span);text-decoration-thickness:2px;
text-underline-offset:3px}
.cut{color:var(--muted)}
.side.missing p{background:var(--panel);border:1px dashed var(--line);border-radius:6px;padding:10px;
color:var(--muted);font-size:13.5px;margin:0}
.evfoot{font-size:12.5px;color:var(--muted);margin:6px 0 0}
footer{margin-top:40px;font-size:12.5px;color:var(--muted)}
"""

JS = """
(function () {
  "use strict";
  var table = document.getElementById("shards-table");
  if (table) {
    var body = table.tBodies[0];
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (r, i) { r.setAttribute("data-i", i); });
    var value = function (row, col, num) {
      var v = row.cells[col].getAttribute("data-v");
      if (!num) { return v === null ? row.cells[col].textContent.toLowerCase() : v; }
      var x = parseFloat(v);
      return isNaN(x) ? null : x;
    };
    var sort = function (col, dir) {
      var th = heads[col], num = th.getAttribute("data-type") === "num", sign = dir === "asc" ? 1 : -1;
      rows.sort(function (a, b) {
        var x = value(a, col, num), y = value(b, col, num), i = a.getAttribute("data-i") - b.getAttribute("data-i");
        if (x === null || y === null) { return x === y ? i : (x === null ? 1 : -1); }
        return x < y ? -sign : x > y ? sign : i;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      try { history.replaceState(null, "", "#sort=" + th.getAttribute("data-key") + "-" + dir); } catch (err) { }
    };
    heads.forEach(function (th, col) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var first = th.getAttribute("data-type") === "num" ? "desc" : "asc";
        sort(col, now === "descending" ? "asc" : now === "ascending" ? "desc" : first);
      });
    });
    var wanted = /^#sort=([a-z_]+)-(asc|desc)$/.exec(window.location.hash);
    if (wanted) {
      heads.forEach(function (th, col) { if (th.getAttribute("data-key") === wanted[1]) { sort(col, wanted[2]); } });
    }
    var filter = document.getElementById("shard-filter"), count = document.getElementById("shard-count");
    if (filter && count) {
      filter.addEventListener("input", function () {
        var q = filter.value.toLowerCase(), shown = 0;
        rows.forEach(function (r) {
          var hit = r.cells[0].textContent.toLowerCase().indexOf(q) >= 0;
          r.hidden = !hit;
          shown += hit ? 1 : 0;
        });
        count.textContent = shown + " of " + rows.length + " shards";
      });
    }
  }
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; base-uri 'none'; "
            "form-action 'none'")


def _cards(report: dict) -> str:
    t = report["totals"]
    cards = [
        ("main", "contamination rate", pct(t["contamination_rate"]), f"95% CI {ci_range(t['ci95'])}"),
        ("", "flagged documents", _n(t["flagged_documents"]), f"of {_n(t['documents'])} documents"),
        ("", "flagged text", pct(t["byte_rate"]), f"{t['flagged_bytes'] / 1e6:,.1f} of {t['bytes'] / 1e6:,.1f} MB"),
        ("", "models found", _n(len(t["by_label"])), f"of {len(report['index']['labels']):,} in the index"),
        ("", "shards", _n(t["shards"]), f"{t['errors']['failed_shards']:,} failed"),
        ("", "bad records", _n(t["errors"]["bad_records"]), f"{len(t['errors']['skipped_files']):,} files skipped"),
    ]
    if isinstance(t.get("ai_share"), dict) and t["ai_share"].get("alpha") is not None:  # scan --profile
        cards.append(("", "AI-written share α (style)", pct(t["ai_share"]["alpha"]), f"95% CI {ci_range(t['ai_share']['ci95'])}"))
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><div class="k">{e(k)}</div><div class="v">{e(v)}</div><div class="s">{e(s)}</div>'
        f'</div>' for cls, k, v, s in cards) + "</div>"


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
        f"<tr><td>{e(str(name))}</td><td class=\"num\">{docs:,}</td><td class=\"num\">{pct1(rate)}</td>"
        f"<td class=\"num\">{ci1(ci)}</td><td class=\"num\"><b>{pct1((sh or {}).get('alpha'))}</b></td>"
        f"<td class=\"num\">{ci1(sh['ci95']) if sh and sh.get('alpha') is not None else '-'}</td>"
        f"<td>{e(top_family(sh))}</td><td>{e(fingerprint_words(sh))}</td></tr>" for name, docs, rate, ci, sh in rows)
    families = "; ".join(f"{e(f)}: {e(', '.join(ms))}" for f, ms in report["style"].get("families", {}).items())
    warnings = "".join(f'<p class="note"><b>warning</b>: {e(w)}</p>' for w in style_warnings(report))
    return (f'<section id="ai-share"><h2>AI-written share (style estimate)</h2>'
            f'<p class="note">{e(CLAIM)}</p>{warnings}'
            '<table><thead><tr><th>shard</th><th>documents</th><th>near-duplicate rate</th><th>95% CI</th>'
            '<th>AI share α</th><th>95% CI</th><th>resembles</th><th>over-represented words</th></tr></thead>'
            f'<tbody>{body}</tbody></table>'
            + (f'<p class="note">Families of the profile: {families}.</p>' if families else "") + '</section>')


def render_html(report: dict, kinds: Counter | None = None, evidence: pa.Table | None = None) -> str:
    """The page for report.json's ``report``, with the flagged documents per (label, kind) of
    matches.parquet (:func:`match_kinds`) and evidence.parquet's table."""
    t = report["totals"]
    idx = report["index"]
    p = idx["params"]
    rules = report.get("match_rules") or {}
    colours = _colours(report)
    title = f"contamscan: {pct(t['contamination_rate'])} of {t['documents']:,} documents flagged"
    params = (f"{p.get('ngram')}-word shingles, {p.get('num_perm')} permutations, flag at estimated Jaccard ≥ "
              f"{p.get('threshold')}" + (f", 1 in {2 ** p['anchor_bits']} shingles an anchor" if p.get("anchor_bits")
                                         else ", whole documents only"))
    rule_text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rules.items())
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_csp()}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>",
        f'<header><h1>contamscan report</h1>'
        f'<p class="meta">Index <code>{e(idx["path"])}</code>: {idx["refs"]:,} references from '
        f'{len(idx["labels"]):,} models; {e(params)}.</p>'
        f'<p class="meta">Match rules: {e(rule_text or "-")}. Scanned {e(report["started_at"])} to '
        f'{e(report["finished_at"])} by contamscan {e(report["tool"]["version"])}.</p>'
        + (f'<p class="meta sampling"><strong>{e(report["sampling"]["note"])}.</strong></p>'
           if report.get("sampling") else "")
        + '<nav><a href="#totals">Totals</a><a href="#models">By model</a><a href="#rates">Rate per shard</a>'
        '<a href="#shards">Shards</a><a href="#similarity">Similarity</a><a href="#evidence">Evidence</a></nav>'
        '</header>',
        f'<section id="totals"><h2>Dataset</h2>{_cards(report)}</section>',
        f'<section id="models"><h2>Flagged documents by model</h2>{model_chart(report, kinds, colours)}</section>',
        f'<section id="rates"><h2>Contamination rate per shard</h2>'
        f'<p class="note">Flagged documents / documents, with the 95% Wilson score interval; the dashed line is '
        f'the dataset\'s rate.</p>{rate_chart(report)}</section>',
        f'<section id="shards"><h2>Shards</h2>{shard_table(report)}</section>',
        html_section(report),  # scan --profile: the AI-written share beside the near-duplicate rate
        f'<section id="similarity"><h2>Similarity histogram</h2><p class="note">Documents that had at least one '
        f'LSH candidate, by the estimated Jaccard similarity of their best candidate. From the threshold up, a '
        f'document is a whole-document copy; passages are found by anchors and can sit in any bin.</p>'
        f'{histogram_chart(report)}</section>',
        f'<section id="evidence"><h2>Evidence</h2>{evidence_section(report, evidence, colours)}</section>',
        problems_section(report),
        '<footer>Written by contamscan from report.json, matches.parquet and evidence.parquet; '
        '<code>contamscan report DIR</code> renders it again. Loads nothing: works offline.</footer>',
        f"</main><script>{JS}</script></body></html>\n",
    ]
    return visible_controls("\n".join(parts))  # no bidi or control character from the data acts


__all__ = ["render_html", "marked"]
