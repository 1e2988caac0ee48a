"""Find input shards and stream their text in bounded memory.

Two halves:

* :func:`discover` turns the user's inputs (directories, files, glob patterns) into a
  deterministic, de-duplicated list of :class:`Shard` plus the paths it skipped and why.
* :func:`check_fields` / :func:`read_batches` read one shard (Parquet, Arrow IPC / Feather,
  JSON Lines, optionally gzip/zstd compressed) and yield :class:`Batch` objects of good
  texts, with every bad record counted (:class:`BadRecord`) instead of crashing the scan.

JSON Lines parsing has two paths that give identical results: a fast one (``pyarrow.json``
on a whole block of lines, used when the block passes cheap structural checks) and the
reference per-line path (``json.loads``), used for blocks the fast path cannot vouch for and
for individual suspect lines (null/missing text, tokens pyarrow accepts but JSON forbids).
"""

from __future__ import annotations

import errno
import glob
import json
import mmap
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import storage
from .errors import ContamscanError, FieldMissingError, ShardReadError

__all__ = [
    "Shard",
    "Skipped",
    "Fields",
    "BadRecord",
    "Batch",
    "FieldTypeError",
    "discover",
    "check_fields",
    "has_field",
    "read_batches",
    "BAD_REASONS",
]

BAD_REASONS = (
    "malformed_json",
    "text_missing",
    "text_null",
    "text_not_string",
    "invalid_utf8",
    "not_an_object",
)


# --------------------------------------------------------------------------------------
# data classes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    path: str  # absolute path, or the URI of a remote file (its query kept: it reopens the file)
    relpath: str  # '/'-separated path relative to the root it was found under
    format: str  # "parquet" | "jsonl" | "arrow"
    size: int  # bytes on disk
    # a piece of a Parquet shard: only these row groups, rows numbered as in the whole file
    row_groups: tuple[int, ...] | None = None
    mtime_ns: int | None = field(default=None, compare=False)  # remote files: from the listing


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Fields:
    text: str = "text"
    id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class BadRecord:
    row: int  # 0-based record index in the shard
    line: int | None  # 1-based line number (JSON Lines), None for Parquet/Arrow
    reason: str  # one of BAD_REASONS
    detail: str


@dataclass(frozen=True)
class Batch:
    texts: pa.LargeStringArray
    ids: pa.LargeStringArray | None
    labels: pa.LargeStringArray | None
    rows: np.ndarray  # int64 record index of each good record
    bad: tuple[BadRecord, ...]
    n_records: int  # good + bad records covered by this batch
    raw_bytes: int  # on-disk bytes consumed by this batch (sums to the file size)


class FieldTypeError(ContamscanError):
    """The text field exists but is not a string column (Parquet / Arrow)."""

    def __init__(self, field: str, path: str, found: str):
        self.field, self.path, self.found = field, path, found
        super().__init__(
            f"field {field!r} in {path} is not a string column (type found: {found})"
        )


# --------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------

# (suffix, format, compression); longest suffixes first
_EXTENSIONS: tuple[tuple[str, str, str | None], ...] = (
    (".jsonl.gz", "jsonl", "gzip"),
    (".json.gz", "jsonl", "gzip"),
    (".jsonl.zst", "jsonl", "zstd"),
    (".json.zst", "jsonl", "zstd"),
    (".parquet", "parquet", None),
    (".jsonl", "jsonl", None),
    (".json", "jsonl", None),
    (".arrow", "arrow", None),
    (".feather", "arrow", None),
    (".ipc", "arrow", None),
)

# bookkeeping files written by Spark/Hadoop/Arrow dataset writers: ignored silently
_IGNORED_NAMES = frozenset({"_SUCCESS", "_metadata", "_common_metadata", "_temporary"})
_IGNORED_PREFIXES = ("_committed_", "_started_")

_MAGIC = re.compile(r"[*?[]")


def _classify(name: str) -> tuple[str, str | None] | None:
    low = name.lower()
    for suffix, fmt, comp in _EXTENSIONS:
        if low.endswith(suffix) and len(low) > len(suffix):
            return fmt, comp
    return None


def _ignored(name: str) -> bool:
    return (
        name.startswith(".")
        or name in _IGNORED_NAMES
        or name.startswith(_IGNORED_PREFIXES)
        or name.lower().endswith(".crc")
    )


def _glob_base(pattern: str) -> str:
    """The fixed directory prefix of a glob pattern (the part before the first magic)."""
    parts = pattern.replace(os.sep, "/").split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    else:
        # last component is the only one that may contain magic
        pass
    if not fixed:
        return os.curdir
    base = "/".join(fixed)
    return base if base else "/"


def _printable(path: str) -> str:
    """A path as valid Unicode, for reports: bytes of a file name that are not UTF-8 (which
    Python keeps as lone surrogates, and which Arrow, JSON and Markdown writers reject) are
    shown as ``\\xNN`` escapes.  Only for display: files are opened by their real path."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


class _Discovery:
    def __init__(self, exclude: Sequence[str]):
        self.exclude = [e for e in exclude]
        self.shards: list[Shard] = []
        self.skipped: dict[tuple[str, str], Skipped] = {}
        self.seen_files: set[str] = set()
        self.walked_dirs: set[str] = set()
        self.remote_exclude: list[str] = []  # remote outputs, as storage.display() shows them

    def skip(self, path: str, reason: str) -> None:
        path = _printable(os.path.abspath(path))
        self.skipped.setdefault((path, reason), Skipped(path, reason))

    def excluded(self, real: str) -> bool:
        for e in self.exclude:
            if real == e or real.startswith(e.rstrip(os.sep) + os.sep):
                return True
        return False

    def add(self, path: str, relbase: str | None, from_glob: bool) -> None:
        if os.path.isdir(path):
            real = os.path.realpath(path)
            if self.excluded(real):
                self.skip(path, "inside output directory")
                return
            if real in self.walked_dirs:
                return
            self.walk(path, real, relbase if relbase is not None else path, frozenset())
        else:
            if from_glob and _ignored(os.path.basename(path)):
                return
            self.file(path, relbase)

    def walk(self, d: str, real: str, relbase: str, ancestors: frozenset[str]) -> None:
        self.walked_dirs.add(real)
        ancestors = ancestors | {real}
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.skip(d, f"unreadable: {e.strerror or e}")
            return
        for entry in entries:
            name = entry.name
            if _ignored(name):
                continue
            p = os.path.join(d, name)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                r = os.path.realpath(p)
                if r in ancestors:
                    self.skip(p, "symlink loop")
                    continue
                if self.excluded(r):
                    self.skip(p, "inside output directory")
                    continue
                if r in self.walked_dirs:
                    continue  # reached twice (symlink to a directory already walked)
                self.walk(p, r, relbase, ancestors)
            else:
                self.file(p, relbase)

    def file(self, p: str, relbase: str | None) -> None:
        kind = _classify(os.path.basename(p))
        if kind is None:
            self.skip(p, "unknown extension")
            return
        real = os.path.realpath(p)
        if self.excluded(real):
            self.skip(p, "inside output directory")
            return
        if real in self.seen_files:
            return
        try:
            st = os.stat(p)
        except FileNotFoundError:
            self.skip(p, "broken symlink" if os.path.islink(p) else "vanished")
            return
        except OSError as e:
            if e.errno == errno.ELOOP:  # a symlink chain pointing at itself
                self.skip(p, "symlink loop")
            else:
                self.skip(p, f"unreadable: {e.strerror or e}")
            return
        if not stat.S_ISREG(st.st_mode):
            self.skip(p, "not a regular file")
            return
        # a file that cannot be opened (permission denied) is a shard all the same: it
        # fails when read, so the scan reports it as failed (exit status 3), not as skipped
        self.seen_files.add(real)
        if relbase is None:
            rel = os.path.basename(p)
        else:
            rel = os.path.relpath(p, relbase)
        rel = _printable(rel.replace(os.sep, "/"))
        self.shards.append(Shard(os.path.abspath(p), rel, kind[0], st.st_size))

    def remote(self, uri: str) -> None:
        """A remote file, directory (prefix) or glob pattern, listed through
        :mod:`contamscan.storage`, by the rules of local ones: relative paths from the
        directory or the pattern's fixed part, ignored and hidden names skipped at every
        level, unknown extensions and outputs recorded as skipped. A shard's path is the
        file's full URI (its query kept), its relpath the decoded key below the root."""
        i = storage.info(uri)
        what = i.type
        if what == storage.pafs.FileType.File:  # a file named itself: never ignored (as add() does)
            found = [(storage.RemoteFile(uri, storage.basename(uri), int(i.size or 0), i.mtime_ns), None)]
        elif what == storage.pafs.FileType.Directory:
            found = [(f, 0) for f in storage.list_files(uri)]
        elif storage.has_magic(uri):
            found = storage.glob(uri)[1]
            if not found:
                raise ContamscanError(f"no files match the pattern {storage.display(uri)!r}")
        else:
            raise ContamscanError(f"input does not exist: {storage.display(uri)}")
        for f, k in found:
            names = f.rel.split("/")
            # a file matched by a pattern itself (k = all its components) is dropped if its
            # name is ignored; below a directory, every ignored name is (as walk() does)
            if k is not None and any(_ignored(n) for n in (names[-1:] if k == len(names) else names[k:])):
                continue
            shown = storage.display(f.uri)
            out = next((e for e in self.remote_exclude if shown == e or shown.startswith(e + "/")), None)
            if out is not None:
                self.skipped.setdefault((out, "inside output directory"), Skipped(out, "inside output directory"))
                continue
            kind = _classify(names[-1])
            if kind is None:
                self.skipped.setdefault((shown, "unknown extension"), Skipped(shown, "unknown extension"))
                continue
            if storage.key(f.uri) in self.seen_files:
                continue
            self.seen_files.add(storage.key(f.uri))
            self.shards.append(Shard(f.uri, f.rel, kind[0], f.size, mtime_ns=f.mtime_ns))


def discover(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    exclude: Iterable[str | os.PathLike] = (),
) -> tuple[list[Shard], list[Skipped]]:
    """Expand directories, files and glob patterns into shards.

    Returns ``(shards, skipped)``: shards sorted by (relpath, path), each real file once;
    skipped sorted by path.  Anything at or under an ``exclude`` directory is never
    returned; the topmost such path met is recorded once as "inside output directory".
    Raises :class:`ContamscanError` for a path that does not exist or a glob matching nothing.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    exclude = [storage.localize(os.fspath(e)) for e in exclude]
    ex = [os.path.realpath(e) for e in exclude if not storage.is_remote(e)]
    disc = _Discovery(ex)
    disc.remote_exclude = [storage.display(e) for e in exclude if storage.is_remote(e)]
    for raw in inputs:
        inp = storage.localize(os.fspath(raw))
        if not inp:
            raise ContamscanError("empty input path")
        if storage.is_remote(inp):
            disc.remote(inp)
            continue
        if _MAGIC.search(inp) and not os.path.exists(inp):
            matches = sorted(glob.glob(inp, recursive=True))
            if not matches:
                raise ContamscanError(f"no files match the pattern {inp!r}")
            base = _glob_base(inp)
            for m in matches:
                disc.add(m, base, from_glob=True)
        elif os.path.exists(inp):
            disc.add(inp, None, from_glob=False)
        elif os.path.islink(inp):
            raise ContamscanError(f"input is a broken symbolic link: {inp}")
        else:
            raise ContamscanError(f"input does not exist: {inp}")
    shards = sorted(disc.shards, key=lambda s: (s.relpath, s.path))
    skipped = sorted(disc.skipped.values(), key=lambda s: (s.path, s.reason))
    return shards, skipped


# --------------------------------------------------------------------------------------
# field paths (shared helpers)
# --------------------------------------------------------------------------------------


def _shard_error(shard: Shard, exc: BaseException) -> ShardReadError:
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
    msg = msg.splitlines()[0] if msg else msg
    return ShardReadError(f"{shard.relpath}: {msg}")


def _requested(fields: Fields) -> list[tuple[str, str]]:
    """(role, name) for every requested field; role in text/id/label."""
    out = [("text", fields.text)]
    if fields.id is not None:
        out.append(("id", fields.id))
    if fields.label is not None:
        out.append(("label", fields.label))
    return out


def _is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    is_view = getattr(pa.types, "is_string_view", None)
    if is_view is not None and is_view(t):
        return True
    if pa.types.is_dictionary(t):
        return _is_string_type(t.value_type)
    return False


def _arrow_names(schema: pa.Schema) -> list[str]:
    out: list[str] = []

    def rec(prefix: str, t: pa.DataType, depth: int) -> None:
        if pa.types.is_struct(t) and depth < 4:
            for i in range(t.num_fields):
                f = t.field(i)
                name = f"{prefix}.{f.name}"
                out.append(name)
                rec(name, f.type, depth + 1)

    for f in schema:
        out.append(f.name)
        rec(f.name, f.type, 1)
    return out


def _resolve_arrow(schema: pa.Schema, name: str) -> tuple[list[str], pa.DataType] | None:
    """Path of components for a (possibly dotted) field name, and its type."""
    i = schema.get_field_index(name)
    if i >= 0:
        return [name], schema.field(i).type
    parts = name.split(".")
    i = schema.get_field_index(parts[0])
    if i < 0 or len(parts) == 1:
        return None
    t = schema.field(i).type
    for p in parts[1:]:
        if not pa.types.is_struct(t):
            return None
        j = t.get_field_index(p)
        if j < 0:
            return None
        t = t.field(j).type
    return parts, t


@dataclass
class _ArrowPlan:
    columns: list[str]  # top-level columns to read
    text: list[str]
    id: list[str] | None
    label: list[str] | None


def _arrow_plan(schema: pa.Schema, fields: Fields, relpath: str) -> _ArrowPlan:
    resolved: dict[str, list[str]] = {}
    for role, name in _requested(fields):
        r = _resolve_arrow(schema, name)
        if r is None:
            raise FieldMissingError(name, relpath, _arrow_names(schema))
        path, t = r
        if role == "text" and not _is_string_type(t):
            raise FieldTypeError(name, relpath, str(t))
        resolved[role] = path
    cols: list[str] = []
    for path in resolved.values():
        if path[0] not in cols:
            cols.append(path[0])
    return _ArrowPlan(cols, resolved["text"], resolved.get("id"), resolved.get("label"))


def _extract(container, path: list[str]):
    """Column at ``path`` of a RecordBatch/Table, walking struct children (null-propagating)."""
    arr = container.column(path[0])
    for p in path[1:]:
        arr = pc.struct_field(arr, p)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _to_large_string(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.large_string())
    except (pa.ArrowException, ValueError, TypeError):
        vals = [None if v is None else _scalar_str(v) for v in arr.to_pylist()]
        return _safe_large_strings(vals)


def _scalar_str(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    try:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(v)


def _safe_large_strings(vals: list) -> pa.Array:
    try:
        return pa.array(vals, type=pa.large_string())
    except (pa.ArrowException, UnicodeEncodeError, ValueError):
        fixed = [
            None if v is None else v.encode("utf-8", "replace").decode("utf-8") for v in vals
        ]
        return pa.array(fixed, type=pa.large_string())


def _raise_strict(shard: Shard, b: BadRecord) -> None:
    where = f"line {b.line}" if b.line is not None else f"row {b.row}"
    raise ContamscanError(f"{shard.relpath}: {where}: {b.reason} ({b.detail})")


# --------------------------------------------------------------------------------------
# Parquet / Arrow IPC
# --------------------------------------------------------------------------------------


def _convert_arrow(container, plan: _ArrowPlan, row0: int, shard: Shard, strict: bool,
                   raw_bytes: int) -> Batch:
    text = _to_large_string(_extract(container, plan.text))
    n = len(text)
    ids = _to_large_string(_extract(container, plan.id)) if plan.id else None
    labels = _to_large_string(_extract(container, plan.label)) if plan.label else None
    if text.null_count == 0:
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        bad: tuple[BadRecord, ...] = ()
    else:
        valid = text.is_valid()
        mask = valid.to_numpy(zero_copy_only=False)
        bad = tuple(
            BadRecord(int(row0 + i), None, "text_null", "null")
            for i in np.flatnonzero(~mask)
        )
        if strict:
            _raise_strict(shard, bad[0])
        text = text.filter(valid)
        ids = ids.filter(valid) if ids is not None else None
        labels = labels.filter(valid) if labels is not None else None
        rows = (row0 + np.flatnonzero(mask)).astype(np.int64)
    return Batch(text, ids, labels, rows, bad, n, raw_bytes)


def _text_bytes_per_row_group(md, text_col: str) -> list[int]:
    """Uncompressed bytes of the text column (all its leaves) in each row group."""
    out = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        total = 0
        for c in range(rg.num_columns):
            col = rg.column(c)
            if col.path_in_schema.split(".")[0] == text_col:
                total += col.total_uncompressed_size
        out.append(total)
    return out


def _rows_per_batch(rows: int, text_bytes: int, batch_bytes: int) -> int:
    """Rows per batch that cut ``rows`` rows holding ``text_bytes`` into equal batches of
    at most about ``batch_bytes`` (no small tail batch)."""
    if rows <= 0:
        return 1
    parts = max(1, -(-max(text_bytes, 1) // max(1, batch_bytes)))
    return int(min(max(1, -(-rows // parts)), 1 << 22))


def _row_group_runs(md, group_bytes: list[int], batch_bytes: int,
                    only: Sequence[int] | None = None) -> list[tuple[list[int], int, int]]:
    """Consecutive row groups read together: (row groups, rows, text bytes) per run.

    A row group with ``batch_bytes`` of text or more is a run of its own, so that no batch
    spans two big row groups (which would hold both their column chunks at once); smaller
    ones are gathered until a run has about ``batch_bytes``, so that small row groups still
    make full batches."""
    runs: list[tuple[list[int], int, int]] = []
    cur: list[int] = []
    cur_rows = cur_bytes = 0
    for g in (range(md.num_row_groups) if only is None else only):
        n = md.row_group(g).num_rows
        if n == 0:
            continue
        if cur and cur_bytes + group_bytes[g] > batch_bytes:
            runs.append((cur, cur_rows, cur_bytes))
            cur, cur_rows, cur_bytes = [], 0, 0
        cur.append(g)
        cur_rows += n
        cur_bytes += group_bytes[g]
    if cur:
        runs.append((cur, cur_rows, cur_bytes))
    return runs


# Parquet column chunks are read through a buffer of this size instead of whole (a
# column chunk is as big as the row group's compressed text: tens of MB per chunk).
_PARQUET_BUFFER = 1 << 20


def _open_parquet(shard: Shard) -> pq.ParquetFile:
    try:
        if storage.is_remote(shard.path):  # the same, with larger reads: each one is a request
            fs, path = storage.resolve(shard.path)
            return pq.ParquetFile(path, filesystem=fs, pre_buffer=False, buffer_size=storage.READ_BUFFER)
        # no pre-buffering (it keeps the compressed file in memory) and a bounded read
        # buffer: a column chunk is streamed page by page rather than read whole; opened by
        # its bytes name, which Arrow cannot take as a str when it is not valid UTF-8
        source = pa.OSFile(os.fsencode(shard.path)) if not _is_utf8(shard.path) else shard.path
        return pq.ParquetFile(source, pre_buffer=False, buffer_size=_PARQUET_BUFFER)
    except (OSError, pa.ArrowException, ValueError, ContamscanError) as e:
        raise _shard_error(shard, e) from e


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a name of undecodable bytes (surrogate escapes)
        return False


def _release_memory() -> None:
    """Hand the free memory Arrow's allocator keeps cached back to the system.

    Arrow's pool (mimalloc by default, or jemalloc) keeps freed pages for reuse. With a
    scan's allocation pattern (tens of MB per batch, sizes that differ from batch to batch)
    the cached memory gets larger than what is in use, and the more batches a shard has,
    the higher the peak it reaches: peak RSS then grows with the shard although the data in
    use does not. Called between runs of row groups (Parquet) or blocks (JSON Lines), i.e.
    every ~16-32 MB of text; the cost, the page faults of getting memory back, is lost in
    the noise (~0.1 s per GB of text)."""
    try:
        pa.default_memory_pool().release_unused()
    except (AttributeError, NotImplementedError, pa.ArrowException):  # pragma: no cover
        pass


def _read_parquet(shard: Shard, fields: Fields, batch_bytes: int, strict: bool) -> Iterator[Batch]:
    """Row group by row group (small ones gathered, see :func:`_row_group_runs`), each cut
    into equal batches of about ``batch_bytes`` of text.

    Memory: a batch never spans two big row groups (which would hold both column chunks at
    once), column chunks are read through a small buffer, and Arrow's allocator releases
    its cache after each run of row groups, so peak memory is bounded by the batch and row
    group sizes, not by the shard size."""
    pf = _open_parquet(shard)
    plan = _arrow_plan(pf.schema_arrow, fields, shard.relpath)
    md = pf.metadata
    total = md.num_rows
    if total == 0:
        return
    size = shard.size
    group_bytes = _text_bytes_per_row_group(md, plan.text[0])
    only = shard.row_groups
    # a piece's rows are numbered as in the whole file; its raw bytes are its share of the file
    row0 = sum(md.row_group(g).num_rows for g in range(only[0])) if only else 0
    reported = size * row0 // total
    for groups, n_rows, n_bytes in _row_group_runs(md, group_bytes, batch_bytes, only):
        rows_per = _rows_per_batch(n_rows, n_bytes, batch_bytes)
        try:
            it = pf.iter_batches(batch_size=rows_per, row_groups=groups, columns=plan.columns, use_threads=False)
        except (OSError, pa.ArrowException, ValueError) as e:
            raise _shard_error(shard, e) from e
        while True:
            try:
                rb = next(it)
            except StopIteration:
                break
            except (OSError, pa.ArrowException, ValueError) as e:
                raise _shard_error(shard, e) from e
            n = rb.num_rows
            upto = size if row0 + n >= total else size * (row0 + n) // total
            try:
                batch = _convert_arrow(rb, plan, row0, shard, strict, upto - reported)
            except (pa.ArrowException, OSError) as e:
                raise _shard_error(shard, e) from e
            reported = upto
            row0 += n
            del rb
            yield batch
            del batch  # the consumer holds it as long as it needs it
        del it
        _release_memory()


class _MappedFile:
    """A read-only memory map of a file, read by Arrow without copies, whose pages can be
    dropped from this process's RSS once read.

    Pages of a mapped file that have been read count in RSS (as RssFile) until they are
    unmapped: a scan of a 2 GB Arrow file would end with 2 GB resident although none of
    it is anonymous memory. :meth:`drop_until` tells the kernel the pages before an offset
    are not needed (MADV_DONTNEED): they leave RSS (not the page cache), and a batch that
    still points into them reads the same bytes again from the page cache if used."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            # an empty file cannot be mapped; the map outlives the file object
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        buf = pa.py_buffer(self._map if self._map is not None else b"")
        self._base = buf.address
        self._dropped = 0
        self.source = pa.BufferReader(buf)  # zero-copy reads: batches point into the map

    def end_of(self, rb: pa.RecordBatch) -> int:
        """File offset of the end of the last buffer of ``rb`` that lies in the map
        (decompressed buffers are elsewhere and are ignored)."""
        end = 0
        for col in rb.columns:
            for b in col.buffers():
                if b is not None and b.size and self._base <= b.address < self._base + self.size:
                    end = max(end, b.address - self._base + b.size)
        return end

    def drop_until(self, offset: int) -> None:
        """Drop the whole pages before ``offset`` from RSS."""
        advise = getattr(mmap, "MADV_DONTNEED", None)
        end = min(offset, self.size) // mmap.PAGESIZE * mmap.PAGESIZE
        if self._map is None or advise is None or end <= self._dropped:
            return
        try:
            self._map.madvise(advise, self._dropped, end - self._dropped)
            self._dropped = end
        except (OSError, ValueError):  # pragma: no cover - only an optimisation
            pass


class _RemoteFile:
    """A remote Arrow IPC file (:mod:`contamscan.storage`) with :class:`_MappedFile`'s
    interface: read at offsets, not mapped; batches are copies, freed when dropped."""

    def __init__(self, uri: str):
        self.source = storage.open_input_file(uri)
        self.size = self.source.size()

    def end_of(self, rb: pa.RecordBatch) -> int:
        return 0

    def drop_until(self, offset: int) -> None:
        pass


def _open_ipc(shard: Shard):
    """(kind, reader, mapped file) for an Arrow IPC file, falling back to the stream format."""
    try:
        mapped = _RemoteFile(shard.path) if storage.is_remote(shard.path) else _MappedFile(shard.path)
    except (OSError, ValueError, pa.ArrowException, ContamscanError) as e:
        raise _shard_error(shard, e) from e
    src = mapped.source
    try:
        return "file", pa.ipc.open_file(src), mapped
    except (pa.ArrowException, OSError):
        pass
    try:
        src.seek(0)
        return "stream", pa.ipc.open_stream(src), mapped
    except (pa.ArrowException, OSError) as e:
        src.close()
        raise ShardReadError(f"{shard.relpath}: not a valid Arrow IPC file or stream ({e})") from e


def _read_arrow(shard: Shard, fields: Fields, batch_bytes: int, strict: bool) -> Iterator[Batch]:
    """Record batches read in place from a memory map (no copy), cut into batches of about
    ``batch_bytes``; once a record batch has been handed out whole, its pages are dropped
    from RSS, so resident memory is bounded by a record batch, not by the file."""
    kind, reader, mapped = _open_ipc(shard)
    src = mapped.source
    try:
        plan = _arrow_plan(reader.schema, fields, shard.relpath)
        size = shard.size
        row0 = 0
        reported = 0

        def slices(rb, share: int):
            nonlocal row0, reported
            n = rb.num_rows
            if n == 0:
                return
            nbytes = rb.column(plan.text[0]).nbytes
            parts = max(1, -(-nbytes // max(1, batch_bytes)))
            step = -(-n // parts)
            base = reported
            for start in range(0, n, step):
                part = rb.slice(start, step)
                end = min(n, start + step)
                upto = base + share * end // n
                batch = _convert_arrow(part, plan, row0, shard, strict, upto - reported)
                reported = upto
                row0 += part.num_rows
                yield batch

        if kind == "file":
            nb = reader.num_record_batches
            for i in range(nb):
                try:
                    rb = reader.get_batch(i)
                except (pa.ArrowException, OSError) as e:
                    raise _shard_error(shard, e) from e
                share = size * (i + 1) // nb - size * i // nb
                yield from slices(rb, share)
                mapped.drop_until(mapped.end_of(rb))
                del rb
        else:
            last = 0
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as e:
                    raise _shard_error(shard, e) from e
                pos = src.tell()
                yield from slices(rb, pos - last)
                last = pos
                mapped.drop_until(pos)
                del rb
        if reported < size and row0 > 0:
            # trailing footer / end-of-stream marker: account for it in a final empty batch
            yield Batch(
                pa.array([], pa.large_string()),
                pa.array([], pa.large_string()) if plan.id else None,
                pa.array([], pa.large_string()) if plan.label else None,
                np.zeros(0, np.int64), (), 0, size - reported,
            )
    finally:
        src.close()


# --------------------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"
_JSON_WS = b" \t\r"


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


_MISSING = object()


def _walk(obj: dict, path: tuple[str, ...]):
    """Value at path, or _MISSING."""
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return _MISSING
        cur = cur.get(p, _MISSING)
        if cur is _MISSING:
            return _MISSING
    return cur


def _json_resolve(name: str, samples: Sequence[dict]) -> tuple[str, ...]:
    if "." not in name or any(name in s for s in samples):
        return (name,)
    return tuple(name.split("."))


def _json_names(samples: Sequence[dict]) -> list[str]:
    seen: dict[str, None] = {}

    def rec(prefix: str, d: dict, depth: int) -> None:
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else k
            seen.setdefault(name, None)
            if isinstance(v, dict) and depth < 4:
                rec(name, v, depth + 1)

    for s in samples:
        rec("", s, 1)
    return list(seen)


def _open_json_stream(shard: Shard):
    """(raw file, decompressed stream); the raw file's tell() gives on-disk bytes consumed."""
    kind = _classify(storage.basename(shard.path))
    comp = kind[1] if kind else None
    remote = storage.is_remote(shard.path)
    try:
        # bytes: Arrow encodes a str path as UTF-8, which fails for a file name that is not
        # UTF-8 (a str with lone surrogates); the file system's own bytes always work
        raw = storage.open_input_file(shard.path) if remote else pa.OSFile(os.fsencode(shard.path), "r")
    except (OSError, pa.ArrowException, ContamscanError) as e:
        raise _shard_error(shard, e) from e
    if comp is None:
        return raw, raw
    try:
        # remote: through a large buffer (the codec reads 64 KB at a time; each remote read is a request)
        return raw, pa.CompressedInputStream(pa.BufferedInputStream(raw, storage.READ_BUFFER) if remote else raw, comp)
    except (OSError, pa.ArrowException) as e:
        raw.close()
        raise _shard_error(shard, e) from e


def _json_blocks(shard: Shard, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Yield (data, raw_bytes): data is whole lines ending in b"\\n" (BOM stripped)."""
    raw, stream = _open_json_stream(shard)
    try:
        pending: list[bytes] = []  # pieces of an incomplete line
        first = True
        reported = 0
        while True:
            try:
                chunk = stream.read(block_bytes)
            except (OSError, pa.ArrowException) as e:
                raise _shard_error(shard, e) from e
            if first and chunk:
                while len(chunk) < 3 and chunk:  # make sure a BOM is not split
                    try:
                        more = stream.read(block_bytes)
                    except (OSError, pa.ArrowException) as e:
                        raise _shard_error(shard, e) from e
                    if not more:
                        break
                    chunk += more
                if chunk.startswith(_BOM):
                    chunk = chunk[3:]
                first = False
            if not chunk:
                pos = raw.tell()
                tail = b"".join(pending)
                if tail or pos > reported:
                    yield (tail + b"\n" if tail else b""), pos - reported
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pending.append(chunk)
                continue
            pos = raw.tell()
            if pending:
                pending.append(chunk[: cut + 1])
                data = b"".join(pending)
            else:
                data = chunk[: cut + 1]
            rest = chunk[cut + 1:]
            pending = [rest] if rest else []
            yield data, pos - reported
            reported = pos
    finally:
        try:
            stream.close()
        finally:
            if raw is not stream:
                raw.close()


def _sample_objects(data: bytes, limit: int = 100) -> list[dict]:
    out = []
    for line in data.split(b"\n"):
        if len(out) >= limit:
            break
        if not line.strip(_JSON_WS):
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class _JsonPlan:
    def __init__(self, fields: Fields, samples: Sequence[dict]):
        self.text = _json_resolve(fields.text, samples)
        self.id = _json_resolve(fields.id, samples) if fields.id is not None else None
        self.label = _json_resolve(fields.label, samples) if fields.label is not None else None
        # arrow type tried for id / label on the fast path; adapted from what the data holds
        self.id_type: pa.DataType = pa.string()
        self.label_type: pa.DataType = pa.string()
        self._schema_key = None
        self._schema = None

    def schema(self) -> pa.Schema | None:
        key = (self.id_type, self.label_type)
        if key == self._schema_key:
            return self._schema
        tree: dict = {}
        conflict = False

        def put(path: tuple[str, ...], t: pa.DataType) -> None:
            nonlocal conflict
            node = tree
            for p in path[:-1]:
                nxt = node.setdefault(p, {})
                if not isinstance(nxt, dict):
                    conflict = True
                    return
                node = nxt
            if path[-1] in node:
                conflict = True  # e.g. id and text are the same field
                return
            node[path[-1]] = t

        put(self.text, pa.string())
        if self.id is not None:
            put(self.id, self.id_type)
        if self.label is not None:
            put(self.label, self.label_type)

        def build(node: dict) -> list[pa.Field]:
            return [
                pa.field(k, pa.struct(build(v)) if isinstance(v, dict) else v)
                for k, v in node.items()
            ]

        self._schema = None if conflict else pa.schema(build(tree))
        self._schema_key = key
        return self._schema

    def learn(self, id_vals: list, label_vals: list) -> None:
        """Pick the arrow type for id/label from values the slow path saw."""
        self.id_type = self._learn(id_vals, self.id_type)
        self.label_type = self._learn(label_vals, self.label_type)

    @staticmethod
    def _learn(vals: list, current: pa.DataType) -> pa.DataType:
        kinds = set()
        for v in vals:
            if v is None:
                continue
            if isinstance(v, str):
                kinds.add("s")
            elif isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
                kinds.add("i")
            else:
                kinds.add("?")
            if len(kinds) > 1:
                break
        if kinds == {"s"}:
            return pa.string()
        if kinds == {"i"}:
            return pa.int64()
        return current


def _slow_line(line: bytes, plan: _JsonPlan):
    """Parse one line: (True, text, id, label) or (False, reason, detail, None)."""
    try:
        s = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return False, "invalid_utf8", f"invalid UTF-8 byte 0x{line[e.start]:02x} at byte {e.start + 1}", None
    try:
        obj = json.loads(s)
    except (ValueError, RecursionError) as e:
        return False, "malformed_json", str(e)[:200] or type(e).__name__, None
    if not isinstance(obj, dict):
        return False, "not_an_object", _json_type(obj), None
    v = _walk(obj, plan.text)
    if v is _MISSING:
        return False, "text_missing", f"no field {'.'.join(plan.text)!r}", None
    if v is None:
        return False, "text_null", "null", None
    if not isinstance(v, str):
        return False, "text_not_string", _json_type(v), None
    idv = _walk(obj, plan.id) if plan.id is not None else None
    lab = _walk(obj, plan.label) if plan.label is not None else None
    return True, v, (None if idv is _MISSING else idv), (None if lab is _MISSING else lab)


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


class _Parts:
    """Good/bad records of one block, as columns; rows relative to the block."""

    def __init__(self):
        self.rows: list[int] = []
        self.texts: list[str] = []
        self.ids: list = []
        self.labels: list = []
        self.bad: list[BadRecord] = []


def _slow_records(lines: Iterable[tuple[int, int, bytes]], plan: _JsonPlan) -> _Parts:
    """lines: (row_in_shard, line_no_in_shard, bytes)."""
    out = _Parts()
    for row, line_no, line in lines:
        ok, a, b, c = _slow_line(line, plan)
        if ok:
            if _has_surrogate(a):
                out.bad.append(BadRecord(row, line_no, "invalid_utf8", "lone surrogate escape in text"))
                continue
            out.rows.append(row)
            out.texts.append(a)
            out.ids.append(b)
            out.labels.append(c)
        else:
            out.bad.append(BadRecord(row, line_no, a, b))
    return out


def _strs(vals: list) -> pa.Array:
    return _safe_large_strings([None if v is None else _scalar_str(v) for v in vals])


def _fast_shape(data: bytes):
    """Newline positions if every line starts with '{' and ends with '}' (optionally
    followed by '\\r'), else None.  Such a block has no blank lines, and pyarrow's row i is
    line i: a '{' at a line start can only begin a new top-level value, so pyarrow reading
    as many rows as there are lines means one object per line (pyarrow would otherwise
    accept several objects on a line, or an object spanning lines)."""
    if not data.startswith(b"{"):
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    if len(nl) == 0 or nl[-1] != len(data) - 1 or nl[0] < 1:
        return None
    ends = arr[nl - 1]
    cr = ends == 13
    if cr.any():
        at = nl[cr] - 2
        if (at < 0).any():
            return None
        ends = ends.copy()
        ends[cr] = arr[at]
    if not (ends == 125).all() or not (arr[nl[:-1] + 1] == 123).all():
        return None
    return nl


def _valid_utf8(data: bytes) -> bool:
    arr = pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)), pa.py_buffer(data)
    )
    try:
        arr.validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _suspect_lines(data: bytes, newlines: np.ndarray) -> set[int]:
    """Lines that may hold ``Inf`` / ``-Inf`` / ``-NaN`` as a value: pyarrow's JSON parser
    accepts them, json.loads (and the JSON grammar) does not.  Such lines are re-parsed by
    the reference path.  Over-approximates (e.g. ": Info" inside a string) on purpose."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if len(arr) < 4:
        return set()
    head = arr[:-2]
    c = np.flatnonzero(head == 73)  # 'I'
    inf = c[(arr[c + 1] == 110) & (arr[c + 2] == 102)]  # "Inf"
    c = np.flatnonzero(head == 78)  # 'N'
    c = c[c > 0]
    nan = c[(arr[c + 1] == 97) & (arr[c + 2] == 78) & (arr[c - 1] == 45)]  # "-NaN"
    hits: list[int] = []
    for i in np.concatenate((inf, nan - 1)).tolist():
        j = i - 1
        while j >= 0 and data[j] in b" \t\r-":
            j -= 1
        if j >= 0 and data[j] in b":[,":
            hits.append(i)
    if not hits:
        return set()
    return set(np.searchsorted(newlines, np.array(hits), side="left").tolist())


def _fast_block(data: bytes, newlines: np.ndarray, plan: _JsonPlan, row0: int, line0: int):
    """Parse a block with pyarrow.json; None if the block must take the slow path.

    Only called when _fast_shape(data) gave ``newlines``: line k of the block is record row0 + k.
    Returns (texts, ids, labels, rows, bad) with suspect lines re-parsed by the slow path.
    """
    schema = plan.schema()
    if schema is None or not _valid_utf8(data):
        return None
    n = len(newlines)
    longest = int(max(newlines[0] + 1, np.diff(newlines).max() if n > 1 else 0))
    try:
        table = pajson.read_json(
            pa.BufferReader(data),
            read_options=pajson.ReadOptions(
                use_threads=False, block_size=min(max(4 << 20, 2 * longest + 2), 2**31 - 1)
            ),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore",
                newlines_in_values=False,
            ),
        )
    except (pa.ArrowException, ValueError, UnicodeDecodeError, OverflowError):
        return None
    if table.num_rows != n:
        return None
    text = _extract(table, list(plan.text))
    ids = _extract(table, list(plan.id)) if plan.id is not None else None
    labels = _extract(table, list(plan.label)) if plan.label is not None else None
    suspects = _suspect_lines(data, newlines)
    if text.null_count:
        suspects.update(np.flatnonzero(text.is_null().to_numpy(zero_copy_only=False)).tolist())
    text = _to_large_string(text)
    ids = _to_large_string(ids) if ids is not None else None
    labels = _to_large_string(labels) if labels is not None else None
    if not suspects:
        return text, ids, labels, np.arange(row0, row0 + n, dtype=np.int64), []
    # re-parse the suspect lines with the reference parser
    order = sorted(suspects)
    starts = np.concatenate(([0], newlines[:-1] + 1))
    slow = _slow_records(
        ((row0 + k, line0 + k + 1, data[starts[k]: newlines[k]]) for k in order), plan
    )
    keep = np.ones(n, dtype=bool)
    keep[order] = False
    keep_arr = pa.array(keep)
    rows = np.concatenate(
        (row0 + np.flatnonzero(keep), np.array(slow.rows, dtype=np.int64))
    ).astype(np.int64)
    perm = pa.array(np.argsort(rows, kind="stable"))
    texts = pa.concat_arrays([text.filter(keep_arr), _safe_large_strings(slow.texts)]).take(perm)
    if ids is not None:
        ids = pa.concat_arrays([ids.filter(keep_arr), _strs(slow.ids)]).take(perm)
    if labels is not None:
        labels = pa.concat_arrays([labels.filter(keep_arr), _strs(slow.labels)]).take(perm)
    return texts, ids, labels, np.sort(rows, kind="stable"), slow.bad


def _slow_block(data: bytes, plan: _JsonPlan, row0: int, line0: int):
    """Reference path: returns (texts, ids, labels, rows, bad, n_records)."""
    def lines():
        row = row0
        for k, line in enumerate(data.split(b"\n")[:-1]):
            if not line.strip(_JSON_WS):
                continue
            yield row, line0 + k + 1, line
            row += 1

    items = list(lines())
    parts = _slow_records(items, plan)
    if plan.id is not None or plan.label is not None:
        plan.learn(parts.ids, parts.labels)
    texts = _safe_large_strings(parts.texts)
    ids = _strs(parts.ids) if plan.id is not None else None
    labels = _strs(parts.labels) if plan.label is not None else None
    return texts, ids, labels, np.array(parts.rows, dtype=np.int64), parts.bad, len(items)


def _read_jsonl(shard: Shard, fields: Fields, batch_bytes: int, strict: bool,
                _force_slow: bool = False) -> Iterator[Batch]:
    plan: _JsonPlan | None = None
    row0 = 0
    line0 = 0
    for data, raw_bytes in _json_blocks(shard, max(1, batch_bytes)):
        if plan is None:
            samples = _sample_objects(data) if any(
                "." in f for _, f in _requested(fields)) else []
            plan = _JsonPlan(fields, samples)
        res = None
        newlines = None if _force_slow else _fast_shape(data)
        if newlines is not None:
            res = _fast_block(data, newlines, plan, row0, line0)
        if res is not None:
            texts, ids, labels, rows, bad = res
            n_records = n_lines = len(newlines)
        else:
            texts, ids, labels, rows, bad, n_records = _slow_block(data, plan, row0, line0)
            n_lines = data.count(b"\n")
        bad.sort(key=lambda b: b.row)
        if strict and bad:
            _raise_strict(shard, bad[0])
        line0 += n_lines
        row0 += n_records
        if n_records == 0 and raw_bytes == 0:
            continue
        yield Batch(texts, ids, labels, rows, tuple(bad), n_records, raw_bytes)
        _release_memory()  # see _release_memory


# --------------------------------------------------------------------------------------
# public reading API
# --------------------------------------------------------------------------------------


def _jsonl_samples(shard: Shard, limit: int = 100, budget: int = 64 << 20) -> list[dict]:
    """The first ``limit`` valid JSON objects of a JSON Lines shard (reading <= budget bytes)."""
    samples: list[dict] = []
    seen = 0
    gen = _json_blocks(shard, 1 << 20)
    try:
        for data, _ in gen:
            samples.extend(_sample_objects(data, limit - len(samples)))
            seen += len(data)
            if len(samples) >= limit or seen >= budget:
                break
    finally:
        gen.close()
    return samples


def has_field(shard: Shard, name: str) -> bool:
    """Whether ``name`` (possibly dotted) exists in the shard, by the same rules as
    :func:`check_fields` (JSON Lines: present in one of the first ~100 valid objects; an
    empty JSON Lines file has no fields).  Raises ShardReadError if the file can't be read."""
    if shard.format == "parquet":
        return _resolve_arrow(_open_parquet(shard).schema_arrow, name) is not None
    if shard.format == "arrow":
        kind, reader, mapped = _open_ipc(shard)
        try:
            return _resolve_arrow(reader.schema, name) is not None
        finally:
            mapped.source.close()
    if shard.format == "jsonl":
        samples = _jsonl_samples(shard)
        path = _json_resolve(name, samples)
        return any(_walk(o, path) is not _MISSING for o in samples)
    raise ContamscanError(f"{shard.relpath}: unknown shard format {shard.format!r}")


def check_fields(shard: Shard, fields: Fields) -> None:
    """Cheap look at the schema; raise FieldMissingError if a requested field is absent.

    Parquet/Arrow: the schema (the text field must also be a string column, else
    FieldTypeError).  JSON Lines: the first ~100 valid objects (a field absent from all of
    them counts as missing; an empty file, or one with no valid object, passes).
    Raises ShardReadError if the file cannot be read.
    """
    if shard.format == "parquet":
        pf = _open_parquet(shard)
        _arrow_plan(pf.schema_arrow, fields, shard.relpath)
    elif shard.format == "arrow":
        kind, reader, mapped = _open_ipc(shard)
        try:
            _arrow_plan(reader.schema, fields, shard.relpath)
        finally:
            mapped.source.close()
    elif shard.format == "jsonl":
        samples = _jsonl_samples(shard)
        if not samples:
            return
        for _, name in _requested(fields):
            path = _json_resolve(name, samples)
            if not any(_walk(s, path) is not _MISSING for s in samples):
                raise FieldMissingError(name, shard.relpath, _json_names(samples))
    else:
        raise ContamscanError(f"{shard.relpath}: unknown shard format {shard.format!r}")


def read_batches(shard: Shard, fields: Fields, batch_bytes: int = 32 << 20,
                 strict: bool = False) -> Iterator[Batch]:
    """Stream a shard as Batches of about ``batch_bytes`` of input, in bounded memory.

    Bad records are reported in ``Batch.bad`` and skipped (strict=True: the first one
    raises ContamscanError).  A failure of the file itself raises ShardReadError, possibly
    after some batches were yielded.  Parquet/Arrow shards missing a requested field raise
    FieldMissingError (JSON Lines report ``text_missing`` per record instead).
    """
    if shard.format == "parquet":
        return _read_parquet(shard, fields, batch_bytes, strict)
    if shard.format == "arrow":
        return _read_arrow(shard, fields, batch_bytes, strict)
    if shard.format == "jsonl":
        return _read_jsonl(shard, fields, batch_bytes, strict)
    raise ContamscanError(f"{shard.relpath}: unknown shard format {shard.format!r}")
