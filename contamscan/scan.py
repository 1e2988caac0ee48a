"""Scan: stream a shard's documents, flag near-copies of references, and sum up the shard.

:func:`scan_shard` is the unit of work of every executor; :func:`scan` is the public entry
point that discovers shards, runs them, and writes the report.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import storage
from .config import ScanOptions
from .errors import ContamscanError, ShardReadError
from .evidence import EvidenceKeeper, evidence_table
from .index import ReferenceIndex, best_run, open_index
from .minhash import INVALID_UTF8, Hasher, char_spans
from .readers import BadRecord, Fields, Shard, check_fields, discover, has_field, read_batches

HISTOGRAM_BINS = 10  # best-candidate similarity in bins of 0.1
MAX_ERROR_EXAMPLES = 5

MATCH_SCHEMA = pa.schema([
    ("shard", pa.string()),
    ("row", pa.int64()),
    ("doc_id", pa.string()),
    ("ref_id", pa.string()),
    ("label", pa.string()),
    ("similarity", pa.float64()),
    ("containment", pa.float64()),
    ("char_start", pa.int64()),
    ("char_end", pa.int64()),
    ("kind", pa.string()),
    ("ambiguous", pa.bool_()),
    ("alt_ref_id", pa.string()),
    ("alt_label", pa.string()),
])
CLOSE = 0.9  # another label's evidence within this ratio of the best's makes a match ambiguous


@dataclass(frozen=True)
class ShardResult:
    """What one shard contributed. ``matches`` has one row per flagged document."""

    shard: str
    status: str  # "ok" | "failed"
    error: str | None = None
    documents: int = 0
    bytes: int = 0
    flagged_documents: int = 0
    flagged_bytes: int = 0
    by_label: dict = field(default_factory=dict)
    similarity_histogram: tuple = (0,) * HISTOGRAM_BINS
    bad_records: int = 0
    bad_by_reason: dict = field(default_factory=dict)
    bad_examples: tuple = ()
    matches: pa.Table = field(default_factory=MATCH_SCHEMA.empty_table)
    seconds: float = 0.0
    evidence: tuple = ()  # the top matches with excerpts (contamscan.evidence rows, JSON-serialisable)
    ai_share: dict | None = None  # the style estimate (with a profile; contamscan.profile.StyleTally.result)


class _ShardTally:
    """Running totals of one shard while its batches stream by."""

    def __init__(self, shard: Shard, evidence: EvidenceKeeper | None = None):
        self.shard = shard
        self.evidence = evidence
        self.documents = self.bytes = self.flagged = self.flagged_bytes = 0
        self.by_label = Counter()
        self.histogram = np.zeros(HISTOGRAM_BINS, np.int64)
        self.bad = Counter()
        self.examples: list[BadRecord] = []
        self.match_parts: list[pa.Table] = []
        self.style = None  # contamscan.profile.StyleTally, with a profile

    def add_bad(self, records) -> None:
        for r in records:
            self.bad[r.reason] += 1
            if len(self.examples) < MAX_ERROR_EXAMPLES:
                self.examples.append(r)

    def result(self, seconds: float) -> ShardResult:
        matches = pa.concat_tables(self.match_parts) if self.match_parts else MATCH_SCHEMA.empty_table()
        return ShardResult(
            shard=self.shard.relpath, status="ok", documents=self.documents, bytes=self.bytes,
            flagged_documents=self.flagged, flagged_bytes=self.flagged_bytes,
            by_label=dict(sorted(self.by_label.items())),
            similarity_histogram=tuple(int(x) for x in self.histogram),
            bad_records=sum(self.bad.values()), bad_by_reason=dict(sorted(self.bad.items())),
            bad_examples=tuple({"file": self.shard.relpath, "row": r.row, "line": r.line, "reason": r.reason,
                                "detail": r.detail} for r in self.examples),
            matches=matches, seconds=seconds,
            ai_share=self.style.result() if self.style is not None else None,
            evidence=self.evidence.rows(self.shard.relpath) if self.evidence is not None else (),
        )


def _containment(similarity, n_doc, n_ref):
    """Estimated share of the reference's shingles found in the document, from the
    Jaccard estimate J and the two shingle counts: |D ∩ R| = J (|D| + |R|) / (1 + J)."""
    inter = similarity * (n_doc + n_ref) / (1.0 + similarity)
    return np.minimum(1.0, inter / np.maximum(n_ref, 1))


@dataclass(frozen=True)
class ExactCheck:
    """Exact shingle-set comparison of flagged documents with their references."""

    keep: np.ndarray  # bool: still flagged on the exact sets
    whole: np.ndarray  # bool: exact Jaccard >= threshold
    similarity: np.ndarray  # exact Jaccard
    containment: np.ndarray  # exact |D ∩ R| / |R|
    byte_start: np.ndarray  # the best run of shared shingles in the document (-1: none)
    byte_stop: np.ndarray


def exact_check(index: ReferenceIndex, hasher: Hasher, texts: pa.Array, docs: np.ndarray, refs: np.ndarray,
                options: ScanOptions) -> ExactCheck:
    """Compare documents ``docs`` of ``texts`` with references ``refs`` on their exact shingle
    sets. The flag rules are the estimate's, on exact values: Jaccard >= threshold, or a run of
    shared shingles (first occurrences; the same +1/-miss_penalty score) worth ``min_anchors``
    anchors (its score / 2**anchor_bits) over ``min_words`` words."""
    n = len(docs)
    doc_sh = hasher.shingles(texts.take(pa.array(docs)))
    uref, which = np.unique(refs, return_inverse=True)
    ref_sh = hasher.shingles(index.texts.take(pa.array(uref)))
    d_ptr = np.searchsorted(doc_sh.doc, np.arange(n + 1))
    r_ptr = np.searchsorted(ref_sh.doc, np.arange(len(uref) + 1))
    bits = index.params.anchor_bits
    out = ExactCheck(np.zeros(n, np.bool_), np.zeros(n, np.bool_), np.zeros(n), np.zeros(n),
                     np.full(n, -1, np.int64), np.full(n, -1, np.int64))
    for i in range(n):
        lo, hi = d_ptr[i], d_ptr[i + 1]
        ref_keys = np.unique(ref_sh.key[r_ptr[which[i]]:r_ptr[which[i] + 1]])
        keys, first = np.unique(doc_sh.key[lo:hi], return_index=True)
        shared = np.isin(keys, ref_keys, assume_unique=True)
        inter = int(np.count_nonzero(shared))
        union = len(keys) + len(ref_keys) - inter
        out.similarity[i] = inter / union if union else 0.0
        out.containment[i] = inter / len(ref_keys) if len(ref_keys) else 0.0
        out.whole[i] = out.similarity[i] >= index.params.threshold
        positions = np.sort(first[shared]).astype(np.int64)
        score, n_shared, f, last = best_run(positions, 0, len(positions), options.miss_penalty)
        partial = False
        if n_shared:
            f, last = lo + f, lo + last
            out.byte_start[i], out.byte_stop[i] = doc_sh.start[f], doc_sh.stop[last]
            words = doc_sh.word[last] - doc_sh.word[f] + hasher.ngram
            partial = bits > 0 and score / 2**bits >= options.min_anchors and words >= options.min_words
        out.keep[i] = out.whole[i] or partial
    return out


def scan_batch(tally: _ShardTally, batch, index: ReferenceIndex, hasher: Hasher, options: ScanOptions) -> None:
    sigs = hasher.signatures(batch.texts)
    invalid = sigs.status == INVALID_UTF8
    if invalid.any():
        rows = batch.rows[np.nonzero(invalid)[0]]
        if options.strict:
            raise ContamscanError(f"{tally.shard.relpath}: row {int(rows[0])}: invalid_utf8 (text is not valid UTF-8)")
        tally.add_bad(BadRecord(int(r), None, "invalid_utf8", "text is not valid UTF-8") for r in rows)
    valid = ~invalid
    n_bytes = pc.binary_length(batch.texts).to_numpy(zero_copy_only=False).astype(np.int64)
    tally.documents += int(valid.sum())
    tally.bytes += int(n_bytes[valid].sum())
    _style_batch(tally, batch, valid, hasher)
    # whole documents: LSH candidates verified by estimated Jaccard
    res = index.query(sigs.values, skip=invalid | (sigs.n_shingles == 0))
    had_candidate = res.n_candidates > 0
    bins = np.minimum((res.similarity[had_candidate] * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    tally.histogram += np.bincount(bins, minlength=HISTOGRAM_BINS)
    whole = res.best_ref >= 0
    # partial: a dense run of anchors shared with one reference
    part = None
    partial = np.zeros(len(whole), np.bool_)
    if sigs.anchors is not None and len(index.anchor_refs):
        part = index.partial(sigs.anchors, len(whole), math.ceil(options.min_anchors), options.miss_penalty)
        first, last = np.maximum(part.seg_first, 0), np.maximum(part.seg_last, 0)
        words = sigs.anchors.word[last] - sigs.anchors.word[first] + hasher.ngram if len(sigs.anchors) else 0
        partial = (part.best_ref >= 0) & (part.seg_score >= options.min_anchors) & (words >= options.min_words)
    hit = np.flatnonzero(whole | partial)
    if not len(hit):
        return
    is_whole = whole[hit]
    # the reference: the Jaccard winner for whole-document matches, else the anchors'
    refs = np.where(is_whole, res.best_ref[hit], part.best_ref[hit] if part is not None else -1)
    P = index.params.num_perm
    sim = np.count_nonzero(sigs.values[hit] == index.signatures[refs], axis=1) / P
    containment = _containment(sim, sigs.n_shingles[hit], index.ref_shingles[refs])
    byte_start = np.full(len(hit), -1, np.int64)
    byte_stop = np.full(len(hit), -1, np.int64)
    alt = np.where(is_whole & (res.alt_similarity[hit] >= CLOSE * sim), res.alt_ref[hit], -1)
    if part is not None:
        same = part.best_ref[hit] == refs  # the anchors tell the span and containment of this reference
        n_anchors = index.ref_anchors[refs]
        use = same & (n_anchors > 0)
        containment = np.where(use, np.minimum(1.0, part.total_hits[hit] / np.maximum(n_anchors, 1)), containment)
        first, last = part.seg_first[hit][same], part.seg_last[hit][same]
        byte_start[same] = sigs.anchors.start[first]
        byte_stop[same] = sigs.anchors.stop[last]
        close = ~is_whole & (part.alt_ref[hit] >= 0) & (part.alt_score[hit] >= CLOSE * part.seg_score[hit])
        alt = np.where(close, part.alt_ref[hit], alt)
    if options.verify == "exact":
        ex = exact_check(index, hasher, batch.texts, hit, refs, options)
        k = ex.keep
        hit, refs, alt, is_whole = hit[k], refs[k], alt[k], ex.whole[k]
        sim, containment, byte_start, byte_stop = ex.similarity[k], ex.containment[k], ex.byte_start[k], ex.byte_stop[k]
        if not len(hit):
            return
    char_start, char_end = char_spans(batch.texts, hit, byte_start, byte_stop)
    no_span = pa.array(char_start < 0)
    labels = index.label_names[index.label_codes[refs]].tolist()
    has_alt = alt >= 0
    alt_ids = index.ref_ids.take(pa.array(np.where(has_alt, alt, 0))).cast(pa.string())
    alt_labels = pa.array(index.label_names[index.label_codes[np.where(has_alt, alt, 0)]].tolist(), pa.string())
    mask = pa.array(~has_alt)
    tally.flagged += len(hit)
    tally.flagged_bytes += int(n_bytes[hit].sum())
    tally.by_label.update(labels)
    tally.match_parts.append(pa.table({
        "shard": pa.array([tally.shard.relpath] * len(hit), pa.string()),
        "row": pa.array(batch.rows[hit], pa.int64()),
        "doc_id": batch.ids.take(pa.array(hit)).cast(pa.string()) if batch.ids is not None
        else pa.nulls(len(hit), pa.string()),
        "ref_id": index.ref_ids.take(pa.array(refs)).cast(pa.string()),
        "label": pa.array(labels, pa.string()),
        "similarity": pa.array(sim, pa.float64()),
        "containment": pa.array(containment, pa.float64()),
        "char_start": pc.if_else(no_span, pa.scalar(None, pa.int64()), pa.array(char_start)),
        "char_end": pc.if_else(no_span, pa.scalar(None, pa.int64()), pa.array(char_end)),
        "kind": pa.array(np.where(is_whole, "whole", "partial").tolist(), pa.string()),
        "ambiguous": pa.array(has_alt),
        "alt_ref_id": pc.if_else(mask, pa.scalar(None, pa.string()), alt_ids),
        "alt_label": pc.if_else(mask, pa.scalar(None, pa.string()), alt_labels),
    }, schema=MATCH_SCHEMA))
    if tally.evidence is not None:
        tally.evidence.offer(tally.match_parts[-1], batch.texts, hit, refs)


def scan_shard(shard: Shard, index: ReferenceIndex, options: ScanOptions, hasher: Hasher | None = None,
               progress=None) -> ShardResult:
    """Scan one shard. A shard that cannot be read comes back with status "failed" and
    the reason; a bad record is counted and skipped (or, with ``strict``, fails the shard)."""
    t0 = time.perf_counter()
    hasher = hasher or index.hasher()
    tally = _ShardTally(shard, EvidenceKeeper(options.top_matches, index, hasher))
    tally.style = _style_tally(options)
    try:
        fields = Fields(text=options.text_field, id=_present(shard, options.id_field))
        for batch in read_batches(shard, fields, batch_bytes=options.batch_bytes, strict=options.strict):
            tally.add_bad(batch.bad)
            if len(batch.texts):
                scan_batch(tally, batch, index, hasher, options)
            if progress:
                progress(batch)
            del batch  # not held while the next one is read
        result = tally.result(time.perf_counter() - t0)
        if options.write_clean or options.write_flagged:
            from .writers import split_shard

            flagged_rows = np.unique(result.matches.column("row").to_numpy())
            counts = split_shard(shard, flagged_rows, _path(options.write_clean), _path(options.write_flagged))
            if counts.clean + counts.flagged != result.documents + result.bad_records:
                raise ContamscanError(f"{shard.relpath}: the clean and flagged outputs hold {counts.clean} + "
                                      f"{counts.flagged} records, the scan read {result.documents + result.bad_records}")
    except ContamscanError as e:  # unreadable shard, or a bad record under --strict
        for root in (options.write_clean, options.write_flagged):  # no output of a failed shard, not even an old one
            if root is not None and storage.is_remote(root):
                try:
                    storage.delete(storage.join(root, shard.relpath))
                except ContamscanError:
                    pass  # the store cannot be reached: the shard has failed all the same
            elif root is not None:
                (Path(root) / shard.relpath).unlink(missing_ok=True)
        return ShardResult(shard=shard.relpath, status="failed", error=str(e), seconds=time.perf_counter() - t0)
    return result


def _path(p) -> Path | str | None:
    """An output root: a local Path, or a remote URI as it is (contamscan.storage)."""
    return Path(p) if p is not None and not storage.is_remote(p) else p


def _same_place(a, b) -> bool:
    if storage.is_remote(a) or storage.is_remote(b):
        return storage.is_remote(a) and storage.is_remote(b) and storage.key(a) == storage.key(b)
    return Path(a).resolve() == Path(b).resolve()


def _present(shard: Shard, id_field: str | None) -> str | None:
    """The id field when the shard has it (ids are optional)."""
    return id_field if id_field is not None and has_field(shard, id_field) else None


def _style_tally(options: ScanOptions):
    """A shard's style-estimate tally when the scan has a profile (opened once per process)."""
    if options.profile is None:
        return None
    from .profile import StyleTally, open_cached

    return StyleTally(open_cached(options.profile))


def _style_batch(tally: _ShardTally, batch, valid: np.ndarray, hasher: Hasher) -> None:
    """Add a batch's valid documents to the shard's style estimate (with a profile)."""
    if tally.style is not None:
        tally.style.add(batch.texts if valid.all() else batch.texts.filter(pa.array(valid)), hasher)


def _open_style(options: ScanOptions) -> None:
    """Open the profile before any work (a bad profile fails the scan at once) and compile its
    kernels in this process, so forked workers inherit both."""
    if options.profile is not None:
        from .profile import StyleTally, open_cached

        StyleTally(open_cached(options.profile)).add(["warm up the style kernels " * 20])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_output_paths(shards, options: ScanOptions) -> None:
    """Clean/flagged outputs mirror the inputs' relative paths: they must not collide."""
    if options.write_clean and options.write_flagged and _same_place(options.write_clean, options.write_flagged):
        raise ContamscanError("--write-clean and --write-flagged must be different directories")
    seen = {}
    for s in shards:
        if s.relpath in seen:
            raise ContamscanError(f"{storage.display(seen[s.relpath])} and {storage.display(s.path)} would both be "
                                  f"written as {s.relpath}; give their "
                                  "common parent directory instead of the files")
        seen[s.relpath] = s.path


def _check_remote_fields(shards, options: ScanOptions) -> None:
    """The text field check of every shard, as for local shards, on 16 threads: a remote check
    costs round trips (a Parquet footer, the first lines of a JSON Lines file), and a dataset
    can have thousands of shards. The first missing field in shard order is raised."""
    from concurrent.futures import ThreadPoolExecutor

    def check(s: Shard):
        try:
            check_fields(s, Fields(text=options.text_field))
        except ShardReadError:
            return None  # unreadable: the scan marks it failed and goes on
        except ContamscanError as e:
            return e
        return None

    with ThreadPoolExecutor(16) as pool:
        errors = list(pool.map(check, shards))
    for e in errors:
        if e is not None:
            raise e


def plan_units(shards, options: ScanOptions) -> list[Shard]:
    """The scan's units of work, in shard order: each shard, or for a Parquet shard larger
    than ``options.piece_bytes``, pieces of consecutive whole row groups of about that size
    (rows keep their numbers in the file, so merged pieces equal the whole shard)."""
    if options.write_clean or options.write_flagged or options.profile:
        return list(shards)
    units = []
    for s in shards:
        groups = _row_group_sizes(s) if s.format == "parquet" and s.size > options.piece_bytes else []
        if len(groups) < 2:
            units.append(s)
            continue
        piece, size = [], 0
        for g, n in enumerate(groups):
            if piece and size + n > options.piece_bytes:
                units.append(dataclasses.replace(s, row_groups=tuple(piece)))
                piece, size = [], 0
            piece.append(g)
            size += n
        units.append(dataclasses.replace(s, row_groups=tuple(piece)))
    return units


def _row_group_sizes(shard: Shard) -> list[int]:
    import pyarrow.parquet as pq

    try:
        fs, path = storage.resolve(shard.path) if storage.is_remote(shard.path) else (None, shard.path)
        md = pq.read_metadata(path, filesystem=fs)
    except (OSError, pa.ArrowException, ValueError, ContamscanError):
        return []  # unreadable: scanned whole, and fails there with its reason
    return [md.row_group(g).total_byte_size for g in range(md.num_row_groups)]


def merge_pieces(parts: list[ShardResult], top_k: int) -> ShardResult:
    """One shard's result from the results of its pieces (in order): what a single task
    scanning the whole shard would have returned."""
    from .evidence import match_order

    failed = [p for p in parts if p.status != "ok"]
    if failed:
        return ShardResult(shard=parts[0].shard, status="failed", error=failed[0].error,
                           seconds=sum(p.seconds for p in parts))
    by_label, bad = Counter(), Counter()
    for p in parts:
        by_label.update(p.by_label)
        bad.update(p.bad_by_reason)
    evidence = sorted((e for p in parts for e in p.evidence),
                      key=lambda e: match_order(e["containment"], e["similarity"], e["row"]))[:top_k]
    return ShardResult(
        shard=parts[0].shard, status="ok", error=None,
        documents=sum(p.documents for p in parts), bytes=sum(p.bytes for p in parts),
        flagged_documents=sum(p.flagged_documents for p in parts),
        flagged_bytes=sum(p.flagged_bytes for p in parts),
        by_label=dict(sorted(by_label.items())),
        similarity_histogram=tuple(int(x) for x in np.sum([p.similarity_histogram for p in parts], axis=0)),
        bad_records=sum(p.bad_records for p in parts), bad_by_reason=dict(sorted(bad.items())),
        bad_examples=tuple(e for p in parts for e in p.bad_examples)[:MAX_ERROR_EXAMPLES],
        matches=pa.concat_tables([p.matches for p in parts]),
        seconds=sum(p.seconds for p in parts),
        evidence=tuple({**e, "rank": rank} for rank, e in enumerate(evidence)),
    )


def check_expectations(index: ReferenceIndex, options: ScanOptions) -> None:
    """Fail when the scan asks for index parameters the index was not built with."""
    p = index.params
    for name, want, have in (("threshold", options.expect_threshold, p.threshold),
                             ("ngram", options.expect_ngram, p.ngram),
                             ("num_perm", options.expect_num_perm, p.num_perm)):
        if want is not None and want != have:
            flag = name.replace("_", "-")
            raise ContamscanError(f"the index {index.shown} was built with {name} {have}, and this scan asks for "
                                  f"{want}; rebuild the index with `index build --{flag} {want}` or drop the option")


def scan(dataset, index, out=None, options: ScanOptions = ScanOptions(), progress=None, resume: bool = False,
         events=None):
    """Scan files, directories or globs against an index and write the report to ``out``.

    ``index`` is a path or an opened :class:`ReferenceIndex`. ``progress``, if given, is
    called as ``progress(documents, bytes)`` as work advances (``progress.total_bytes`` is
    set first when it has that attribute). ``events``, if given, is called as
    ``events(name, fields)`` at "scan_started", each "shard_finished" and "scan_finished".

    With ``out``, the scan holds a lock on it (a second scan into it fails at once), saves
    each finished shard, and writes the report at the end; ``resume=True`` continues an
    interrupted scan of the same inputs, index and options, and the report equals an
    uninterrupted run's. Returns a :class:`contamscan.report.ScanReport`; failed shards are
    listed in it rather than raised.
    """
    from . import __version__
    from .checkpoint import (Checkpoints, OutputLock, remove_final_outputs, remove_remote_final_outputs,
                             run_fingerprint, upload_final_outputs)
    from .executors import run_local, run_ray
    from .report import ScanReport, build_report, write_outputs

    started = _now()
    emit = events or (lambda name, fields: None)
    if not isinstance(index, ReferenceIndex):
        index = open_index(index)
    if options.verify == "exact" and index.texts is None:
        raise ContamscanError(f"--verify exact compares texts, and the index {index.shown} does not store them; "
                              "rebuild it with `contamscan index build --store-text`")
    check_expectations(index, options)
    _open_style(options)
    inputs = [dataset] if isinstance(dataset, (str, os.PathLike)) else list(dataset)
    # a remote output (a URI): its lock, checkpoints and final outputs are staged in a local
    # directory keyed by the URI, and the final outputs uploaded at the end
    if any(storage.localize(p) != p for p in (out, options.write_clean, options.write_flagged)):
        out = storage.localize(out)
        options = dataclasses.replace(options, write_clean=storage.localize(options.write_clean),
                                      write_flagged=storage.localize(options.write_flagged))
    remote_out = out if storage.is_remote(out) else None
    for p in (remote_out, options.write_clean, options.write_flagged):
        if storage.is_remote(p):
            storage.check_writable(p)
    out = (storage.staging_dir(remote_out) if remote_out else Path(out)) if out is not None else None
    shown_out = storage.display(remote_out) if remote_out else (str(out) if out is not None else None)
    outputs = [p for p in (remote_out, out, options.write_clean, options.write_flagged) if p is not None]
    shards, skipped = discover(inputs, exclude=outputs)  # outputs inside the dataset are never scanned
    if not shards:
        raise ContamscanError("no shards to scan (expected .parquet, .jsonl, .json, .jsonl.gz, .jsonl.zst, .arrow)")
    if options.write_clean or options.write_flagged:
        _check_output_paths(shards, options)
    if any(storage.is_remote(s.path) for s in shards):
        _check_remote_fields(shards, options)
    else:
        for s in shards:  # a missing text field fails before any work
            try:
                check_fields(s, Fields(text=options.text_field))
            except ShardReadError:
                pass  # unreadable: the scan marks it failed and goes on
    lock = OutputLock(out, shown_out) if out is not None else None
    try:
        done, save = {}, None
        units = plan_units(shards, options)
        if out is not None:
            remove_final_outputs(out)
            if remote_out:
                remove_remote_final_outputs(remote_out)
            checkpoints = Checkpoints(out, run_fingerprint(units, index, options, __version__), resume, shown_out)
            done, save = checkpoints.done, checkpoints.save
        if options.write_clean or options.write_flagged:
            from .writers import remove_temporaries

            for root in (options.write_clean, options.write_flagged):
                if root is not None:
                    remove_temporaries(_path(root))
        todo = [n for n in range(len(units)) if n not in done]
        emit("scan_started", {"shards": len(shards), "pieces": len(units), "resumed_shards": len(done),
                              "bytes": sum(s.size for s in shards), "index": index.shown, "out": shown_out})
        if progress is not None and hasattr(progress, "total_bytes"):
            progress.total_bytes = sum(units[n].size for n in todo)

        def finished(i: int, result: ShardResult) -> ShardResult:
            if save:
                save(todo[i], result)
            piece = units[todo[i]].row_groups
            emit("shard_finished", {"shard": result.shard, "status": result.status, "error": result.error,
                                    "documents": result.documents, "flagged_documents": result.flagged_documents,
                                    "bad_records": result.bad_records, "seconds": round(result.seconds, 3),
                                    **({"row_groups": [piece[0], piece[-1]]} if piece else {})})
            # its matches are in its checkpoint now (and needed only there): memory stays
            # flat however many documents the dataset flags
            return dataclasses.replace(result, matches=MATCH_SCHEMA.empty_table())

        if options.executor == "ray":
            new = run_ray([units[n] for n in todo], index, options, progress, finished, options.ray_address)
        else:
            new = run_local([units[n] for n in todo], index, options, progress, on_result=finished)
        done.update(zip(todo, new))
        results = []  # one per shard: its pieces merged
        for n in range(len(units)):
            if n == 0 or units[n].path != units[n - 1].path:
                results.append([])
            results[-1].append(done[n])
        results = [parts[0] if len(parts) == 1 else merge_pieces(parts, options.top_matches) for parts in results]
        rules = {"verify": options.verify, "min_anchors": options.min_anchors, "miss_penalty": options.miss_penalty,
                 "min_words": options.min_words}
        report = build_report(results, index_summary=index.summary(), started_at=started, finished_at=_now(),
                              skipped=skipped, top_k=options.top_matches, version=__version__, match_rules=rules)
        if options.profile is not None:  # the style estimate beside the near-duplicate rate
            from .profile import open_cached
            from .style_report import add_ai_share

            add_ai_share(report, results, open_cached(options.profile))
        if out is not None:
            ok = {r.shard for r in results if r.status == "ok"}  # a shard with a failed piece has no matches
            matches = [checkpoints.matches_file(n) for n in range(len(units)) if done[n].shard in ok]
            write_outputs(out, report, matches, evidence_table(results))
            if remote_out:
                upload_final_outputs(out, remote_out)
            checkpoints.clear()
    finally:
        if lock is not None:
            lock.release()
    t = report["totals"]
    emit("scan_finished", {"documents": t["documents"], "flagged_documents": t["flagged_documents"],
                           "contamination_rate": t["contamination_rate"], "ci95": t["ci95"],
                           "failed_shards": t["errors"]["failed_shards"]})
    return ScanReport(report, remote_out or out)
