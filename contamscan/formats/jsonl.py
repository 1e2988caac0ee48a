"""JSON Lines (plain, gzip, zstd): streamed in blocks of whole lines, parsed by pyarrow when a
block passes cheap structural checks and line by line otherwise, with every bad line counted;
split into clean/flagged copies whose lines are the input's, byte for byte.

The two parsing paths give identical results: the fast one (``pyarrow.json`` on a whole
block) is used when the block passes cheap structural checks, the reference per-line path
(``json.loads``) for blocks the fast path cannot vouch for and for individual suspect lines
(null/missing text, tokens pyarrow accepts but JSON forbids).
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from ..errors import ContamscanError, FieldMissingError, FieldTypeError
from ..io import Location
from ..model import BadRecord, Batch, Fields, Shard, numpy_of
from .base import (
    READ_ERRORS,
    SplitCounts,
    classify,
    close_all,
    close_quietly,
    extract,
    flag_mask,
    raise_strict,
    release_memory,
    requested,
    safe_large_strings,
    scalar_str,
    select_values,
    shard_error,
    to_large_string,
)
from .fields import (
    JOIN,
    MAX_JSON_DEPTH,
    TOO_DEEP,
    Failure,
    Path,
    Step,
    arrow_units,
    json_type,
    loads,
    parse,
    py_present,
    py_units,
    too_deep,
    type_hint,
)

_BOM = b"\xef\xbb\xbf"


_JSON_WS = b" \t\r"


def _resolve(name: str, option: str, samples: Sequence[dict]) -> tuple[Path, ...]:
    """The paths of selector ``name``; a plain dotted path is one field literally named so
    when a sample has that key (as the Arrow formats prefer a top-level ``a.b`` column)."""
    out = []
    for p in parse(name, option).paths:
        if p.plain and len(p.steps) > 1 and any(p.dotted in o for o in samples):
            p = Path((Step(p.dotted),))
        out.append(p)
    return tuple(out)


def _present(samples: Sequence[dict], paths: tuple[Path, ...]) -> bool:
    return any(py_present(o, p) for o in samples for p in paths)


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


def open_json_stream(shard: Shard):
    """(raw file, decompressed stream); the raw file's tell() gives on-disk bytes consumed."""
    kind = classify(Location.of(shard.path).name)
    comp = kind[1] if kind else None
    loc = Location.of(shard.path)
    try:
        raw = loc.open_random()
    except (OSError, pa.ArrowException, ContamscanError) as e:
        raise shard_error(shard, e) from e
    if comp is None:
        return raw, raw
    try:
        # the codec reads 64 KB at a time: through a buffer (each remote read is a request)
        return raw, pa.CompressedInputStream(pa.BufferedInputStream(raw, loc.read_buffer), comp)
    except (OSError, pa.ArrowException) as e:
        raw.close()
        raise shard_error(shard, e) from e


def _json_blocks(shard: Shard, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Yield (data, raw_bytes): data is whole lines ending in b"\\n" (BOM stripped)."""
    raw, stream = open_json_stream(shard)
    try:
        pending: list[bytes] = []  # pieces of an incomplete line
        first = True
        reported = 0
        while True:
            try:
                chunk = stream.read(block_bytes)
            except (OSError, pa.ArrowException) as e:
                raise shard_error(shard, e) from e
            if first and chunk:
                while len(chunk) < 3 and chunk:  # make sure a BOM is not split
                    try:
                        more = stream.read(block_bytes)
                    except (OSError, pa.ArrowException) as e:
                        raise shard_error(shard, e) from e
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
            done, pending = pending + [chunk[: cut + 1]], ([chunk[cut + 1:]] if cut + 1 < len(chunk) else [])
            del chunk  # not held while the consumer works on the block
            yield _joined(done), pos - reported
            reported = pos
    finally:
        try:
            stream.close()
        finally:
            if raw is not stream:
                raw.close()


def _joined(parts: list[bytes]) -> bytes:
    """The pieces joined, the list emptied: a generator that yields the result keeps no
    reference to the pieces (nor, as it holds no local of it, to the block) while its
    consumer works: with a line of 50 MB that is 50 MB less at the peak."""
    out = parts[0] if len(parts) == 1 else b"".join(parts)
    parts.clear()
    return out


def _sample_objects(data: bytes, limit: int = 100) -> list[dict]:
    out = []
    for line in data.split(b"\n"):
        if len(out) >= limit:
            break
        if not line.strip(_JSON_WS):
            continue
        try:
            line.decode("utf-8")  # as the readers: a line of invalid UTF-8 is no sample
            obj = loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class _JsonPlan:
    def __init__(self, fields: Fields, samples: Sequence[dict]):
        self.text = _resolve(fields.text, "text_field", samples)
        self.id = _resolve(fields.id, "id_field", samples) if fields.id is not None else None
        self.label = _resolve(fields.label, "label_field", samples) if fields.label is not None else None
        self.simple = {role: paths is not None and len(paths) == 1 and paths[0].plain
                       for role, paths in (("text", self.text), ("id", self.id), ("label", self.label))}
        self.per_turn = fields.per_turn
        # arrow type tried for id / label on the fast path; adapted from what the data holds
        self.id_type: pa.DataType = pa.string()
        self.label_type: pa.DataType = pa.string()
        self._schema_key = None
        self._schema = None

    def schema(self) -> pa.Schema | None:
        """The explicit schema of the fast path: every field the selectors touch (lists of
        structs for list steps), or None if two of them disagree on a field's type."""
        key = (self.id_type, self.label_type)
        if key == self._schema_key:
            return self._schema
        tree: dict = {}
        conflict = False

        def slot(node: dict, name: str, spec):
            """node[name], made ``spec`` (a leaf type, {"struct": {}} or {"list": ...})."""
            nonlocal conflict
            have = node.setdefault(name, spec)
            if isinstance(spec, pa.DataType) or isinstance(have, pa.DataType):
                if not (isinstance(spec, pa.DataType) and isinstance(have, pa.DataType) and spec == have):
                    conflict = True
                return None
            if set(have) != set(spec):
                conflict = True
                return None
            return have

        def put(path: Path, leaf: pa.DataType) -> None:
            nonlocal conflict
            node = tree
            for k, st in enumerate(path.steps):
                last = k == len(path.steps) - 1
                inner = leaf if last else {"struct": {}}
                spec = {"list": inner} if st.is_list else inner
                got = slot(node, st.name, spec)
                if got is None:
                    return
                if st.is_list:
                    item = got["list"]
                    if last:
                        if not (isinstance(item, pa.DataType) and item == leaf):
                            conflict = True
                        return
                    if not isinstance(item, dict) or "struct" not in item:
                        conflict = True
                        return
                    got = item
                    if st.where is not None and slot(got["struct"], st.where[0], pa.string()) is None \
                            and conflict:
                        return
                if last:
                    return
                node = got["struct"]

        for p in self.text:
            put(p, pa.string())
        for paths, t in ((self.id, self.id_type), (self.label, self.label_type)):
            for p in paths or ():
                put(p, t)

        def typ(spec) -> pa.DataType:
            if isinstance(spec, pa.DataType):
                return spec
            if "list" in spec:
                return pa.list_(typ(spec["list"]))
            return pa.struct([pa.field(k, typ(v)) for k, v in spec["struct"].items()])

        self._schema = None if conflict else pa.schema([pa.field(k, typ(v)) for k, v in tree.items()])
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


def _py_value(obj: dict, paths: tuple[Path, ...] | None, simple: bool):
    """An id or label of a parsed record: the raw JSON value of a plain path (typed by
    ``learn``), the selected values joined as text otherwise; None where absent."""
    if paths is None:
        return None
    r = py_units(obj, paths, strings=False)
    if isinstance(r, Failure):
        return None
    if simple:
        return r[0][1]
    return JOIN.join(scalar_str(v) for _, v in r)


def _slow_line(line: bytes, plan: _JsonPlan):
    """Parse one line: (True, [(turn, text)], id, label) or (False, reason, detail, None);
    without ``per_turn``, the texts are joined into one unit."""
    try:
        s = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return False, "invalid_utf8", f"invalid UTF-8 byte 0x{line[e.start]:02x} at byte {e.start + 1}", None
    if too_deep(line):  # the same verdict as the fast path gives (see MAX_JSON_DEPTH)
        return False, "malformed_json", TOO_DEEP, None
    try:
        obj = json.loads(s)
    except (ValueError, RecursionError) as e:
        return False, "malformed_json", str(e)[:200] or type(e).__name__, None
    if not isinstance(obj, dict):
        return False, "not_an_object", json_type(obj), None
    units = py_units(obj, plan.text)
    if isinstance(units, Failure):
        return False, units.reason, units.detail, None
    if not plan.per_turn and len(units) > 1:
        units = [(-1, JOIN.join(v for _, v in units))]
    return (True, units, _py_value(obj, plan.id, plan.simple["id"]),
            _py_value(obj, plan.label, plan.simple["label"]))


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
        self.turns: list[int] = []
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
            if any(_has_surrogate(t) for _, t in a):
                out.bad.append(BadRecord(row, line_no, "invalid_utf8", "lone surrogate escape in text"))
                continue
            for turn, text in a:
                out.rows.append(row)
                out.turns.append(turn)
                out.texts.append(text)
                out.ids.append(b)
                out.labels.append(c)
        else:
            out.bad.append(BadRecord(row, line_no, a, b))
    return out


def _strs(vals: list) -> pa.Array:
    return safe_large_strings([None if v is None else scalar_str(v) for v in vals])


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


def _deep_lines(data: bytes, newlines: np.ndarray) -> set[int]:
    """Lines nested more than MAX_JSON_DEPTH levels deep: pyarrow's parser accepts them, so
    they are re-parsed by the reference path, which makes them malformed_json as it does on
    its own. Lines with fewer opening brackets than the limit cannot be: only the others
    are looked at."""
    arr = np.frombuffer(data, dtype=np.uint8)
    opening = np.flatnonzero((arr == 91) | (arr == 123))  # memory: one int per bracket, not per byte
    if len(opening) <= MAX_JSON_DEPTH:
        return set()
    per_line = np.bincount(np.searchsorted(newlines, opening), minlength=len(newlines))
    starts = np.concatenate(([0], newlines[:-1] + 1))
    return {k for k in np.flatnonzero(per_line > MAX_JSON_DEPTH).tolist()
            if too_deep(data[starts[k]:newlines[k]])}


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
    ids = select_values(table, list(plan.id), plan.simple["id"]) if plan.id is not None else None
    labels = select_values(table, list(plan.label), plan.simple["label"]) if plan.label is not None else None
    suspects = _suspect_lines(data, newlines) | _deep_lines(data, newlines)
    if plan.simple["text"] and not plan.per_turn:
        text = extract(table, [st.name for st in plan.text[0].steps])
        if text.null_count:
            suspects.update(np.flatnonzero(numpy_of(text.is_null())).tolist())
        text = to_large_string(text)
        line_of = np.arange(n, dtype=np.int64)  # the block line of each unit
        turns = None
    else:
        units = arrow_units(table, plan.text, to_large_string)
        has = np.zeros(n, bool)
        has[units.parent] = True
        suspects.update(np.flatnonzero(~has).tolist())  # the slow path tells why
        if plan.per_turn:
            text, line_of, turns = units.values, units.parent, units.turn
            take = pa.array(line_of)
            ids = ids.take(take) if ids is not None else None
            labels = labels.take(take) if labels is not None else None
        else:
            text, line_of, turns = units.joined(n), np.arange(n, dtype=np.int64), None
    if not suspects:
        return text, ids, labels, row0 + line_of, [], turns
    # re-parse the suspect lines with the reference parser
    order = sorted(suspects)
    starts = np.concatenate(([0], newlines[:-1] + 1))
    slow = _slow_records(
        ((row0 + k, line0 + k + 1, data[starts[k]: newlines[k]]) for k in order), plan
    )
    is_suspect = np.zeros(n, dtype=bool)
    is_suspect[order] = True
    keep = ~is_suspect[line_of]
    keep_arr = pa.array(keep)
    rows = np.concatenate(
        (row0 + line_of[keep], np.array(slow.rows, dtype=np.int64))
    ).astype(np.int64)
    order_ = np.argsort(rows, kind="stable")  # a record's units all come from one path, in order
    perm = pa.array(order_)
    texts = pa.concat_arrays([text.filter(keep_arr), safe_large_strings(slow.texts)]).take(perm)
    if ids is not None:
        ids = pa.concat_arrays([ids.filter(keep_arr), _strs(slow.ids)]).take(perm)
    if labels is not None:
        labels = pa.concat_arrays([labels.filter(keep_arr), _strs(slow.labels)]).take(perm)
    if turns is not None:
        turns = np.concatenate((turns[keep], np.array(slow.turns, dtype=np.int64)))[order_]
    return texts, ids, labels, rows[order_], slow.bad, turns


def _slow_block(data: bytes, plan: _JsonPlan, row0: int, line0: int):
    """Reference path: returns (texts, ids, labels, rows, bad, n_records, turns)."""
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
    texts = safe_large_strings(parts.texts)
    ids = _strs(parts.ids) if plan.id is not None else None
    labels = _strs(parts.labels) if plan.label is not None else None
    turns = np.array(parts.turns, dtype=np.int64) if plan.per_turn else None
    return texts, ids, labels, np.array(parts.rows, dtype=np.int64), parts.bad, len(items), turns


def read(shard: Shard, fields: Fields, batch_bytes: int, strict: bool,
                _force_slow: bool = False) -> Iterator[Batch]:
    return parse_blocks(shard, _json_blocks(shard, max(1, batch_bytes)), fields, strict, _force_slow)


def parse_blocks(shard: Shard, blocks: Iterable[tuple[bytes, int]], fields: Fields, strict: bool,
                 _force_slow: bool = False, line_of=None) -> Iterator[Batch]:
    """Batches of blocks of whole JSON lines ``(data, raw_bytes)``: one record per non-blank
    line. ``line_of(row)``, if given, is the line number reported for a bad record (the
    readers of other layouts that feed their records here as lines)."""
    plan: _JsonPlan | None = None
    row0 = 0
    line0 = 0
    for data, raw_bytes in blocks:
        if plan is None:
            samples = _sample_objects(data) if any(
                "." in f for _, f in requested(fields)) else []
            plan = _JsonPlan(fields, samples)
        res = None
        newlines = None if _force_slow else _fast_shape(data)
        if newlines is not None:
            res = _fast_block(data, newlines, plan, row0, line0)
        if res is not None:
            texts, ids, labels, rows, bad, turns = res
            n_records = n_lines = len(newlines)
        else:
            texts, ids, labels, rows, bad, n_records, turns = _slow_block(data, plan, row0, line0)
            n_lines = data.count(b"\n")
        bad.sort(key=lambda b: b.row)
        if line_of is not None:
            bad = [BadRecord(b.row, line_of(b.row), b.reason, b.detail) for b in bad]
        if strict and bad:
            raise_strict(shard, bad[0])
        line0 += n_lines
        row0 += n_records
        del data, newlines, res  # the block is parsed: not held while the batch is scanned
        if n_records == 0 and raw_bytes == 0:
            continue
        yield Batch(texts, ids, labels, rows, tuple(bad), n_records, raw_bytes, turns=turns)
        release_memory()  # see release_memory


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
    return samples_have_field(_jsonl_samples(shard), name)


def samples_have_field(samples: Sequence[dict], name: str) -> bool:
    return _present(samples, _resolve(name, "text_field", samples))


def check(shard: Shard, fields: Fields) -> None:
    """The first ~100 valid objects: a field absent from all of them counts as missing (an
    empty file, or one with no valid object, passes). A text selector that none of them
    gives a string for but some give another value (a list of chat turns) is a
    FieldTypeError."""
    check_samples(shard, fields, _jsonl_samples(shard))


def check_samples(shard: Shard, fields: Fields, samples: Sequence[dict]) -> None:
    """:func:`check` on the first valid objects of a shard, however they were read."""
    if not samples:
        return
    for role, name in requested(fields):
        paths = _resolve(name, f"{role}_field", samples)
        if not _present(samples, paths):
            raise FieldMissingError(name, shard.relpath, _json_names(samples))
        if role == "text":
            _check_text_type(shard, name, paths, samples)


def _check_text_type(shard: Shard, name: str, paths: tuple[Path, ...], samples: Sequence[dict]) -> None:
    found = None
    for o in samples:
        r = py_units(o, paths)
        if not isinstance(r, Failure):
            return  # a string somewhere: other records are bad records, not a wrong field
        if r.reason == "text_not_string" and found is None:
            found = o
    if found is None:
        return
    for p in paths:
        r = _path_py_value(found, p)
        if r is not None:
            try:
                t = pa.array([r]).type
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                t = None
            shown = str(t) if t is not None else json_type(r)
            raise FieldTypeError(str(p), shard.relpath, shown, hint=type_hint(str(p), t) if t is not None else "")


def _path_py_value(obj: dict, path: Path):
    """The raw (non-string) value a path gives in ``obj``, or None."""
    r = py_units(obj, (path,), strings=False)
    if isinstance(r, Failure):
        return None
    v = r[0][1]
    return None if isinstance(v, str) else v


# --------------------------------------------------------------------------- splitting

# JSON Lines are read in blocks of this many decompressed bytes (plus one partial line)
_JSONL_BLOCK = 4 << 20


def _exact_line_blocks(shard: Shard, stream) -> Iterator[bytes]:
    """The decompressed input, unchanged, in blocks of whole lines (the last block may end
    without a newline).  Unlike readers._json_blocks it neither strips the BOM nor adds a
    final newline, since the outputs must be the input's bytes."""
    pending: list[bytes] = []  # pieces of a line longer than a block
    while True:
        try:
            chunk = stream.read(_JSONL_BLOCK)
        except READ_ERRORS as e:
            raise shard_error(shard, e) from e
        if not chunk:
            if pending:
                yield b"".join(pending)
            return
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending.append(chunk)
            continue
        yield b"".join(pending + [chunk[:cut]]) if pending else chunk[:cut]
        pending = [chunk[cut:]] if cut < len(chunk) else []


def _line_spans(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every line of ``block``; end is past the line's newline, if any."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if len(ends) == 0 or ends[-1] != len(block):
        ends = np.append(ends, len(block))
    starts = np.concatenate(([0], ends[:-1]))
    return starts, ends


def _record_lines(block: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which lines are records: the readers skip lines of only spaces, tabs and CRs."""
    arr = np.frombuffer(block, dtype=np.uint8)
    content = ends - starts - (arr[ends - 1] == 10)  # line length without its newline
    first = arr[starts]  # every span holds at least one byte
    is_record = (content > 0) & ~np.isin(first, np.frombuffer(_JSON_WS, dtype=np.uint8))
    # a line starting with whitespace is rare: check it whole
    for k in np.flatnonzero((content > 0) & ~is_record).tolist():
        is_record[k] = bool(block[starts[k]:starts[k] + content[k]].strip(_JSON_WS))
    return is_record


def open_bytes_output(path: str, compression: str | None):
    sink = pa.OSFile(path, "w")
    return pa.CompressedOutputStream(sink, compression) if compression else sink


def split(shard: Shard, flagged_rows: np.ndarray, clean: str | None, flagged: str | None) -> SplitCounts:
    """Lines go to the clean or flagged output unchanged and in input order.  Blank
    (whitespace-only) lines are not records: they go to the clean output, so no byte of the
    input is lost.  A final line without a newline stays without one."""
    compression = classify(Location.of(shard.path).name)[1]
    raw, stream = open_json_stream(shard)
    sides: list = [None, None]
    try:
        for i, out in enumerate((clean, flagged)):
            if out is not None:
                sides[i] = open_bytes_output(out, compression)
        row0 = n_flagged = 0
        first = True
        for block in _exact_line_blocks(shard, stream):
            if first and block.startswith(_BOM):
                # the BOM marks the file's encoding, not any record (the readers strip it
                # before numbering): both outputs are files of that encoding, so both get it
                for side in sides:
                    if side is not None:
                        side.write(_BOM)
                block = block[len(_BOM):]
            first = False
            row0, n = _split_block(block, row0, flagged_rows, sides)
            n_flagged += n
        close_all(sides)
    finally:
        close_quietly(sides)
        stream.close()
        if raw is not stream:
            raw.close()
    return SplitCounts(row0 - n_flagged, n_flagged)


def _split_block(block: bytes, row0: int, flagged_rows: np.ndarray, sides) -> tuple[int, int]:
    """Write each line of ``block`` to its side; returns (next record index, flagged lines)."""
    if not block:
        return row0, 0
    starts, ends = _line_spans(block)
    is_record = _record_lines(block, starts, ends)
    n_records = int(is_record.sum())
    to_flagged = np.zeros(len(starts), dtype=bool)
    to_flagged[np.flatnonzero(is_record)[flag_mask(flagged_rows, row0, n_records)]] = True
    # write runs of consecutive lines going to the same side in one call
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(to_flagged)) + 1, [len(starts)]))
    view = memoryview(block)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        side = sides[int(to_flagged[a])]
        if side is not None:
            side.write(view[starts[a]:ends[b - 1]])
    return row0 + n_records, int(to_flagged.sum())
