"""The records that flow between the stages: shards, batches of text, bad records, a shard's
result, and the schemas of the tables a scan writes (``matches.parquet``,
``evidence.parquet``). Data only: every stage above imports them, none of them imports a stage.
"""

from __future__ import annotations

import importlib.abc
import sys
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HISTOGRAM_BINS = 10  # best-candidate similarity in bins of 0.1
MAX_ERROR_EXAMPLES = 5

BAD_REASONS = (
    "malformed_json",
    "text_missing",
    "text_no_match",  # a selector's list has no item it picks (messages[role=assistant]: none)
    "text_null",
    "text_not_string",
    "invalid_utf8",
    "not_an_object",
)


@dataclass(frozen=True)
class Shard:
    """One input file (or, with ``row_groups``, a piece of a Parquet file)."""

    path: str  # absolute path, or the URI of a remote file (its query kept: it reopens the file)
    relpath: str  # '/'-separated path relative to the root it was found under
    format: str  # "parquet" | "jsonl" | "arrow"
    size: int  # bytes on disk
    # a piece of a Parquet shard: only these row groups, rows numbered as in the whole file
    row_groups: tuple[int, ...] | None = None
    mtime_ns: int | None = field(default=None, compare=False)  # remote files: from the listing


@dataclass(frozen=True)
class Skipped:
    """A path that discovery met and did not take as a shard, and why."""

    path: str
    reason: str
    failed: bool = False  # it could not be read (a directory that cannot be listed): a failed input, not a skip


@dataclass(frozen=True)
class Fields:
    """The fields a reader extracts: the text, and optionally an id and a label, each a
    selector (``doc.body``, ``messages[role=assistant].content``, ``text|content``: see
    contamscan.formats.fields). ``per_turn``: each list item the text selector picks is a
    unit of its own (``Batch.turns``) instead of the items joined into one text."""

    text: str = "text"
    id: str | None = None
    label: str | None = None
    per_turn: bool = False


@dataclass(frozen=True)
class BadRecord:
    row: int  # 0-based record index in the shard
    line: int | None  # 1-based line number (JSON Lines), None for Parquet/Arrow
    reason: str  # one of BAD_REASONS
    detail: str


@dataclass(frozen=True)
class Batch:
    """Good texts of a stretch of a shard, with the bad records met on the way."""

    texts: pa.LargeStringArray
    ids: pa.LargeStringArray | None
    labels: pa.LargeStringArray | None
    rows: np.ndarray  # int64 record index of each good record
    bad: tuple[BadRecord, ...]
    n_records: int  # good + bad records covered by this batch
    raw_bytes: int  # on-disk bytes consumed by this batch (sums to the file size)
    # per turn (Fields.per_turn): each text is one list item of record rows[i], at position
    # turns[i] in its list (-1: the selector has no list); rows then repeat. None otherwise
    turns: np.ndarray | None = None


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
    ("turn", pa.int64()),  # per turn (`per_turn`): the list item's position; null otherwise
    ("rank", pa.int32()),  # 1: the document's strongest match; 2, 3, ...: its other sources
])

SHARED_WITH_KNOWN_HUMAN = "shared_with_known_human"  # the kind of a match that flags nothing (--known-human)


def empty(schema: pa.Schema) -> pa.Table:
    """A table of no rows (``Schema.empty_table`` imports pandas: 0.2 s of a short run)."""
    return pa.Table.from_batches([], schema)


def pyarrow_without_pandas() -> None:
    """Let pyarrow's first check for pandas find none, in a process that hands pyarrow no
    pandas objects (the CLI's): pyarrow imports pandas on its first ``pa.array``, 0.2 s of a
    short run. Later ``to_pandas`` calls still work: pyarrow imports pandas again when asked
    for it."""
    if "pandas" in sys.modules:
        return

    class NoPandas(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pandas":
                raise ImportError("not for pyarrow's first check")
            return None

    blocker = NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


def read_parquet(source) -> pa.Table:
    """A whole Parquet file (a path or file object) as a table: ``pq.read_table`` goes through
    ``pyarrow.dataset``, whose import (and pandas') costs a short run 0.3 s."""
    return pq.ParquetFile(source).read()


def write_arrow(path: str, table: pa.Table) -> None:
    """A table as an Arrow IPC file, uncompressed: for a scan's own intermediate files, which
    it reads back once (a small Parquet file costs ~1 ms to write and another to read, an
    Arrow one a tenth of that)."""
    with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)


def read_arrow(path) -> pa.Table:
    """An Arrow IPC file written by :func:`write_arrow`, read whole into memory."""
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_file(f).read_all()


def numpy_of(values) -> np.ndarray:
    """A numeric or boolean Arrow array (or chunked array) as numpy: read from its buffers,
    as ``to_numpy`` would but without its first call's import of pandas. Nulls read as
    ``to_numpy(zero_copy_only=False)`` gives them."""
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return numpy_of(values.chunk(0))
        return np.concatenate([numpy_of(c) for c in values.chunks]) if values.num_chunks else \
            np.zeros(0, values.type.to_pandas_dtype())
    if values.null_count:
        return values.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.uint8())
        return np.frombuffer(values.buffers()[1], np.uint8)[values.offset:values.offset + len(values)].view(np.bool_)
    dtype = np.dtype(values.type.to_pandas_dtype())
    buf = values.buffers()[1]
    if buf is None:
        return np.zeros(0, dtype)
    return np.frombuffer(buf, dtype)[values.offset:values.offset + len(values)]


def flags(matches: pa.Table) -> np.ndarray:
    """Which rows of matches.parquet (or of a batch's part of it) flag their document: all but
    the matches through text known to be human-written (``kind`` shared_with_known_human)."""
    return numpy_of(pc.not_equal(matches.column("kind"), SHARED_WITH_KNOWN_HUMAN))


def flagging(matches: pa.Table) -> pa.Table:
    """The rows of matches.parquet that flag their document (:func:`flags`)."""
    return matches.filter(pa.array(flags(matches)))


_SPAN = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))
EVIDENCE_SCHEMA = pa.schema([
    ("shard", pa.string()),
    ("rank", pa.int32()),  # in the shard's top matches (report.json's top_matches order)
    ("row", pa.int64()),
    ("doc_id", pa.string()),
    ("ref_id", pa.string()),
    ("label", pa.string()),
    ("kind", pa.string()),
    ("similarity", pa.float64()),
    ("containment", pa.float64()),
    ("ambiguous", pa.bool_()),
    ("alt_ref_id", pa.string()),
    ("alt_label", pa.string()),
    ("char_start", pa.int64()),  # the matched span in the document (as in matches.parquet)
    ("char_end", pa.int64()),
    ("doc_chars", pa.int64()),  # length of the document
    ("doc_excerpt_start", pa.int64()),
    ("doc_excerpt", pa.string()),
    ("doc_highlights", _SPAN),  # shared text: character spans in doc_excerpt
    ("ref_chars", pa.int64()),  # null when the index does not store texts
    ("ref_excerpt_start", pa.int64()),
    ("ref_excerpt", pa.string()),
    ("ref_highlights", _SPAN),  # shared text: character spans in ref_excerpt
    ("shared_shingles", pa.int64()),  # distinct shingles found in both excerpts
    ("note", pa.string()),
])


def match_order(containment: float, similarity: float, row: int) -> tuple:
    """Sort key of the strongest matches first: how much of the reference is in the document
    (a passage copied into a long document has a low Jaccard similarity but is as much a copy),
    then Jaccard similarity, then the row (a total order within a shard)."""
    return (-containment, -similarity, row)


@dataclass(frozen=True)
class ShardResult:
    """What one shard contributed. ``matches`` has one row per flagged document and source."""

    shard: str
    status: str  # "ok" | "failed"
    error: str | None = None
    documents: int = 0
    bytes: int = 0
    flagged_documents: int = 0
    flagged_bytes: int = 0
    by_label: dict = field(default_factory=dict)  # flagged documents by their strongest match's label
    by_label_any: dict = field(default_factory=dict)  # ... by every label among their matches
    similarity_histogram: tuple = (0,) * HISTOGRAM_BINS
    bad_records: int = 0
    bad_by_reason: dict = field(default_factory=dict)
    bad_examples: tuple = ()
    matches: pa.Table = field(default_factory=MATCH_SCHEMA.empty_table)
    seconds: float = 0.0
    evidence: tuple = ()  # the top matches with excerpts (EVIDENCE_SCHEMA rows, JSON-serialisable)
    ai_share: dict | None = None  # the style estimate (with a profile; contamscan.style.StyleTally.result)
    content: str | None = None  # xxh3-128 of the bytes scanned (contamscan.scanner.fingerprint); None: remote


# --------------------------------------------------------------------------- report.json
# The shape of report.json (the contract of the design): keys are added, never renamed.


class ErrorsEntry(TypedDict, total=False):
    bad_records: int
    by_reason: dict[str, int]
    examples: list[dict]  # shards: {file, row, line, reason, detail}
    failed_shards: int  # totals only
    skipped_files: list[dict]  # totals only: {path, reason}
    failed_inputs: list[dict]  # totals only: {path, reason}: paths that could not be read (also in skipped_files)


class Counts(TypedDict, total=False):
    """What a shard entry and the totals both hold."""

    documents: int
    bytes: int
    flagged_documents: int
    flagged_bytes: int
    contamination_rate: float
    ci95: list[float]
    byte_rate: float
    by_label: dict[str, int]
    errors: ErrorsEntry
    ai_share: dict | None


class ShardEntry(Counts, total=False):
    shard: str
    status: str
    error: str | None
    similarity_histogram: list[int]
    top_matches: list[dict]


class Totals(Counts, total=False):
    shards: int


class Report(TypedDict, total=False):
    tool: dict
    index: dict
    match_rules: dict
    started_at: str
    finished_at: str
    totals: Totals
    shards: list[ShardEntry]
    style: dict
