"""What every format module shares: field paths in Arrow schemas, the conversion of Arrow
columns into a :class:`~contamscan.model.Batch`, error wrapping, and the pieces of the
clean/flagged splitters (which records go where, output writers closed on success or
failure).

A format module (``parquet``, ``arrow_ipc``, ``jsonl``) holds, side by side, its reader
(``read``, ``check``, ``has_field``) and its splitter (``split``); :mod:`contamscan.formats`
dispatches to them by :attr:`Shard.format`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ContamscanError, FieldMissingError, FieldTypeError, ShardReadError
from ..io import Location
from ..model import BadRecord, Batch, Fields, Shard, numpy_of
from .fields import Path, arrow_units, parse, resolve_type, type_hint
from .fields import py_str as scalar_str  # noqa: F401 (the readers' name for it)

# errors pyarrow raises for an unreadable input
READ_ERRORS = (OSError, pa.ArrowException, ValueError)

# (suffix, format, compression); longest suffixes first
EXTENSIONS: tuple[tuple[str, str, str | None], ...] = (
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


def classify(name: str) -> tuple[str, str | None] | None:
    low = name.lower()
    for suffix, fmt, comp in EXTENSIONS:
        if low.endswith(suffix) and len(low) > len(suffix):
            return fmt, comp
    return None


# what a file's first bytes say it holds: (magic, what it is, the suffix a file of it has)
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed bytes", ".gz"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed bytes", ".zst"),
    (b"PAR1", "a Parquet file", ".parquet"),
    (b"ARROW1", "an Arrow IPC file", ".arrow"),
)
_HEAD = max(len(m) for m, _, _ in _MAGIC)
_SUFFIX_OF = {"gzip": ".gz", "zstd": ".zst"}


def check_contents(shard: Shard) -> None:
    """Raise ShardReadError unless the file's first bytes (and a Parquet file's last ones)
    are what its name says (:func:`classify`): ``.gz`` starts with 1f 8b, ``.zst`` with
    28 b5 2f fd, ``.parquet`` starts and ends with ``PAR1``; an Arrow IPC or JSON file does
    not start with another format's magic (a ``.jsonl`` of gzip bytes would otherwise be
    read as lines of invalid UTF-8). An empty file is left to its reader. One rule for
    every format, applied wherever a shard is read (:mod:`contamscan.formats`)."""
    name = Location.of(shard.path).name
    kind = classify(name)
    if kind is None or shard.size == 0:
        return
    fmt, comp = kind
    try:
        with Location.of(shard.path).open_random() as src:
            size = src.size()
            if size == 0:
                return
            head = src.read(_HEAD)
            tail = b""
            if fmt == "parquet" and comp is None and size >= 8:
                src.seek(size - 4)
                tail = src.read(4)
    except (OSError, pa.ArrowException, ContamscanError) as e:
        raise shard_error(shard, e) from e
    holds = next(((what, suffix) for magic, what, suffix in _MAGIC if head.startswith(magic)), None)  # (what, suffix)
    low = name.lower()
    if comp is not None:
        if holds is not None and holds[1] == _SUFFIX_OF[comp]:
            return
        stem = name[: len(name) - len(_SUFFIX_OF[comp])]
        if holds is None:
            raise ShardReadError(f"{shard.relpath}: is named {_SUFFIX_OF[comp]} but is not {comp}-compressed (it does not "
                                 f"start with {_hex(_magic_of(_SUFFIX_OF[comp]))}; if it is plain text, rename it {stem})")
        rename = f" (rename it {stem}{holds[1]})" if holds[1] in _SUFFIX_OF.values() else ""
        raise ShardReadError(f"{shard.relpath}: holds {holds[0]} but is named {_SUFFIX_OF[comp]}{rename}")
    suffix = next(sfx for sfx, f, c in EXTENSIONS if low.endswith(sfx) and c is None)
    if fmt == "parquet":
        if holds is not None and holds[1] == ".parquet" and tail in (b"PAR1", b"PARE"):
            return
        if holds is not None and holds[1] == ".parquet":
            raise ShardReadError(f"{shard.relpath}: a Parquet file without its footer (it does not end with PAR1: "
                                 f"truncated?)")
        raise ShardReadError(f"{shard.relpath}: holds {holds[0] if holds else 'something else'} but is named .parquet "
                             f"(a Parquet file starts with PAR1)")
    if holds is None or (fmt == "arrow" and holds[1] == ".arrow"):
        return  # an Arrow IPC stream has no magic: its reader tells
    rename = f" (rename it {name}{holds[1]})" if fmt == "jsonl" and holds[1] in _SUFFIX_OF.values() else ""
    raise ShardReadError(f"{shard.relpath}: holds {holds[0]} but is named {suffix}{rename}")


def _magic_of(suffix: str) -> bytes:
    return next(m for m, _, s in _MAGIC if s == suffix)


def _hex(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def shard_error(shard: Shard, exc: BaseException) -> ShardReadError:
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
    msg = msg.splitlines()[0] if msg else msg
    return ShardReadError(f"{shard.relpath}: {msg}")


def requested(fields: Fields) -> list[tuple[str, str]]:
    """(role, name) for every requested field; role in text/id/label."""
    out = [("text", fields.text)]
    if fields.id is not None:
        out.append(("id", fields.id))
    if fields.label is not None:
        out.append(("label", fields.label))
    return out


def is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    is_view = getattr(pa.types, "is_string_view", None)
    if is_view is not None and is_view(t):
        return True
    if pa.types.is_dictionary(t):
        return is_string_type(t.value_type)
    return False


def arrow_names(schema: pa.Schema) -> list[str]:
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


def resolve_arrow(schema: pa.Schema, name: str, relpath: str = "", option: str = "text_field") -> list[Path] | None:
    """The paths of selector ``name`` present in ``schema`` (resolved: a top-level field
    literally named ``a.b`` wins over the path ``a.b``), or None if none is; raises
    FieldTypeError if a path does not fit the schema's types (an index on a non-list)."""
    found = []
    for path in parse(name, option).paths:
        r = resolve_type(schema, path)
        if isinstance(r, str):
            raise FieldTypeError(name, relpath, "", hint=r)
        if r is not None:
            found.append(r)
    return [p for p, _ in found] or None


@dataclass
class ArrowPlan:
    columns: list[str]  # top-level columns to read
    text: list[Path]
    id: list[Path] | None
    label: list[Path] | None
    simple: dict  # role -> the selector is one plain path (read as a column)
    per_turn: bool = False

    @property
    def text_columns(self) -> list[str]:
        return list(dict.fromkeys(p.steps[0].name for p in self.text))


_OPTION = {"text": "text_field", "id": "id_field", "label": "label_field"}


def arrow_plan(schema: pa.Schema, fields: Fields, relpath: str) -> ArrowPlan:
    resolved: dict[str, list[Path]] = {}
    simple: dict[str, bool] = {}
    for role, name in requested(fields):
        found = []
        for path in parse(name, _OPTION[role]).paths:
            r = resolve_type(schema, path)
            if isinstance(r, str):
                raise FieldTypeError(name, relpath, "", hint=r)
            if r is not None:
                found.append(r)
        if not found:
            raise FieldMissingError(name, relpath, arrow_names(schema))
        if role == "text":
            for path, t in found:
                if not is_string_type(t):
                    raise FieldTypeError(str(path), relpath, str(t), hint=type_hint(str(path), t))
        resolved[role] = [p for p, _ in found]
        simple[role] = len(found) == 1 and found[0][0].plain
    cols: list[str] = []
    for paths in resolved.values():
        for p in paths:
            if p.steps[0].name not in cols:
                cols.append(p.steps[0].name)
    return ArrowPlan(cols, resolved["text"], resolved.get("id"), resolved.get("label"), simple,
                     per_turn=fields.per_turn)


def extract(container, path: list[str]):
    """Column at ``path`` of a RecordBatch/Table, walking struct children (null-propagating)."""
    arr = container.column(path[0])
    for p in path[1:]:
        arr = pc.struct_field(arr, p)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _names(path: Path) -> list[str]:
    return [s.name for s in path.steps]


def select_values(container, paths: list[Path], simple: bool) -> pa.Array:
    """One large_string value per record (null where the selector gives none), for ids and
    labels: a plain column, or the selector's values joined."""
    if simple:
        return to_large_string(extract(container, _names(paths[0])))
    return arrow_units(container, tuple(paths), to_large_string).joined(container.num_rows)


def to_large_string(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.large_string())
    except (pa.ArrowException, ValueError, TypeError):
        vals = [None if v is None else scalar_str(v) for v in arr.to_pylist()]
        return safe_large_strings(vals)


def safe_large_strings(vals: list) -> pa.Array:
    try:
        return pa.array(vals, type=pa.large_string())
    except (pa.ArrowException, UnicodeEncodeError, ValueError):
        fixed = [
            None if v is None else v.encode("utf-8", "replace").decode("utf-8") for v in vals
        ]
        return pa.array(fixed, type=pa.large_string())


def raise_strict(shard: Shard, b: BadRecord) -> None:
    where = f"line {b.line}" if b.line is not None else f"row {b.row}"
    raise ContamscanError(f"{shard.relpath}: {where}: {b.reason} ({b.detail})")


def convert_arrow(container, plan: ArrowPlan, row0: int, shard: Shard, strict: bool,
                   raw_bytes: int) -> Batch:
    n = container.num_rows
    ids = select_values(container, plan.id, plan.simple["id"]) if plan.id else None
    labels = select_values(container, plan.label, plan.simple["label"]) if plan.label else None
    if plan.simple["text"] and not plan.per_turn:
        text = to_large_string(extract(container, _names(plan.text[0])))
        no_match = None
    else:
        units = arrow_units(container, tuple(plan.text), to_large_string)
        no_match = units.no_match
        if plan.per_turn:
            has = np.zeros(n, bool)
            has[units.parent] = True
            bad = _null_records(~has, no_match, row0)
            if strict and bad:
                raise_strict(shard, bad[0])
            take = pa.array(units.parent)
            return Batch(units.values, ids.take(take) if ids is not None else None,
                         labels.take(take) if labels is not None else None,
                         (row0 + units.parent).astype(np.int64), bad, n, raw_bytes, turns=units.turn)
        text = units.joined(n)
    if text.null_count == 0:
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        bad: tuple[BadRecord, ...] = ()
    else:
        valid = text.is_valid()
        mask = numpy_of(valid)
        bad = _null_records(~mask, no_match, row0)
        if strict:
            raise_strict(shard, bad[0])
        text = text.filter(valid)
        ids = ids.filter(valid) if ids is not None else None
        labels = labels.filter(valid) if labels is not None else None
        rows = (row0 + np.flatnonzero(mask)).astype(np.int64)
    return Batch(text, ids, labels, rows, bad, n, raw_bytes)


def _null_records(null: np.ndarray, no_match: np.ndarray | None, row0: int) -> tuple[BadRecord, ...]:
    """The bad records of the records without a text: ``text_no_match`` where a list had no
    item the selector picks, else ``text_null``."""
    return tuple(
        BadRecord(int(row0 + i), None, "text_no_match", "no list item matches the selector")
        if no_match is not None and no_match[i] else BadRecord(int(row0 + i), None, "text_null", "null")
        for i in np.flatnonzero(null)
    )


def rows_per_batch(rows: int, text_bytes: int, batch_bytes: int) -> int:
    """Rows per batch that cut ``rows`` rows holding ``text_bytes`` into equal batches of
    at most about ``batch_bytes`` (no small tail batch)."""
    if rows <= 0:
        return 1
    parts = max(1, -(-max(text_bytes, 1) // max(1, batch_bytes)))
    return int(min(max(1, -(-rows // parts)), 1 << 22))


def release_memory() -> None:
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


# --------------------------------------------------------------------------- splitting


@dataclass(frozen=True)
class SplitCounts:
    clean: int  # records written to the clean output
    flagged: int  # records written to the flagged output


def flag_mask(flagged_rows: np.ndarray, row0: int, n: int) -> np.ndarray:
    """Which of records row0 .. row0 + n - 1 are flagged."""
    lo, hi = np.searchsorted(flagged_rows, [row0, row0 + n])
    mask = np.zeros(n, dtype=bool)
    mask[flagged_rows[lo:hi] - row0] = True
    return mask


def guarded(shard: Shard, items: Iterator):
    """Iterate over an input reader, turning its failures into ShardReadError (write
    failures, raised between items, stay OSError)."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except READ_ERRORS as e:
            raise shard_error(shard, e) from e
        yield item


def close_all(sides) -> None:
    """Finish the output writers (Parquet footer, IPC footer / end marker, compressed
    stream trailer); a failure here is a failed split."""
    for i, side in enumerate(sides):
        if side is not None:
            sides[i] = None
            side.close()


def close_quietly(sides) -> None:
    """Release the writers left open by a failed split without masking its error (their
    files are discarded)."""
    for side in sides:
        if side is not None:
            try:
                side.close()
            except Exception:  # noqa: BLE001
                pass


def route_batch(batch, mask: np.ndarray, sides, write) -> None:
    """Send the unflagged rows of ``batch`` to sides[0] and the flagged ones to sides[1]."""
    for side, keep in zip(sides, (~mask, mask)):
        if side is not None and keep.any():
            write(side, batch if keep.all() else filter_rows(batch, pa.array(keep)))


# types pyarrow cannot take or filter (no kernel), and the type that holds the same values
_VIEWS = {"string_view": pa.large_string(), "binary_view": pa.large_binary()}


def filter_rows(batch: pa.RecordBatch, keep: pa.Array) -> pa.RecordBatch:
    """``batch.filter(keep)``, also for columns whose type has no filter kernel (string_view,
    binary_view: what polars' to_arrow() gives): these are filtered as their large
    counterpart and cast back, so the output keeps the input's schema."""
    try:
        return batch.filter(keep)
    except pa.ArrowNotImplementedError:
        pass
    columns = []
    for col in batch.columns:
        plain = _VIEWS.get(str(col.type))
        columns.append(col.filter(keep) if plain is None else pc.cast(pc.cast(col, plain).filter(keep), col.type))
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)
