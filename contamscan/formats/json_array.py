"""A ``.json`` file holding one JSON array of objects (``[{"text": ...}, ...]``, as
``json.dump(records)`` writes it, pretty-printed or not): streamed in bounded memory, one
record per element of the array; split into clean/flagged JSON arrays of the input's
elements, byte for byte, in the input's compression.

A ``.json`` file whose first character (after a byte-order mark and white space) is not
``[`` is JSON Lines, read by :mod:`contamscan.formats.jsonl` as before.

Streaming: a tokenizer (one regular expression: whole strings, brackets, braces, commas)
walks the array chunk by chunk and cuts it at the commas of the top level; memory holds one
chunk and the element being cut, never the array. Each element becomes one line (the new
lines of a pretty-printed element are white space between tokens: they become spaces) and
the lines go through the JSON Lines parser, so both layouts read records the same way
(the same bad-record reasons; a bad record's line is the line of the file where its
element starts). An element that is not an object is a bad record (``not_an_object``); an
empty element (``[1,,2]``, a trailing comma) is ``malformed_json``. What is not an array
of elements (text after the closing ``]``, an unterminated string or array) fails the shard.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..errors import ShardReadError
from ..io import Location
from ..model import Batch, Fields, Shard
from . import jsonl
from .base import SplitCounts, classify, close_all, close_quietly, flag_mask
from .fields import loads

_BOM = b"\xef\xbb\xbf"
_WS = b" \t\r\n"
# a whole string (group 1 is its closing quote: None when the chunk ends inside it), or a
# character that changes the nesting or separates elements
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(")?|[\[\]{},]', re.DOTALL)
_SNIFF = 4096
_NL = b"\n"
_SAMPLE_BUDGET = 64 << 20


def applies(shard: Shard) -> bool:
    """Whether ``shard`` is a ``.json`` (``.json.gz``, ``.json.zst``) file holding an array."""
    name = Location.of(shard.path).name.lower()
    if not (name.endswith(".json") or name.endswith(".json.gz") or name.endswith(".json.zst")):
        return False
    raw, stream = jsonl.open_json_stream(shard)
    try:
        head = b""
        while len(head) < _SNIFF:
            try:
                chunk = stream.read(_SNIFF)
            except OSError as e:
                raise ShardReadError(f"{shard.relpath}: {e}") from e
            if not chunk:
                break
            head += chunk
            if head.lstrip(_BOM).lstrip(_WS):
                break
    finally:
        stream.close()
        if raw is not stream:
            raw.close()
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    return head.lstrip(_WS)[:1] == b"["


class _Elements:
    """The elements of the array, chunk by chunk: each step gives ``(elements, lines,
    raw_bytes)``: the elements completed in the chunk (their bytes without surrounding
    white space), the line of the file where each starts, and the on-disk bytes consumed."""

    def __init__(self, shard: Shard, block_bytes: int):
        self.shard = shard
        self.block_bytes = max(1 << 16, block_bytes)

    def _fail(self, what: str):
        raise ShardReadError(f"{self.shard.relpath}: not a JSON array of records: {what}")

    def __iter__(self) -> Iterator[tuple[list[bytes], list[int], int]]:
        raw, stream = jsonl.open_json_stream(self.shard)
        try:
            yield from self._steps(raw, stream)
        finally:
            stream.close()
            if raw is not stream:
                raw.close()

    def _steps(self, raw, stream):
        buf = b""
        pos = 0  # where the tokenizer goes on in buf
        start = None  # where the current element starts in buf (None: before the array)
        depth = 0
        line_no, line_pos = 1, 0  # the line of the file at buf[line_pos]
        ended = first = False
        commas = 0
        reported = 0
        eof = False
        while not eof:
            try:
                chunk = stream.read(self.block_bytes)
            except OSError as e:
                raise ShardReadError(f"{self.shard.relpath}: {e.strerror or e}") from e
            eof = not chunk
            if not first and chunk:
                first = True
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM):]
            buf += chunk
            elements: list[bytes] = []
            lines: list[int] = []

            def take(a: int, b: int) -> None:
                nonlocal line_no, line_pos
                part = buf[a:b]
                body = part.strip(_WS)
                at = a + (len(part) - len(part.lstrip(_WS)))
                line_no += buf.count(b"\n", line_pos, at)
                line_pos = at
                elements.append(body)
                lines.append(line_no)

            while not ended:
                m = _TOKEN.search(buf, pos)
                if m is None:
                    pos = len(buf)
                    break
                tok = buf[m.start():m.start() + 1]
                if start is None:
                    if tok != b"[" or buf[:m.start()].strip(_WS):
                        self._fail("it does not start with '['")
                    depth, start, pos = 1, m.end(), m.end()
                    continue
                if tok == b'"':
                    if m.group(1) is None:  # the string goes on in the next chunk
                        if eof:
                            self._fail(f"unterminated string at line {line_no + buf.count(_NL, line_pos, m.start())}")
                        pos = m.start()
                        break
                elif tok in b"[{":
                    depth += 1
                elif tok in b"]}":
                    depth -= 1
                    if depth == 0:
                        if tok != b"]":
                            self._fail(f"unbalanced '}}' at line {line_no + buf.count(_NL, line_pos, m.start())}")
                        if commas or buf[start:m.start()].strip(_WS):
                            take(start, m.start())
                        ended = True
                        start = m.end()
                elif depth == 1:  # a comma between elements
                    take(start, m.start())
                    commas += 1
                    start = m.end()
                pos = m.end()
            if ended and buf[start:].strip(_WS):
                self._fail("text after the closing ']'")
            if eof and not ended:
                self._fail("the file ends inside the array" if start is not None else "no '[' in the file")
            # keep what the next chunk needs: the current element (or nothing)
            keep = start if start is not None and not ended else len(buf)
            keep = min(keep, pos)
            line_no += buf.count(b"\n", line_pos, keep)
            line_pos = 0
            buf, pos = buf[keep:], pos - keep
            if start is not None:
                start = max(0, start - keep)
            position = raw.tell()
            if elements or position > reported:
                yield elements, lines, position - reported
                reported = position


def _as_lines(elements: list[bytes]) -> bytes:
    """The elements as JSON lines (white space new lines become spaces; an empty element
    a line that is malformed JSON)."""
    if not elements:
        return b""
    return b"\n".join((e.replace(b"\n", b" ").replace(b"\r", b" ") or b",") for e in elements) + b"\n"


def read(shard: Shard, fields: Fields, batch_bytes: int, strict: bool) -> Iterator[Batch]:
    where = {"row0": 0, "lines": []}

    def blocks():
        for elements, lines, raw_bytes in _Elements(shard, batch_bytes):
            where["row0"] += len(where["lines"])
            where["lines"] = lines
            yield _as_lines(elements), raw_bytes

    def line_of(row: int) -> int:
        return where["lines"][row - where["row0"]]

    return jsonl.parse_blocks(shard, blocks(), fields, strict, line_of=line_of)


def _samples(shard: Shard, limit: int = 100) -> list[dict]:
    out: list[dict] = []
    seen = 0
    steps = iter(_Elements(shard, 1 << 20))
    try:
        for elements, _, raw_bytes in steps:
            for e in elements:
                try:
                    obj = loads(e)
                except (ValueError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
                    if len(out) >= limit:
                        return out
            seen += raw_bytes
            if seen >= _SAMPLE_BUDGET:
                break
    except ShardReadError:
        if not out:
            raise
    finally:
        steps.close()
    return out


def has_field(shard: Shard, name: str) -> bool:
    return jsonl.samples_have_field(_samples(shard), name)


def check(shard: Shard, fields: Fields) -> None:
    """As for JSON Lines: the first ~100 objects of the array."""
    jsonl.check_samples(shard, fields, _samples(shard))


def split(shard: Shard, flagged_rows: np.ndarray, clean: str | None, flagged: str | None) -> SplitCounts:
    """Each side is a JSON array of the input's elements (their bytes unchanged, in input
    order), one per line; a side without elements is ``[]``."""
    compression = classify(Location.of(shard.path).name)[1]
    sides: list = [None, None]
    written = [0, 0]
    row0 = 0
    try:
        for i, out in enumerate((clean, flagged)):
            if out is not None:
                sides[i] = jsonl.open_bytes_output(out, compression)
                sides[i].write(b"[")
        for elements, _, _ in _Elements(shard, 4 << 20):
            mask = flag_mask(flagged_rows, row0, len(elements))
            for e, f in zip(elements, mask.tolist()):
                side = sides[int(f)]
                if side is not None:
                    side.write((b",\n" if written[int(f)] else b"\n") + e)
                written[int(f)] += 1
            row0 += len(elements)
        for i, side in enumerate(sides):
            if side is not None:
                side.write(b"\n]\n" if written[i] else b"]\n")
        close_all(sides)
    finally:
        close_quietly(sides)
    return SplitCounts(written[0], written[1])
