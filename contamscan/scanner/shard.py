"""Scanning one shard (or a piece of one): its batches stream by, each is matched, and the
shard's totals, matches, evidence and style estimate are summed up into a ShardResult;
the clean/flagged copies are written when asked. Also the plan of a scan's units of work
(large Parquet shards cut into pieces of whole row groups) and the merge of a shard's pieces.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import ScanOptions
from ..errors import ContamscanError, FieldTypeError, OutputWriteError
from ..formats import check_fields, has_field, read_batches, row_group_sizes, split_shard
from ..index import ReferenceIndex
from ..io import Location
from ..model import (
    HISTOGRAM_BINS,
    MATCH_SCHEMA,
    MAX_ERROR_EXAMPLES,
    BadRecord,
    Batch,
    Fields,
    Shard,
    ShardResult,
    empty,
    flagging,
    match_order,
    numpy_of,
)
from ..report.evidence import EvidenceKeeper
from ..sketch.minhash import Hasher
from ..style.estimate import StyleTally
from ..style.profile import open_cached
from .annotations import AnnotationWriter
from .annotations import delete as delete_annotations
from .fingerprint import content_digest
from .match import match_batch


class ShardTally:
    """Running totals of one shard while its batches stream by."""

    def __init__(self, shard: Shard, evidence: EvidenceKeeper | None = None, style: StyleTally | None = None,
                 annotations: AnnotationWriter | None = None):
        self.shard = shard
        self.annotations = annotations  # one row per record, with --write-annotations
        self.evidence = evidence
        self.style = style  # the style estimate, with a profile
        self.documents = self.bytes = self.flagged = self.flagged_bytes = 0
        self.by_label = Counter()  # flagged documents by their strongest match's label
        self.by_label_any = Counter()  # flagged documents by every label among their matches
        self.histogram = np.zeros(HISTOGRAM_BINS, np.int64)
        self.bad = Counter()
        self.examples: list[BadRecord] = []
        self.match_parts: list[pa.Table] = []

    def add_bad(self, records) -> None:
        for r in records:
            self.bad[r.reason] += 1
            if len(self.examples) < MAX_ERROR_EXAMPLES:
                self.examples.append(r)

    def add(self, batch: Batch, index: ReferenceIndex, hasher: Hasher, options: ScanOptions) -> None:
        """Match a batch's texts and add what they hold to the shard's totals."""
        self.add_bad(batch.bad)
        if not len(batch.texts):
            if self.annotations is not None:
                self.annotations.add(batch, None)
            return
        if batch.turns is not None:
            return self._add_turns(batch, index, hasher, options)
        m = match_batch(batch.texts, index, hasher, options, batch.ids)
        if self.annotations is not None:
            self.annotations.add(batch, m)
        if m.invalid.any():
            rows = batch.rows[np.nonzero(m.invalid)[0]]
            if options.strict:
                raise ContamscanError(f"{self.shard.relpath}: row {int(rows[0])}: invalid_utf8 (text is not valid UTF-8)")
            self.add_bad(BadRecord(int(r), None, "invalid_utf8", "text is not valid UTF-8") for r in rows)
        valid = ~m.invalid
        n_bytes = numpy_of(pc.binary_length(batch.texts)).astype(np.int64)
        self.documents += int(valid.sum())
        self.bytes += int(n_bytes[valid].sum())
        if self.style is not None:
            self.style.add(batch.texts if valid.all() else batch.texts.filter(pa.array(valid)), hasher)
        self.histogram += m.histogram
        if not len(m.hit):
            return
        counted = m.flags()
        docs = np.unique(m.hit[counted])
        self.flagged += len(docs)
        self.flagged_bytes += int(n_bytes[docs].sum())
        self._count_labels(m.hit[counted], m.table.filter(pa.array(counted)))
        self._keep(batch, m, m.hit, None)

    def _count_labels(self, docs: np.ndarray, table: pa.Table) -> None:
        """by_label from each document's strongest match (its first row), by_label_any from
        every label among its rows, once per document (``docs``: each row's document)."""
        if not len(docs):  # every match of the batch holds through known human text
            return
        labels = np.asarray(table.column("label").to_pylist(), dtype=object)
        first = np.flatnonzero(np.append(True, docs[1:] != docs[:-1]))
        self.by_label.update(labels[first].tolist())
        self.by_label_any.update(label for _, label in set(zip(docs.tolist(), labels.tolist())))

    def _keep(self, batch: Batch, m, hit: np.ndarray, turns: np.ndarray | None) -> None:
        """The match rows of texts ``hit`` (all of ``m``'s rows, in order)."""
        turn = pa.nulls(len(hit), pa.int64()) if turns is None else \
            pa.array(turns, pa.int64(), mask=turns < 0)
        part = pa.table({"shard": pa.array([self.shard.relpath] * len(hit), pa.string()),
                         "row": pa.array(batch.rows[hit], pa.int64()),
                         **{name: m.table.column(name) for name in m.table.column_names},
                         "turn": turn}, schema=MATCH_SCHEMA)
        self.match_parts.append(part)
        if self.evidence is not None:  # evidence of what flags documents
            counted = m.flags()
            self.evidence.offer(part.filter(pa.array(counted)), batch.texts, hit[counted], m.refs[counted])

    def _add_turns(self, batch: Batch, index: ReferenceIndex, hasher: Hasher, options: ScanOptions) -> None:
        """Per turn: each text is one turn of record ``batch.rows[i]``; documents are still
        records (a record with a flagged turn is flagged, its bytes are its turns'), so
        documents + bad records = records; a match row names its turn."""
        m = match_batch(batch.texts, index, hasher, options, batch.ids)
        if self.annotations is not None:
            self.annotations.add(batch, m)
        rows = batch.rows
        bad_rows = np.unique(rows[m.invalid])
        if len(bad_rows):
            if options.strict:
                raise ContamscanError(f"{self.shard.relpath}: row {int(bad_rows[0])}: invalid_utf8 (text is not "
                                      f"valid UTF-8)")
            self.add_bad(BadRecord(int(r), None, "invalid_utf8", "a turn is not valid UTF-8") for r in bad_rows)
        valid = ~np.isin(rows, bad_rows)
        n_bytes = numpy_of(pc.binary_length(batch.texts)).astype(np.int64)
        self.documents += len(np.unique(rows[valid]))
        self.bytes += int(n_bytes[valid].sum())
        if self.style is not None:
            self.style.add(batch.texts if valid.all() else batch.texts.filter(pa.array(valid)), hasher)
        self.histogram += m.histogram  # per turn with a candidate
        ok = np.flatnonzero(valid[m.hit])
        if not len(ok):
            return
        hit = m.hit[ok]
        m = dataclasses.replace(m, table=m.table.take(pa.array(ok)), hit=hit, refs=m.refs[ok])
        counted = m.flags()
        flagged_rows = np.unique(rows[hit[counted]])
        self.flagged += len(flagged_rows)
        self.flagged_bytes += int(n_bytes[valid & np.isin(rows, flagged_rows)].sum())
        # a record's first flagged turn's strongest match
        self._count_labels(rows[hit[counted]], m.table.filter(pa.array(counted)))
        self._keep(batch, m, hit, batch.turns[hit])

    def result(self, seconds: float) -> ShardResult:
        matches = pa.concat_tables(self.match_parts) if self.match_parts else empty(MATCH_SCHEMA)
        return ShardResult(
            shard=self.shard.relpath, status="ok", documents=self.documents, bytes=self.bytes,
            flagged_documents=self.flagged, flagged_bytes=self.flagged_bytes,
            by_label=dict(sorted(self.by_label.items())),
            by_label_any=dict(sorted(self.by_label_any.items())),
            similarity_histogram=tuple(int(x) for x in self.histogram),
            bad_records=sum(self.bad.values()), bad_by_reason=dict(sorted(self.bad.items())),
            bad_examples=tuple({"file": self.shard.relpath, "row": r.row, "line": r.line, "reason": r.reason,
                                "detail": r.detail} for r in self.examples),
            matches=matches, seconds=seconds,
            ai_share=self.style.result() if self.style is not None else None,
            evidence=self.evidence.rows(self.shard.relpath) if self.evidence is not None else (),
        )


def loud_failure(r: ShardResult, options: ScanOptions, shard: Shard | None = None) -> str | None:
    """Why a shard that was read must fail all the same, or None: it holds records and
    yields no document (every record bad: the wrong field type, a wrong layout), or more of
    its records are bad than ``max_bad_share`` allows. With ``shard``, a text field whose
    records all hold something else than a string says what they hold (the format's
    FieldTypeError, e.g. a list of chat turns, with the selector to use)."""
    records = r.documents + r.bad_records
    if not r.bad_records:
        return None
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r.bad_by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    if not r.documents:
        if shard is not None and set(r.bad_by_reason) == {"text_not_string"}:
            try:
                check_fields(shard, Fields(text=options.text_field))
            except FieldTypeError as e:
                return f"{r.shard}: {records:,} record(s) and no document: {e}"
        return f"{r.shard}: {records:,} record(s) and no document: every record is bad ({reasons})"
    if r.bad_records > options.max_bad_share * records:
        return (f"{r.shard}: {r.bad_records:,} of {records:,} records are bad ({r.bad_records / records:.2%}, above "
                f"`max_bad_share` {options.max_bad_share:.2%}): {reasons}")
    return None


def _sampled(rows: np.ndarray, share: float) -> np.ndarray:
    """Whether each record is in a ``share`` sample: a hash of its row number (splitmix64)
    below share * 2**64, so a record's fate depends on its row alone (the same on every run,
    for every piece and worker count)."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z < np.uint64(min(int(share * 2.0**64), 2**64 - 1))


def _keep(batch: Batch, keep: np.ndarray, bad) -> Batch:
    k = pa.array(keep)
    return dataclasses.replace(batch, texts=batch.texts.filter(k),
                               ids=batch.ids.filter(k) if batch.ids is not None else None,
                               labels=batch.labels.filter(k) if batch.labels is not None else None,
                               rows=batch.rows[keep], bad=tuple(bad),
                               turns=batch.turns[keep] if batch.turns is not None else None)


def quick_look(batch: Batch, options: ScanOptions, documents: int) -> Batch:
    """The part of a batch a quick look scans: with ``sample``, the sampled records (good and
    bad); with ``limit``, the first documents up to the limit (``documents`` are already
    scanned) and the bad records before the last of them."""
    if options.sample is not None and options.sample < 1:
        keep = _sampled(batch.rows, options.sample)
        bad = [b for b, s in zip(batch.bad, _sampled(np.array([b.row for b in batch.bad], np.int64),
                                                     options.sample).tolist()) if s]
        batch = _keep(batch, keep, bad)
    if options.limit is not None and documents + len(batch.rows) > options.limit:
        n = max(0, options.limit - documents)
        keep = np.zeros(len(batch.rows), bool)
        keep[:n] = True
        last = int(batch.rows[n - 1]) if n else -1
        batch = _keep(batch, keep, [b for b in batch.bad if b.row < last])
    return batch


def scan_shard(shard: Shard, index: ReferenceIndex, options: ScanOptions, hasher: Hasher | None = None,
               progress=None) -> ShardResult:
    """Scan one shard. A shard that cannot be read comes back with status "failed" and the
    reason; a bad record is counted and skipped (or, with ``strict``, fails the shard); a
    shard with no document but bad records, or too many bad records (``max_bad_share``),
    fails (:func:`loud_failure`).
    ``progress`` is called with each batch read."""
    t0 = time.perf_counter()
    hasher = hasher or index.hasher()
    style = StyleTally(open_cached(options.profile)) if options.profile is not None else None
    tally = ShardTally(shard, EvidenceKeeper(options.top_matches, index, hasher), style)
    try:
        content = content_digest(shard)  # before reading: what a resumed scan compares (its checkpoint keeps it)
    except (OSError, pa.ArrowException):
        content = None  # unreadable: reading it says why
    try:
        id_field = options.id_field if options.id_field is not None and has_field(shard, options.id_field) else None
        fields = Fields(text=options.text_field, id=id_field, per_turn=options.per_turn)
        if options.write_annotations is not None:
            tally.annotations = AnnotationWriter(shard, options.write_annotations, options.annotations_format,
                                                 options.per_turn)
        for batch in read_batches(shard, fields, batch_bytes=options.batch_bytes, strict=options.strict):
            if progress:
                progress(batch)
            if options.sample is not None or options.limit is not None:
                batch = quick_look(batch, options, tally.documents)
            tally.add(batch, index, hasher, options)
            del batch  # not held while the next one is read
            if options.limit is not None and tally.documents >= options.limit:
                break
        result = tally.result(time.perf_counter() - t0)
        failure = loud_failure(result, options, shard) if shard.row_groups is None else None  # pieces: once merged
        if failure is not None:
            raise ContamscanError(failure)
        if options.write_clean or options.write_flagged:
            flagged_rows = np.unique(numpy_of(flagging(result.matches).column("row")))
            counts = split_shard(shard, flagged_rows, options.write_clean, options.write_flagged)
            if counts.clean + counts.flagged != result.documents + result.bad_records:
                raise ContamscanError(f"{shard.relpath}: the clean and flagged outputs hold {counts.clean} + "
                                      f"{counts.flagged} records, the scan read {result.documents + result.bad_records}")
        if tally.annotations is not None:
            tally.annotations.commit(result.documents + result.bad_records)
    except ContamscanError as e:  # unreadable shard, or a bad record under strict
        if tally.annotations is not None:
            tally.annotations.discard()
        if options.write_annotations is not None and shard.row_groups is None:  # a piece's: when its shard is joined
            delete_annotations(options.write_annotations, shard, options.annotations_format)
        for root in (options.write_clean, options.write_flagged):  # no output of a failed shard, not even an old one
            if root is not None:
                try:
                    Location.of(root).join(shard.relpath).delete()
                except ContamscanError:
                    pass  # the store cannot be reached: the shard has failed all the same
        if isinstance(e, OutputWriteError):  # not the shard's fault: the scan stops, naming the output and why
            raise
        return ShardResult(shard=shard.relpath, status="failed", error=str(e), seconds=time.perf_counter() - t0)
    return dataclasses.replace(result, content=content)


PIECES = 64  # a dataset is cut into at least this many units where its row groups allow,
MIN_PIECE = 8 << 20  # of at least this many bytes: a few units per worker, so workers finish together


def plan_units(shards, options: ScanOptions) -> list[Shard]:
    """The scan's units of work, in shard order: each shard, or for a Parquet shard larger
    than the piece size, pieces of consecutive whole row groups of about that size (rows
    keep their numbers in the file, so merged pieces equal the whole shard). The piece size
    is ``options.piece_bytes``, or for a dataset of less than ``PIECES`` of those, its
    ``PIECES``-th part (at least ``MIN_PIECE``): five shards on two workers would otherwise
    keep one of them busy with the fifth while the other waits. The plan depends on the
    dataset only, not on the workers, so a resumed scan finds the same units."""
    if options.write_clean or options.write_flagged or options.profile or options.limit is not None:
        return list(shards)
    piece = min(options.piece_bytes, max(MIN_PIECE, sum(s.size for s in shards) // PIECES))
    units = []
    for s in shards:
        groups = row_group_sizes(s) if s.size > piece else []
        if len(groups) < 2:
            units.append(s)
            continue
        part, size = [], 0
        for g, n in enumerate(groups):
            if part and size + n > piece:
                units.append(dataclasses.replace(s, row_groups=tuple(part)))
                part, size = [], 0
            part.append(g)
            size += n
        units.append(dataclasses.replace(s, row_groups=tuple(part)))
    return units


def merge_pieces(parts: list[ShardResult], top_k: int) -> ShardResult:
    """One shard's result from the results of its pieces (in order): what a single task
    scanning the whole shard would have returned."""
    failed = [p for p in parts if p.status != "ok"]
    if failed:
        return ShardResult(shard=parts[0].shard, status="failed", error=failed[0].error,
                           seconds=sum(p.seconds for p in parts))
    by_label, by_label_any, bad = Counter(), Counter(), Counter()
    for p in parts:
        by_label.update(p.by_label)
        by_label_any.update(p.by_label_any)
        bad.update(p.bad_by_reason)
    evidence = sorted((e for p in parts for e in p.evidence),
                      key=lambda e: match_order(e["containment"], e["similarity"], e["row"]))[:top_k]
    return ShardResult(
        shard=parts[0].shard, status="ok", error=None,
        documents=sum(p.documents for p in parts), bytes=sum(p.bytes for p in parts),
        flagged_documents=sum(p.flagged_documents for p in parts),
        flagged_bytes=sum(p.flagged_bytes for p in parts),
        by_label=dict(sorted(by_label.items())),
        by_label_any=dict(sorted(by_label_any.items())),
        similarity_histogram=tuple(int(x) for x in np.sum([p.similarity_histogram for p in parts], axis=0)),
        bad_records=sum(p.bad_records for p in parts), bad_by_reason=dict(sorted(bad.items())),
        bad_examples=tuple(e for p in parts for e in p.bad_examples)[:MAX_ERROR_EXAMPLES],
        matches=pa.concat_tables([p.matches for p in parts]),
        seconds=sum(p.seconds for p in parts),
        evidence=tuple({**e, "rank": rank} for rank, e in enumerate(evidence)),
    )
