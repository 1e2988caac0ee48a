"""Arrow IPC (file and stream): read record batches by random access (pread, not a memory
map), and split into clean/flagged copies that keep schema, metadata, flavour and body
compression.

Why not a memory map: a mapped file that shrinks while it is read (truncated, rewritten in
place) makes the next access to a page past its new end raise SIGBUS, which kills the
process (the scan with one worker, the pool with several) and cannot be handled safely in
Python. Reads at offsets fail with an error instead, and the shard fails alone. They cost a
copy of what is read; only the columns the scan needs are read (``included_fields``), and
each record batch is freed once scanned, so memory is bounded by a record batch, as with
the map whose read pages were dropped (measured on a 1 GB file: see the commit that made
the change).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from ..errors import ContamscanError, ShardReadError
from ..io import Location
from ..model import Batch, Fields, Shard
from .base import (
    SplitCounts,
    arrow_plan,
    close_all,
    close_quietly,
    convert_arrow,
    flag_mask,
    guarded,
    release_memory,
    resolve_arrow,
    route_batch,
    shard_error,
)

_FILE_MAGIC = b"ARROW1"


def open_ipc(shard: Shard):
    """(kind, reader, source) for an Arrow IPC file (it starts with ``ARROW1``) or stream."""
    try:
        src = Location.of(shard.path).open_random()
    except (OSError, ValueError, pa.ArrowException, ContamscanError) as e:
        raise shard_error(shard, e) from e
    is_file = False
    try:
        is_file = src.read(len(_FILE_MAGIC)) == _FILE_MAGIC
        kind = "file" if is_file else "stream"
        return kind, _reader(kind, src), src
    except (pa.ArrowException, OSError) as e:
        src.close()
        what = "an Arrow IPC file whose footer cannot be read" if is_file else "not a valid Arrow IPC file or stream"
        raise ShardReadError(f"{shard.relpath}: {what} ({_first_line(e)})") from e


def _reader(kind: str, src, columns: list[str] | None = None, schema: pa.Schema | None = None):
    """A reader of ``src`` from its start; with ``columns``, of only these top-level columns
    of ``schema`` (an IPC file then reads only their buffers)."""
    src.seek(0)
    opts = None if columns is None else pa.ipc.IpcReadOptions(
        included_fields=[i for i, f in enumerate(schema) if f.name in columns])
    if kind == "file":
        return pa.ipc.open_file(src) if opts is None else pa.ipc.open_file(src, options=opts)
    return pa.ipc.open_stream(src) if opts is None else pa.ipc.open_stream(src, options=opts)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read(shard: Shard, fields: Fields, batch_bytes: int, strict: bool) -> Iterator[Batch]:
    """Record batches read at their offsets (only the columns needed), cut into batches of
    about ``batch_bytes``; an Arrow IPC file yields every record batch its footer lists, or
    fails. Each record batch is freed once scanned, so memory is bounded by a record batch,
    not by the file."""
    kind, reader, src = open_ipc(shard)
    try:
        plan = arrow_plan(reader.schema, fields, shard.relpath)
        try:
            reader = _reader(kind, src, plan.columns, reader.schema)
        except (pa.ArrowException, OSError) as e:
            raise shard_error(shard, e) from e
        size = shard.size
        row0 = 0
        reported = 0
        unreleased = 0

        def slices(rb, share: int):
            nonlocal row0, reported, unreleased
            n = rb.num_rows
            if n == 0:
                return
            nbytes = sum(rb.column(c).nbytes for c in plan.text_columns)
            unreleased += nbytes
            parts = max(1, -(-nbytes // max(1, batch_bytes)))
            step = -(-n // parts)
            base = reported
            for start in range(0, n, step):
                part = rb.slice(start, step)
                end = min(n, start + step)
                upto = base + share * end // n
                batch = convert_arrow(part, plan, row0, shard, strict, upto - reported)
                reported = upto
                row0 += part.num_rows
                yield batch

        def released():
            nonlocal unreleased
            if unreleased >= batch_bytes:  # as the other readers: every batch's worth of text
                release_memory()
                unreleased = 0

        if kind == "file":
            nb = reader.num_record_batches
            for i in range(nb):
                try:
                    rb = reader.get_batch(i)
                except (pa.ArrowException, OSError) as e:
                    raise shard_error(shard, e) from e
                share = size * (i + 1) // nb - size * i // nb
                yield from slices(rb, share)
                del rb
                released()
        else:
            last = 0
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as e:
                    raise shard_error(shard, e) from e
                pos = src.tell()
                yield from slices(rb, pos - last)
                last = pos
                del rb
                released()
            if src.tell() != size:  # a stream has no footer: it must end where the file did when listed
                raise ShardReadError(f"{shard.relpath}: the Arrow IPC stream ends at byte {src.tell():,} of "
                                     f"{size:,} (the file was truncated or changed while it was read)")
        if reported < size and row0 > 0:
            # trailing footer / end-of-stream marker: account for it in a final empty batch
            yield Batch(
                pa.array([], pa.large_string()),
                pa.array([], pa.large_string()) if plan.id else None,
                pa.array([], pa.large_string()) if plan.label else None,
                np.zeros(0, np.int64), (), 0, size - reported,
                turns=np.zeros(0, np.int64) if plan.per_turn else None,
            )
    finally:
        src.close()


def check(shard: Shard, fields: Fields) -> None:
    kind, reader, src = open_ipc(shard)
    try:
        arrow_plan(reader.schema, fields, shard.relpath)
    finally:
        src.close()


def has_field(shard: Shard, name: str) -> bool:
    kind, reader, src = open_ipc(shard)
    try:
        return resolve_arrow(reader.schema, name, shard.relpath) is not None
    finally:
        src.close()


# --------------------------------------------------------------------------- splitting

def _flatbuffer_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the flatbuffer table at ``table``, or None
    if the field is absent (holds its default)."""
    vtable = table - int.from_bytes(buf[table:table + 4], "little", signed=True)
    slot = 4 + 2 * index
    if slot >= int.from_bytes(buf[vtable:vtable + 2], "little"):
        return None
    offset = int.from_bytes(buf[vtable + slot:vtable + slot + 2], "little")
    return table + offset if offset else None


def _ipc_compression(path: str, kind: str) -> str | None:
    """Body compression ("lz4" / "zstd") of the first record batch, or None.

    pyarrow does not expose it, so it is read from the batch's message header
    (Message.header -> RecordBatch.compression -> BodyCompression.codec in Arrow's
    Message.fbs).  Best effort: anything unexpected means "uncompressed"."""
    try:
        with Location.of(path).open_random() as src:
            if kind == "file":
                src.seek(8)  # "ARROW1" magic and padding
            while True:
                message = pa.ipc.read_message(src)
                if message.type == "record batch":
                    break
            buf = message.metadata.to_pybytes()
        root = int.from_bytes(buf[:4], "little")
        header = _flatbuffer_field(buf, root, 2)  # Message.header
        header += int.from_bytes(buf[header:header + 4], "little")
        compression = _flatbuffer_field(buf, header, 3)  # RecordBatch.compression
        if compression is None:
            return None
        compression += int.from_bytes(buf[compression:compression + 4], "little")
        codec = _flatbuffer_field(buf, compression, 0)  # BodyCompression.codec
        return "zstd" if codec is not None and buf[codec] == 1 else "lz4"
    except Exception:  # noqa: BLE001 - detection only; the split itself reports real errors
        return None


def _ipc_batches(shard: Shard, kind: str, reader) -> Iterator[tuple[pa.RecordBatch, object]]:
    """(batch, its custom metadata) in file order, for either IPC flavour."""
    if kind == "file":
        for i in range(reader.num_record_batches):
            yield reader.get_batch_with_custom_metadata(i)
    else:
        while True:
            try:
                yield reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                return


def split(shard: Shard, flagged_rows: np.ndarray, clean: str | None, flagged: str | None) -> SplitCounts:
    kind, reader, source = open_ipc(shard)
    sides: list = [None, None]
    try:
        options = pa.ipc.IpcWriteOptions(compression=_ipc_compression(shard.path, kind))
        for i, out in enumerate((clean, flagged)):
            if out is None:
                continue
            if kind == "file":
                sides[i] = pa.ipc.new_file(out, reader.schema, options=options,
                                           metadata=reader.metadata)
            else:
                sides[i] = pa.ipc.new_stream(out, reader.schema, options=options)
        row0 = n_flagged = 0
        for batch, custom in guarded(shard, _ipc_batches(shard, kind, reader)):
            mask = flag_mask(flagged_rows, row0, batch.num_rows)
            route_batch(batch, mask, sides,
                         lambda side, part: side.write_batch(part, custom_metadata=custom))
            row0 += batch.num_rows
            n_flagged += int(mask.sum())
        close_all(sides)
    finally:
        close_quietly(sides)
        source.close()
    return SplitCounts(row0 - n_flagged, n_flagged)
