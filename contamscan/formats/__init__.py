"""Shard formats: one module each, holding its reader and its clean/flagged splitter.

* :func:`read_batches` streams a shard as :class:`~contamscan.model.Batch` objects of good
  texts in bounded memory, every bad record counted instead of crashing the scan;
* :func:`check_fields` / :func:`has_field` look at a shard's schema (or first records) cheaply;
* :func:`split_shard` writes a shard's clean copy (without the flagged records) and flagged
  copy (only those), in the input's format, schema and compression.

A ``.json`` file is JSON Lines, or one JSON array of records (:mod:`.json_array`): its
first character tells. Before any reader sees a shard, its first bytes are checked against
its name (:func:`~contamscan.formats.base.check_contents`): a ``.jsonl`` of gzip bytes, a
``.gz`` that is not gzip, a ``.parquet`` without ``PAR1`` at both ends fail the shard.

A format is added by adding one module with ``read``, ``check``, ``has_field`` and ``split``
and naming its extensions in :data:`contamscan.formats.base.EXTENSIONS`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import ContamscanError, OutputWriteError
from ..io import Location
from ..model import Batch, Fields, Shard
from . import arrow_ipc, json_array, jsonl, parquet
from .base import SplitCounts, check_contents, classify

FORMATS = {"parquet": parquet, "arrow": arrow_ipc, "jsonl": jsonl}

__all__ = ["FORMATS", "SplitCounts", "classify", "read_batches", "check_fields", "has_field",
           "split_shard", "row_group_sizes"]


def _module(shard: Shard):
    m = FORMATS.get(shard.format)
    if m is None:
        raise ContamscanError(f"{shard.relpath}: unknown shard format {shard.format!r}")
    check_contents(shard)  # its bytes are what its name says, before any reader sees them
    if m is jsonl and json_array.applies(shard):  # a .json file holding one JSON array of records
        return json_array
    return m


def read_batches(shard: Shard, fields: Fields, batch_bytes: int = 32 << 20, strict: bool = False) -> Iterator[Batch]:
    """Stream a shard as Batches of about ``batch_bytes`` of input, in bounded memory.

    Bad records are reported in ``Batch.bad`` and skipped (strict=True: the first one
    raises ContamscanError). A failure of the file itself raises ShardReadError, possibly
    after some batches were yielded. Parquet/Arrow shards missing a requested field raise
    FieldMissingError (JSON Lines report ``text_missing`` per record instead).
    """
    return _module(shard).read(shard, fields, batch_bytes, strict)


def check_fields(shard: Shard, fields: Fields) -> None:
    """Cheap look at the schema; raise FieldMissingError if a requested field is absent.

    Fields are selectors (:mod:`contamscan.formats.fields`). Parquet/Arrow: the schema (the
    text must also be a string column, else FieldTypeError, which suggests a selector for a
    list of chat turns). JSON Lines: the first ~100 valid objects (a field absent from all of
    them counts as missing; a text that none of them gives as a string but some as another
    value is a FieldTypeError; an empty file, or one with no valid object, passes).
    Raises ShardReadError if the file cannot be read.
    """
    _module(shard).check(shard, fields)


def has_field(shard: Shard, name: str) -> bool:
    """Whether selector ``name`` (one of its paths) exists in the shard, by the same rules as
    :func:`check_fields`. Raises ShardReadError if the file can't be read."""
    return _module(shard).has_field(shard, name)


def row_group_sizes(shard: Shard) -> list[int]:
    """Bytes of each row group of a Parquet shard ([] for other formats or unreadable files)."""
    return parquet.row_group_sizes(shard) if shard.format == "parquet" else []


def split_shard(shard: Shard, flagged_rows: np.ndarray, clean_root, flagged_root) -> SplitCounts:
    """Write ``clean_root / shard.relpath`` (every record not in ``flagged_rows``) and
    ``flagged_root / shard.relpath`` (only those in it); a root of None skips that side.
    Roots are paths or URIs.

    ``flagged_rows``: sorted unique record indices, numbered as the readers number them.
    Bad records (e.g. malformed JSON lines) are records too and go to the clean side unless
    flagged. ``clean + flagged`` is the shard's number of records. A side with no records
    still gets a valid empty file, so the output trees mirror the input tree.

    Raises ShardReadError if the input cannot be read, OutputWriteError if an output cannot
    be written, ValueError if ``flagged_rows`` is not sorted, unique and within the shard.
    No output or temporary file is left behind on error.
    """
    flagged_rows = _checked_rows(flagged_rows)
    split = _module(shard).split
    rel = shard.relpath.split("/")
    if shard.relpath.startswith("/") or ".." in rel:
        raise ContamscanError(f"{shard.relpath}: cannot be written below an output directory")
    source = Location.of(shard.path)
    targets = [Location.of(root).join(shard.relpath) if root is not None else None
               for root in (clean_root, flagged_root)]
    for t in targets:
        if t is not None and t.key == source.key:
            raise ContamscanError(f"{shard.relpath}: output {t.shown} is the input itself")
    pending = [t.writing(hidden=True) if t is not None else None for t in targets]
    try:
        try:
            paths = [p.__enter__() if p is not None else None for p in pending]
        except ContamscanError as e:
            raise OutputWriteError(f"cannot create the output of {shard.relpath}: {e}") from e
        try:
            counts = split(shard, flagged_rows, *paths)
        except OSError as e:  # read errors were already turned into ShardReadError
            raise OutputWriteError(f"cannot write the output of {shard.relpath}: {e.strerror or e}") from e
        if counts.flagged != len(flagged_rows):
            raise ValueError(f"{shard.relpath}: flagged row {int(flagged_rows[-1])} is past the "
                             f"shard's {counts.clean + counts.flagged} records")
        for p in pending:
            if p is not None:
                try:
                    p.commit()
                except ContamscanError as e:
                    raise OutputWriteError(f"cannot write the output of {shard.relpath}: {e}") from e
        return counts
    finally:
        for p in pending:
            if p is not None:
                p.discard()


def _checked_rows(flagged_rows) -> np.ndarray:
    rows = np.asarray(flagged_rows, dtype=np.int64).ravel()
    if len(rows) and (rows[0] < 0 or (len(rows) > 1 and not (np.diff(rows) > 0).all())):
        raise ValueError("flagged_rows must be sorted, unique and non-negative")
    return rows
