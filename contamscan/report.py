"""Statistics and reports: Wilson intervals, per-shard and dataset roll-ups, renderers.

The JSON written here is the ``report.json`` contract of the design; the Markdown and the
terminal table show the same numbers.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (95% by default); (0, 1) when n = 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact bounds at the ends, free of rounding
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def _rate(k: int, n: int) -> float:
    return k / n if n else 0.0


@dataclass(frozen=True)
class ScanReport:
    """The result of a scan: ``data`` is exactly what report.json holds."""

    data: dict
    out: Path | str | None  # a local directory, or a remote output's URI

    @property
    def totals(self) -> dict:
        return self.data["totals"]

    @property
    def shards(self) -> list[dict]:
        return self.data["shards"]

    @property
    def contamination_rate(self) -> float:
        return self.totals["contamination_rate"]

    @property
    def failed_shards(self) -> list[str]:
        return [s["shard"] for s in self.shards if s["status"] == "failed"]

    def shards_above(self, rate: float) -> list[str]:
        """Shards whose contamination rate is above ``rate`` (a per-shard gate)."""
        return [s["shard"] for s in self.shards if s["status"] == "ok" and s["contamination_rate"] > rate]

    def matches(self) -> pa.Table:
        return _read_output(self.out, "matches.parquet")

    def evidence(self) -> pa.Table:
        """The top matches of every shard with document and reference excerpts (evidence.parquet)."""
        return _read_output(self.out, "evidence.parquet")


def _read_output(out, name: str) -> pa.Table:
    from . import storage

    if storage.is_remote(out):
        f = storage.open_input_file(storage.join(out, name))
        try:
            return pq.read_table(f)
        finally:
            f.close()
    return pq.read_table(Path(out) / name)


def _top_matches(evidence, k: int) -> list[dict]:
    """A shard's strongest matches, from its evidence rows (the same ``k`` matches, kept in the
    order of contamscan.evidence.match_order as the shard streamed by)."""
    return [{"row": e["row"], "doc_id": e["doc_id"], "ref_id": e["ref_id"], "label": e["label"],
             "similarity": round(e["similarity"], 6), "containment": round(e["containment"], 6)}
            for e in evidence[:k]]


def shard_entry(r, top_k: int) -> dict:
    lo, hi = wilson(r.flagged_documents, r.documents)
    return {
        "shard": r.shard,
        "status": r.status,
        "error": r.error,
        "documents": r.documents,
        "bytes": r.bytes,
        "flagged_documents": r.flagged_documents,
        "flagged_bytes": r.flagged_bytes,
        "contamination_rate": _rate(r.flagged_documents, r.documents),
        "ci95": [lo, hi],
        "byte_rate": _rate(r.flagged_bytes, r.bytes),
        "by_label": dict(r.by_label),
        "similarity_histogram": list(r.similarity_histogram),
        "top_matches": _top_matches(r.evidence, top_k),
        "errors": {"bad_records": r.bad_records, "by_reason": dict(r.bad_by_reason),
                   "examples": list(r.bad_examples)},
    }


def build_report(results, *, index_summary, started_at: str, finished_at: str, skipped=(), top_k: int = 10,
                 version: str = "", match_rules: dict | None = None) -> dict:
    """The report.json document for a list of ShardResults (in shard order)."""
    shards = [shard_entry(r, top_k) for r in results]
    ok = [r for r in results if r.status == "ok"]
    docs = sum(r.documents for r in ok)
    flagged = sum(r.flagged_documents for r in ok)
    nbytes = sum(r.bytes for r in ok)
    fbytes = sum(r.flagged_bytes for r in ok)
    by_label = Counter()
    bad = Counter()
    for r in ok:
        by_label.update(r.by_label)
        bad.update(r.bad_by_reason)
    lo, hi = wilson(flagged, docs)
    return {
        "tool": {"name": "contamscan", "version": version},
        "index": {"path": index_summary.path, "refs": index_summary.refs, "labels": dict(index_summary.labels),
                  "params": dict(index_summary.params)},
        "match_rules": dict(match_rules or {}),
        "started_at": started_at,
        "finished_at": finished_at,
        "totals": {
            "shards": len(results),
            "documents": docs,
            "bytes": nbytes,
            "flagged_documents": flagged,
            "flagged_bytes": fbytes,
            "contamination_rate": _rate(flagged, docs),
            "ci95": [lo, hi],
            "byte_rate": _rate(fbytes, nbytes),
            "by_label": dict(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))),
            "errors": {
                "bad_records": sum(bad.values()),
                "by_reason": dict(sorted(bad.items())),
                "failed_shards": len(results) - len(ok),
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in skipped],
            },
        },
        "shards": shards,
    }


# --------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_table(path: Path, tables, schema: pa.Schema | None = None) -> None:
    """A Parquet file written under a temporary name and renamed when complete: ``tables`` is
    a table, or tables of ``schema`` written one after another as they come."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if isinstance(tables, pa.Table):
        pq.write_table(tables, tmp, compression="zstd")
    else:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
            for t in tables:
                w.write_table(t)
    os.replace(tmp, path)


def write_outputs(out: Path, report: dict, match_files, evidence: pa.Table | None = None) -> None:
    """report.json, matches.parquet, evidence.parquet, report.md and report.html, each written
    atomically. matches.parquet is ``match_files`` (the shards' matches, in order) copied one
    at a time: a scan's matches are never all in memory."""
    from .evidence import EVIDENCE_SCHEMA
    from .report_html import match_kinds, render_html
    from .scan import MATCH_SCHEMA

    out.mkdir(parents=True, exist_ok=True)
    evidence = evidence if evidence is not None else EVIDENCE_SCHEMA.empty_table()
    kinds = Counter()

    def matches():
        for f in match_files:
            t = pq.read_table(f).cast(MATCH_SCHEMA)
            kinds.update(match_kinds([t]))  # for the model chart, as the tables go by
            yield t

    atomic_write_table(out / "matches.parquet", matches(), MATCH_SCHEMA)
    atomic_write_table(out / "evidence.parquet", evidence)
    atomic_write_bytes(out / "report.md", render_markdown(report).encode())
    atomic_write_bytes(out / "report.html", render_html(report, kinds, evidence).encode())
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())


# --------------------------------------------------------------------------- rendering


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def ci_text(ci) -> str:
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]%"


def top_label(by_label: dict) -> str:
    if not by_label:
        return "-"
    label, n = max(by_label.items(), key=lambda kv: (kv[1], kv[0]))
    return f"{label} ({n})"


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
    from .style_report import markdown_lines

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
        lines += ["", "## Skipped files", ""] + [f"- `{s['path']}`: {s['reason']}" for s in skipped]
    return "\n".join(lines) + "\n"
