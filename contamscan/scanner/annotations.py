"""Annotation files (``scan --write-annotations DIR``): per shard, one row per input record,
in the record order of the shard, saying whether it is flagged, by which model and reference,
and where; aligned with the input as dolma's attributes files are with their documents.

Layout: ``DIR/<the shard's relative path, its format's extension replaced>.jsonl.gz`` (dolma's
``attributes/<name>/`` tree: ``--write-annotations dataset/attributes/contamscan``) or
``.parquet`` (``annotations_format``). A JSON line is::

    {"id": "doc-7", "row": 7, "attributes": {"contamscan__flagged": true,
     "contamscan__label": "gpt-4o", "contamscan__ref_id": "r12", "contamscan__containment": 0.98,
     "contamscan__spans": [[0, 812, 0.98]], "contamscan__error": null}}

``spans`` are dolma spans, ``[start, end, score]`` in characters of the text, one per
flagging match, the score its containment (with ``per_turn``, offsets are within the turn
named by ``contamscan__turns``, in the same order). A record that is not a document (a bad
record: malformed JSON, a null or missing text, invalid UTF-8) has its row, an id of null
unless the reader gave one, ``flagged`` false and its reason in ``error``. The Parquet form has
the columns ``row, id`` and :data:`~contamscan.scanner.matcher.ANNOTATION_SCHEMA`'s.

Each file is written to a hidden temporary and renamed (uploaded) whole when its shard is
done; a shard scanned in pieces writes one part per piece under ``DIR/.contamscan-parts/``,
joined in row order into the shard's file once every piece is done (so ``--resume`` keeps
the parts of finished pieces). A failed shard has no annotation file.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ContamscanError
from ..formats.base import EXTENSIONS
from ..io import Location
from ..model import Batch, Shard, numpy_of
from .match import BatchMatches
from .matcher import ANNOTATION_SCHEMA, annotations

PARTS = ".contamscan-parts"
SUFFIX = {"jsonl": ".jsonl.gz", "parquet": ".parquet"}
FILE_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), *ANNOTATION_SCHEMA])
PREFIX = "contamscan__"


def annotation_relpath(relpath: str, fmt: str) -> str:
    """Where a shard's annotations go below the annotations directory: its relative path with
    its format's extension replaced (``web/part-0.parquet`` -> ``web/part-0.jsonl.gz``)."""
    low = relpath.lower()
    stem = next((relpath[: len(relpath) - len(sfx)] for sfx, _, _ in EXTENSIONS if low.endswith(sfx)), relpath)
    return stem + SUFFIX[fmt]


def target(root: str, shard: Shard, fmt: str) -> Location:
    return Location.of(root).join(annotation_relpath(shard.relpath, fmt))


def part(root: str, shard: Shard, fmt: str) -> Location:
    """The part of a piece of a shard (named by its first row group: pieces sort in row order)."""
    return Location.of(root).join(PARTS, annotation_relpath(shard.relpath, fmt), f"{shard.row_groups[0]:06d}{SUFFIX[fmt]}")


def check_collisions(shards, root: str, fmt: str) -> None:
    """Two shards whose annotation files would be one (``a.jsonl`` and ``a.parquet``) fail the
    scan before any work."""
    seen = {}
    for s in shards:
        rel = annotation_relpath(s.relpath, fmt)
        if rel in seen and seen[rel] != s.relpath:
            raise ContamscanError(f"the annotations of {seen[rel]} and {s.relpath} would both be written as {rel} "
                                  "below `write_annotations`; rename one of them or scan them apart")
        seen[rel] = s.relpath


def _json_lines(table: pa.Table, per_turn: bool) -> bytes:
    lines = []
    for r in table.to_pylist():
        spans = r["spans"]
        attrs = {PREFIX + "flagged": r["flagged"], PREFIX + "label": r["label"], PREFIX + "ref_id": r["ref_id"],
                 PREFIX + "containment": r["containment"],
                 PREFIX + "spans": [[s["start"], s["end"], s["containment"]] for s in spans],
                 PREFIX + "error": r["error"]}
        if per_turn:
            attrs[PREFIX + "turns"] = [s["turn"] for s in spans]
        lines.append(json.dumps({"id": r["id"], "row": r["row"], "attributes": attrs}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode() if lines else b""


class _GzipOut(gzip.GzipFile):
    """gzip into a file it closes too."""

    def close(self) -> None:
        raw = self.fileobj
        super().close()
        if raw is not None and not raw.closed:
            raw.close()


def _gzip(path: str) -> gzip.GzipFile:
    """A gzip stream with no name and no time in its header: the same records give the same
    bytes (a resumed or pieced scan's files equal an uninterrupted whole one's)."""
    return _GzipOut(filename="", mode="wb", fileobj=open(path, "wb"), compresslevel=6, mtime=0)


class AnnotationWriter:
    """The annotation file of one unit of work (a shard, or a piece's part), written as its
    batches go by: rows must come in order, with no record missing."""

    def __init__(self, shard: Shard, root: str, fmt: str, per_turn: bool = False):
        self.shard, self.fmt, self.per_turn = shard, fmt, per_turn
        self.location = part(root, shard, fmt) if shard.row_groups else target(root, shard, fmt)
        self._pending = self.location.writing(hidden=True)
        self._tmp = self._pending.__enter__()
        if fmt == "jsonl":
            self._out = _gzip(self._tmp)
        else:
            self._out = pq.ParquetWriter(self._tmp, FILE_SCHEMA, compression="zstd")
        self.rows = 0
        self._next = None  # the row the next record must have

    def add(self, batch: Batch, m: BatchMatches | None) -> None:
        """A batch's records: its documents (with their matches ``m``) and its bad records."""
        parts = []
        if m is not None and len(batch.texts):
            records = batch.rows if batch.turns is not None else None
            ann = annotations(m, batch.texts, records, batch.turns)
            rows, first = np.unique(batch.rows, return_index=True) if records is not None else (batch.rows, None)
            ids = batch.ids if first is None or batch.ids is None else batch.ids.take(pa.array(first))
            ids = ids.cast(pa.string()) if ids is not None else pa.nulls(len(rows), pa.string())
            parts.append(pa.table({"row": pa.array(rows, pa.int64()), "id": ids,
                                   **{c: ann.column(c) for c in ann.column_names}}, schema=FILE_SCHEMA))
        if batch.bad:
            n = len(batch.bad)
            parts.append(pa.table({
                "row": pa.array([b.row for b in batch.bad], pa.int64()), "id": pa.nulls(n, pa.string()),
                "flagged": pa.array([False] * n), **{c: pa.nulls(n, ANNOTATION_SCHEMA.field(c).type)
                                                     for c in ("label", "ref_id", "similarity", "containment", "kind")},
                "sources": pa.array([0] * n, pa.int32()), "spans": pa.array([[]] * n, ANNOTATION_SCHEMA.field("spans").type),
                "error": pa.array([b.reason for b in batch.bad], pa.string())}, schema=FILE_SCHEMA))
        if not parts:
            return
        table = pa.concat_tables(parts)
        table = table.take(pa.array(np.argsort(numpy_of(table.column("row")), kind="stable")))
        rows = numpy_of(table.column("row"))
        start = self._next if self._next is not None else int(rows[0])
        if not np.array_equal(rows, np.arange(start, start + len(rows))):  # one row per record, none missing
            raise ContamscanError(f"{self.shard.relpath}: annotation rows {int(rows[0])}..{int(rows[-1])} are not the "
                                  f"records {start}..{start + len(rows) - 1} in order (a reader's fault: report it)")
        self._next = start + len(rows)
        self.rows += len(rows)
        if self.fmt == "jsonl":
            self._out.write(_json_lines(table, self.per_turn))
        else:
            self._out.write_table(table)

    def commit(self, records: int) -> None:
        """The file, whole, under its name: after the unit's last batch (``records``: how
        many the scan read, which must be its rows)."""
        self._out.close()
        if self.rows != records:
            self.discard()
            raise ContamscanError(f"{self.shard.relpath}: {self.rows} annotation rows for {records} records")
        try:
            self._pending.commit()
        finally:
            self._pending.discard()

    def discard(self) -> None:
        try:
            self._out.close()
        except (OSError, ValueError, pa.ArrowException):
            pass
        self._pending.discard()


def delete(root: str, shard: Shard, fmt: str) -> None:
    """No annotation file of a failed shard, not even an old one."""
    try:
        target(root, shard, fmt).delete()
    except ContamscanError:
        pass  # the store cannot be reached: the shard has failed all the same


def assemble(root: str, pieces: list[Shard], fmt: str) -> None:
    """Join the parts of a shard's pieces (in order) into the shard's annotation file, then
    remove the parts. Already joined (a resumed scan that had joined it): nothing to do."""
    out = target(root, pieces[0], fmt)
    parts = [part(root, p, fmt) for p in pieces]
    missing = [p for p in parts if not p.exists()]
    if missing:
        if out.exists():
            return
        raise ContamscanError(f"{pieces[0].relpath}: the annotations of a finished piece are missing "
                              f"({missing[0].shown}); scan again without `resume`")
    with out.writing(hidden=True) as tmp:
        if fmt == "jsonl":
            with _gzip(tmp) as w:
                for p in parts:
                    with p.open_stream() as raw, gzip.GzipFile(fileobj=raw) as r:
                        shutil.copyfileobj(r, w, 1 << 20)
        else:
            with pq.ParquetWriter(tmp, FILE_SCHEMA, compression="zstd") as w:
                for p in parts:
                    f = pq.ParquetFile(p.open_random())
                    for g in range(f.num_row_groups):
                        w.write_table(f.read_row_group(g))
    for p in parts:
        p.delete()
    remove_parts_dir(root, pieces[0], fmt)


def remove_parts_dir(root: str, shard: Shard, fmt: str) -> None:
    """The (local) directory of a shard's parts, once empty; the parts tree, once empty."""
    loc = Location.of(root)
    if loc.remote:
        return  # an object store has no directories
    d = loc.join(PARTS, annotation_relpath(shard.relpath, fmt))
    top = loc.join(PARTS)
    path = d.path
    while path.startswith(top.path):
        try:
            os.rmdir(path)
        except OSError:
            return
        path = path.rsplit("/", 1)[0]


def clear_parts(root: str) -> None:
    """A new (not resumed) scan starts with no parts of an earlier one."""
    loc = Location.of(root).join(PARTS)
    if not loc.remote:
        shutil.rmtree(loc.path, ignore_errors=True)
