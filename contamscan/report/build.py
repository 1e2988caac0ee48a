"""report.json as data: per-shard entries and dataset totals from the shards' results, the
style estimate beside them, and the flagged documents per model and kind for the charts.
The JSON built here is the ``report.json`` contract of the design."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from ..style.estimate import combine, public
from .stats import rate, wilson

CLAIM = ("α is the estimated share of a shard's documents whose word usage follows the AI profiles rather than "
         "the human baseline (maximum likelihood over word occurrence in fixed-length windows, Liang et al. 2024), "
         "with a 95% bootstrap interval over documents; `by_label` says which AI profile that share resembles most. "
         "It is a statement about the shard, not about any document: no document is labelled AI-written. "
         "It assumes the shard's human text is like the profile's human baseline (an unlike source can read as AI "
         "and raise α) and that AI text resembles some AI profile (a model unlike every profile can be missed or "
         "attributed to its nearest family). It does not tell copies from originals: near-duplicates of known "
         "outputs are the other estimate.")


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
        "contamination_rate": rate(r.flagged_documents, r.documents),
        "ci95": [lo, hi],
        "byte_rate": rate(r.flagged_bytes, r.bytes),
        "by_label": dict(r.by_label),
        "by_label_any": dict(r.by_label_any),
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
    by_label, by_label_any = Counter(), Counter()
    bad = Counter()
    for r in ok:
        by_label.update(r.by_label)
        by_label_any.update(r.by_label_any)
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
            "contamination_rate": rate(flagged, docs),
            "ci95": [lo, hi],
            "byte_rate": rate(fbytes, nbytes),
            "by_label": dict(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_label_any": dict(sorted(by_label_any.items(), key=lambda kv: (-kv[1], kv[0]))),
            "errors": {
                "bad_records": sum(bad.values()),
                "by_reason": dict(sorted(bad.items())),
                "failed_shards": len(results) - len(ok),
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in skipped],
                "failed_inputs": [{"path": s.path, "reason": s.reason} for s in skipped if s.failed],
            },
        },
        "shards": shards,
    }


def add_ai_share(report: dict, results, profile) -> dict:
    """Add ``ai_share`` to every shard of ``report`` (None for failed shards) and to its totals,
    and a ``style`` entry saying which profile was used and what α claims."""
    for entry, r in zip(report["shards"], results):
        entry["ai_share"] = public(r.ai_share) if r.status == "ok" else None
    report["totals"]["ai_share"] = combine(profile, [r.ai_share for r in results if r.status == "ok"])
    families = profile.families
    members = {}
    for model, fam in sorted(families.items()):
        members.setdefault(fam, []).append(model)
    single = sorted(f for f, ms in members.items() if len(ms) == 1)
    warnings = [f"{len(single)} of the profile's {len(members)} families have one model ({', '.join(single)}): "
                "their attribution rests on that model alone"] if single else []
    report["style"] = {"profile": str(profile.path), "windows": list(profile.params.windows),
                       "words": len(profile.words), "labels": profile.labels, "families": members,
                       "human_components": int(profile.human_mask.sum()), "claim": CLAIM, "warnings": warnings}
    return report


def match_kinds(tables) -> Counter:
    """Flagged documents per (label, kind) of their strongest match in matches tables (or
    record batches), one at a time: what the model chart needs of matches.parquet, in
    bounded memory."""
    kinds = Counter()
    for t in tables:
        if t.num_rows:
            t = pa.Table.from_batches([t]) if isinstance(t, pa.RecordBatch) else t
            if "rank" in t.column_names:  # (matches of older scans have one row per document)
                t = t.filter(pc.equal(t.column("rank"), 1))
            # counted here: Table.group_by imports pyarrow's dataset module (and pandas), a
            # tenth of a second of a short scan
            kinds.update(zip(t.column("label").to_pylist(), t.column("kind").to_pylist()))
    return kinds


def sampling_note(sampling: dict) -> str:
    """What a quick look scanned, in words (report.json's ``sampling.note``, and the renderers')."""
    parts = []
    if sampling.get("sample") is not None:
        parts.append(f"a {sampling['sample']:.4g} sample of each shard's records (by row number)")
    if sampling.get("limit") is not None:
        parts.append(f"at most the first {sampling['limit']:,} documents of each shard")
    return "quick look: " + ", ".join(parts) + "; counts and rates are of what was scanned, not of the whole shards"
