"""Field selectors: which value of a record is its text, id or label.

One syntax for every format and every field (``text_field``, ``id_field``, ``label_field``)::

    selector := path ("|" path)*          fallbacks: the first path present in the record
    path     := step ("." step)*
    step     := NAME ["[" INDEX "]" | "[" NAME "=" VALUE "]"]

* ``doc.body``: a nested field (a top-level field literally named ``doc.body`` wins);
* ``messages[0].content``, ``messages[-1].content``: one item of a list, by position;
* ``messages[role=assistant].content``: every item of a list whose ``role`` is ``assistant``
  (compared as text); their values are joined with a blank line (``"\\n\\n"``), or, per turn,
  each is a unit of its own with the item's position in the list (its *turn*);
* ``text|content``: the first of these paths that gives a value.

A path holds at most one ``[NAME=VALUE]`` filter. A record whose selector gives no value
because a list has no such item (an index past its end, no item matching the filter) is a
bad record ``text_no_match``; a value that is null, ``text_null``.

Two evaluators give the same units for the same record: :func:`arrow_units` on Arrow
record batches (pyarrow.compute: struct fields, list offsets, filters; Parquet, Arrow IPC
and the fast JSON Lines path) and :func:`py_units` on parsed JSON objects (the per-line
JSON Lines path).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ContamscanError
from ..model import numpy_of

JOIN = "\n\n"  # between the values of the items a filter selects

_NAME = r"[^.\[\]|=]+"
_STEP = re.compile(rf"\s*({_NAME}?)(?:\[\s*(?:(-?\d+)|({_NAME})\s*=\s*([^\]]*?))\s*\])?\s*(\.|$)")


@dataclass(frozen=True)
class Step:
    """One step of a path: a field name, then optionally a list item by position or filter."""

    name: str
    index: int | None = None  # messages[-1]
    where: tuple[str, str] | None = None  # messages[role=assistant]: (key, value)

    @property
    def is_list(self) -> bool:
        return self.index is not None or self.where is not None


@dataclass(frozen=True)
class Path:
    steps: tuple[Step, ...]

    @property
    def plain(self) -> bool:
        """A path of field names only (``doc.body``)."""
        return not any(s.is_list for s in self.steps)

    @property
    def multi(self) -> bool:
        """The path may select several items of a list (a filter)."""
        return any(s.where is not None for s in self.steps)

    @property
    def dotted(self) -> str:
        return ".".join(s.name for s in self.steps)

    def __str__(self) -> str:
        out = []
        for s in self.steps:
            if s.index is not None:
                out.append(f"{s.name}[{s.index}]")
            elif s.where is not None:
                out.append(f"{s.name}[{s.where[0]}={s.where[1]}]")
            else:
                out.append(s.name)
        return ".".join(out)


@dataclass(frozen=True)
class Selector:
    """A parsed field selector: its paths, tried in order."""

    source: str
    paths: tuple[Path, ...]

    @property
    def simple(self) -> bool:
        """One path of field names only: read as a plain column, as before selectors."""
        return len(self.paths) == 1 and self.paths[0].plain


@lru_cache(maxsize=256)
def parse(source: str, option: str = "text_field") -> Selector:
    """Parse a selector (see the module's grammar); a malformed one is a ContamscanError
    naming ``option``.

    Example:
        >>> str(parse("messages[role=assistant].content").paths[0])
        'messages[role=assistant].content'
        >>> [str(p) for p in parse("text|messages[-1].content").paths]
        ['text', 'messages[-1].content']
    """
    if not isinstance(source, str) or not source.strip():
        raise ContamscanError(f"`{option}`: empty field selector")
    paths = []
    for alt in source.split("|"):
        steps: list[Step] = []
        pos = 0
        alt = alt.strip()
        while True:
            m = _STEP.match(alt, pos)
            if m is None or not m.group(1).strip() or m.end() == pos:
                raise ContamscanError(f"`{option}`: invalid field selector {source!r} at {alt[pos:]!r} (expected "
                                      f"name, name[N] or name[key=value], joined by '.'; alternatives by '|')")
            name = m.group(1).strip()
            if m.group(2) is not None:
                steps.append(Step(name, index=int(m.group(2))))
            elif m.group(3) is not None:
                steps.append(Step(name, where=(m.group(3).strip(), m.group(4))))
            else:
                steps.append(Step(name))
            pos = m.end()
            if m.group(5) == "":
                break
        path = Path(tuple(steps))
        if sum(s.where is not None for s in steps) > 1:
            raise ContamscanError(f"`{option}`: {source!r}: at most one [key=value] filter per path")
        paths.append(path)
    return Selector(source, tuple(paths))


# --------------------------------------------------------------------------- units

@dataclass
class Units:
    """What a selector gives for a stretch of records: ``values`` (a large_string array,
    no nulls) of units ``parent`` (record index, non-decreasing) at ``turn`` (the selected
    list item's position; -1: no list), and, per record, ``no_match``: a list was there but
    no item was selected (the record has no unit)."""

    values: pa.Array
    parent: np.ndarray
    turn: np.ndarray
    no_match: np.ndarray

    def joined(self, n: int) -> pa.Array:
        """One value per record: its units joined with :data:`JOIN` (null: no unit)."""
        if len(self.parent) == n and np.array_equal(self.parent, np.arange(n)):
            return self.values  # one unit per record
        counts = np.bincount(self.parent, minlength=n)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
        lists = pa.ListArray.from_arrays(pa.array(offsets), self.values, mask=pa.array(counts == 0))
        return pc.binary_join(lists, pa.scalar(JOIN, pa.large_string()))


# --------------------------------------------------------------------------- Arrow


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def resolve_type(schema: pa.Schema, path: Path) -> tuple[Path, pa.DataType] | None | str:
    """The type ``path`` gives in ``schema`` (and the path, a literal dotted name if the
    schema has one); None if a field is absent; a string saying why if a step does not fit
    the type (an index on something that is not a list)."""
    if path.plain and len(path.steps) > 1 and schema.get_field_index(path.dotted) >= 0:
        path = Path((Step(path.dotted),))
    i = schema.get_field_index(path.steps[0].name)
    if i < 0:
        return None
    t = schema.field(i).type
    for k, s in enumerate(path.steps):
        if k:
            if not pa.types.is_struct(t):
                return None
            j = t.get_field_index(s.name)
            if j < 0:
                return None
            t = t.field(j).type
        if s.is_list:
            if not _is_list(t):
                return f"{'.'.join(x.name for x in path.steps[:k + 1])!r} is {t}, not a list"
            t = t.value_type
            if s.where is not None and (not pa.types.is_struct(t) or t.get_field_index(s.where[0]) < 0):
                return f"the items of {s.name!r} ({t}) have no field {s.where[0]!r}"
    return path, t


def type_hint(name: str, t: pa.DataType) -> str:
    """What to write instead of a selector ``name`` that gives a list (or struct) ``t``."""
    if _is_list(t):
        v = t.value_type
        if pa.types.is_struct(v):
            names = [v.field(i).name for i in range(v.num_fields)]
            strings = [v.field(i).name for i in range(v.num_fields) if _stringish(v.field(i).type)]
            if "role" in names and "content" in names:
                return (f"it is a list of {v}, not a string: select items, e.g. "
                        f"`{name}[role=assistant].content` (or `{name}[-1].content`)")
            if strings:
                return f"it is a list of {v}, not a string: select items, e.g. `{name}[-1].{strings[0]}`"
            return f"it is a list of {v}, not a string"
        return f"it is a list, not a string: select an item, e.g. `{name}[-1]`"
    if pa.types.is_struct(t):
        strings = [t.field(i).name for i in range(t.num_fields) if _stringish(t.field(i).type)]
        if strings:
            return f"it is a struct, not a string: select a field, e.g. `{name}.{strings[0]}`"
    return ""


def _stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and _stringish(t.value_type))


def _strings(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        return arr
    return pc.cast(arr, pa.large_string())


def _path_units(container, path: Path, n: int, to_str) -> Units:
    """The units of one (resolved) path over the ``n`` records of ``container``."""
    arr = None
    parent: np.ndarray | None = None  # set once a filter has flattened a list
    turn = np.full(n, -1, np.int64)
    no_match = np.zeros(n, bool)  # a list was there, but not the item selected
    filtered = np.zeros(n, bool)  # records with items a filter selected
    for k, s in enumerate(path.steps):
        arr = container.column(s.name) if k == 0 else pc.struct_field(arr, s.name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not s.is_list:
            continue
        offsets = numpy_of(arr.offsets).astype(np.int64)
        valid = numpy_of(arr.is_valid())
        lengths = np.where(valid, np.diff(offsets), 0)
        if s.index is not None:
            i = s.index
            pos = (offsets[:-1] + i) if i >= 0 else (offsets[1:] + i)
            ok = (lengths > i) if i >= 0 else (lengths >= -i)
            arr = arr.values.take(pa.array(np.where(ok, pos, 0), mask=~ok))
            if parent is None:
                no_match |= valid & ~ok
                turn = np.where(ok, pos - offsets[:-1], -1)
            continue
        # a filter: the list's items, flattened, those whose key equals the value
        starts = offsets[:-1]
        idx = _ranges(starts, lengths)
        owner = np.repeat(np.arange(len(arr), dtype=np.int64), lengths)
        items = arr.values.take(pa.array(idx))
        key = pc.struct_field(items, s.where[0])
        if pa.types.is_dictionary(key.type):
            key = key.dictionary_decode()
        if pa.types.is_boolean(key.type):
            key = pc.if_else(key, "true", "false")
        elif not _stringish(key.type):
            key = pc.cast(key, pa.large_string())
        match = numpy_of(pc.fill_null(pc.equal(key, pa.scalar(s.where[1], key.type)), False))
        sel = np.flatnonzero(match)
        arr = items.take(pa.array(sel))
        turn = (idx - np.repeat(starts, lengths))[sel]
        parent = owner[sel]  # at most one filter per path: owners are records
        filtered[parent] = True
        no_match |= valid & ~filtered
    values = to_str(arr)
    ok = numpy_of(values.is_valid())
    if parent is None:
        parent = np.arange(n, dtype=np.int64)
    keep = np.flatnonzero(ok)
    if not ok.all():
        values = values.filter(pa.array(ok))
    parent, turn = parent[keep], turn[keep]
    has = np.zeros(n, bool)
    has[parent] = True
    no_match |= filtered & ~has  # a filter's items, all without a value
    return Units(values, parent, turn.astype(np.int64), no_match & ~has)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ranges [starts[i], starts[i] + lengths[i])."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    group_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - group_start)


def arrow_units(container, paths: tuple[Path, ...], to_str=_strings) -> Units:
    """The units of resolved ``paths`` (fallbacks: per record, the first path with a unit)
    over the records of a RecordBatch or Table."""
    n = container.num_rows
    per = [_path_units(container, p, n, to_str) for p in paths]
    if len(per) == 1:
        return per[0]
    chosen = np.full(n, -1, np.int64)
    for k, u in enumerate(per):
        free = chosen[u.parent] < 0
        chosen[u.parent[free]] = k
    pick = [np.flatnonzero(chosen[u.parent] == k) for k, u in enumerate(per)]
    values = pa.concat_arrays([u.values.take(pa.array(p)) for u, p in zip(per, pick)])
    parent = np.concatenate([u.parent[p] for u, p in zip(per, pick)])
    turn = np.concatenate([u.turn[p] for u, p in zip(per, pick)])
    order = np.lexsort((turn, parent))  # records in order; a record's units come from one path
    no_match = np.zeros(n, bool)
    for u in per:
        no_match |= u.no_match
    no_match &= chosen < 0
    return Units(values.take(pa.array(order)), parent[order], turn[order], no_match)


# --------------------------------------------------------------------------- Python objects

MISSING = object()


@dataclass(frozen=True)
class Failure:
    reason: str  # text_missing | text_null | text_no_match | text_not_string
    detail: str


# How deeply a JSON record may nest, on both JSON paths (pyarrow's parser and json.loads):
# a line nested deeper is malformed_json. One fixed limit, because neither parser has one of
# its own that agrees with the other: pyarrow's accepts any depth, json.loads fails with a
# RecursionError near sys.getrecursionlimit() (1000) less the depth of the stack it is
# called from, i.e. at no fixed depth. 512 is safely below the latter from any reader, and
# far above real records (chat and SFT records nest less than 10 levels); RFC 8259 (section
# 9) lets a parser limit nesting.
MAX_JSON_DEPTH = 512
_NESTING = re.compile(rb'[\[\]{}"\\]')  # what changes the depth, or whether it counts
TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep (the limit of both JSON paths)"


def too_deep(line: bytes) -> bool:
    """Whether the JSON text ``line`` nests more than MAX_JSON_DEPTH levels (brackets inside
    strings do not count; an unbalanced line is judged on the depth it reaches)."""
    if line.count(b"[") + line.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = pos = 0
    in_string = False
    while True:  # a loop over the special characters only; no regex backtracking over a long string
        m = _NESTING.search(line, pos)
        if m is None:
            return False
        c = line[m.start()]
        pos = m.start() + 1
        if c == 0x5C:  # a backslash: the next byte is escaped
            pos += 1
        elif c == 0x22:
            in_string = not in_string
        elif in_string:
            pass
        elif c in b"[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1


def loads(line: bytes):
    """``json.loads`` under the nesting limit: ValueError for a line nested too deep (or not
    JSON), never RecursionError."""
    if too_deep(line):
        raise ValueError(TOO_DEEP)
    return json.loads(line)


def json_type(v) -> str:
    """The JSON type of a parsed value, as messages name it."""
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


def py_str(v) -> str:
    """A value as text, as Arrow casts it (strings unchanged; objects and lists as compact JSON)."""
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


def _path_py(obj, path: Path, strings: bool):
    """[(turn, value)] or a Failure, for one parsed JSON object."""
    items: list[tuple[int, object]] = [(-1, obj)]
    multi = False
    for s in path.steps:
        nxt: list[tuple[int, object]] = []
        for t, cur in items:
            if not isinstance(cur, dict) or s.name not in cur:
                if not multi:
                    return Failure("text_missing", f"no field {str(path)!r}")
                continue
            nxt.append((t, cur[s.name]))
        items = nxt
        if not s.is_list:
            continue
        nxt = []
        for t, cur in items:
            if cur is None:
                if not multi:
                    return Failure("text_null", f"{s.name!r} is null")
                continue
            if not isinstance(cur, list):
                if not multi:
                    return Failure("text_not_string", f"{s.name!r} is {json_type(cur)}, not a list")
                continue
            if s.index is not None:
                i = s.index
                if -len(cur) <= i < len(cur):
                    nxt.append((t if multi else i % len(cur), cur[i]))
                elif not multi:
                    return Failure("text_no_match", f"{s.name!r} has {len(cur)} item(s), no [{i}]")
            else:
                key, want = s.where
                hits = [(j, x) for j, x in enumerate(cur)
                        if isinstance(x, dict) and x.get(key) is not None and py_str(x[key]) == want]
                if not hits:
                    return Failure("text_no_match", f"no item of {s.name!r} with {key}={want}")
                nxt.extend(hits)
                multi = True
        items = nxt
    values = [(t, v) for t, v in items if v is not None]
    if not values:
        if not multi and items:
            return Failure("text_null", "null")
        return Failure("text_no_match", f"no value at {str(path)!r}")
    if strings:
        for _, v in values:
            if not isinstance(v, str):
                return Failure("text_not_string", json_type(v))
    return values


_SPECIFIC = {"text_not_string": 0, "text_no_match": 1, "text_null": 2, "text_missing": 3}


def py_units(obj: dict, paths: tuple[Path, ...], strings: bool = True):
    """[(turn, value)] of the first path with a value, or, when none has one, the most
    telling of their Failures (not a string, then no match, null, missing: as the Arrow
    evaluator, which tells no match from null). ``strings``: values must be strings (the
    text); else any JSON value (ids, labels)."""
    failures = []
    for p in paths:
        r = _path_py(obj, p, strings)
        if not isinstance(r, Failure):
            return r
        failures.append(r)
    return min(failures, key=lambda f: _SPECIFIC[f.reason])


def py_present(obj: dict, path: Path) -> bool:
    """Whether the first field of each step of ``path`` exists in ``obj`` (as far as lists
    allow: any item)."""
    items = [obj]
    for s in path.steps:
        nxt = []
        for cur in items:
            if isinstance(cur, dict) and s.name in cur:
                v = cur[s.name]
                if s.is_list and isinstance(v, list):
                    nxt.extend(v)
                elif not s.is_list:
                    nxt.append(v)
                else:
                    return True  # the field is there (null, or not a list: a bad record)
        if not nxt:
            return any(isinstance(c, dict) and s.name in c for c in items)
        items = nxt
    return True
