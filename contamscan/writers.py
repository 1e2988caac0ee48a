"""Split one input shard into a clean copy (without the flagged records) and a flagged copy
(only the flagged records), for ``scan --write-clean DIR / --write-flagged DIR``.

Each output keeps the input's relative path, format and schema: Parquet keeps its Arrow
schema, key-value and field metadata and codec; Arrow IPC keeps its schema, footer and
batch metadata, flavour (file / stream) and body compression; JSON Lines outputs are the
input lines byte for byte, with the input's compression.  Every shard is streamed (row group,
record batch or block of lines at a time) and every output file is written under a hidden
temporary name and renamed into place only once complete.

Records are numbered as :mod:`contamscan.readers` numbers them (``Batch.rows`` /
``BadRecord.row``), so the rows a scan flags can be passed straight to :func:`split_shard`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .errors import ContamscanError
from .readers import (
    _BOM,
    _JSON_WS,
    Shard,
    _classify,
    _open_ipc,
    _open_json_stream,
    _open_parquet,
    _release_memory,
    _rows_per_batch,
    _shard_error,
)

__all__ = ["SplitCounts", "OutputWriteError", "split_shard", "remove_temporaries"]

# Parquet / Arrow input is filtered in batches of about this many (uncompressed) bytes
_BATCH_BYTES = 32 << 20
# a Parquet output row group is written once it has as many rows as the input's largest row
# group, or earlier once this many bytes are buffered (the writer needs a whole row group
# in memory; this bounds it when the input has huge row groups)
_GROUP_BYTES = 128 << 20
# JSON Lines are read in blocks of this many decompressed bytes (plus one partial line)
_JSONL_BLOCK = 4 << 20
# errors pyarrow raises for an unreadable input, as readers.py catches them
_READ_ERRORS = (OSError, pa.ArrowException, ValueError)
# codecs ParquetWriter can write; others (LZO, legacy Hadoop LZ4) fall back to its default
_PARQUET_CODECS = {"uncompressed": "none", "snappy": "snappy", "gzip": "gzip",
                   "brotli": "brotli", "lz4": "lz4", "lz4_raw": "lz4", "zstd": "zstd"}
_DEFAULT_PARQUET_CODEC = "snappy"


def remove_temporaries(root: Path) -> None:
    """Temporary outputs a killed scan left under ``root`` (hidden ``.NAME.HEX.tmp`` files).
    A remote root has none: its outputs are staged in local temporary files."""
    if not storage.is_remote(root) and Path(root).is_dir():
        for p in Path(root).rglob(".*.tmp"):
            p.unlink(missing_ok=True)


@dataclass(frozen=True)
class SplitCounts:
    clean: int  # records written to the clean output
    flagged: int  # records written to the flagged output


class OutputWriteError(ContamscanError):
    """An output file cannot be written (disk full, permission denied, ...)."""


def split_shard(shard: Shard, flagged_rows: np.ndarray, clean_root: Path | None,
                flagged_root: Path | None) -> SplitCounts:
    """Write ``clean_root / shard.relpath`` (every record not in ``flagged_rows``) and
    ``flagged_root / shard.relpath`` (only those in it); a root of None skips that side.

    ``flagged_rows``: sorted unique record indices, numbered as the readers number them.
    Bad records (e.g. malformed JSON lines) are records too and go to the clean side unless
    flagged.  ``clean + flagged`` is the shard's number of records.  A side with no records
    still gets a valid empty file, so the output trees mirror the input tree.

    Raises ShardReadError if the input cannot be read, OutputWriteError if an output cannot
    be written, ValueError if ``flagged_rows`` is not sorted, unique and within the shard.
    No output or temporary file is left behind on error.
    """
    flagged_rows = _checked_rows(flagged_rows)
    outputs: list[_PendingOutput | None] = [None, None]
    try:
        for i, root in enumerate((clean_root, flagged_root)):
            if root is not None:
                outputs[i] = _PendingOutput(shard, root)
        split = _SPLITTERS.get(shard.format)
        if split is None:
            raise ContamscanError(f"{shard.relpath}: unknown shard format {shard.format!r}")
        try:
            counts = split(shard, flagged_rows, *outputs)
            if counts.flagged != len(flagged_rows):
                raise ValueError(
                    f"{shard.relpath}: flagged row {int(flagged_rows[-1])} is past the "
                    f"shard's {counts.clean + counts.flagged} records")
            for out in outputs:
                if out is not None:
                    out.commit()
        except OSError as e:  # read errors were already turned into ShardReadError
            raise OutputWriteError(f"cannot write the output of {shard.relpath}: "
                                   f"{e.strerror or e}") from e
        return counts
    finally:
        for out in outputs:
            if out is not None:
                out.discard()


def _checked_rows(flagged_rows) -> np.ndarray:
    rows = np.asarray(flagged_rows, dtype=np.int64).ravel()
    if len(rows) and (rows[0] < 0 or (len(rows) > 1 and not (np.diff(rows) > 0).all())):
        raise ValueError("flagged_rows must be sorted, unique and non-negative")
    return rows


def _flag_mask(flagged_rows: np.ndarray, row0: int, n: int) -> np.ndarray:
    """Which of records row0 .. row0 + n - 1 are flagged."""
    lo, hi = np.searchsorted(flagged_rows, [row0, row0 + n])
    mask = np.zeros(n, dtype=bool)
    mask[flagged_rows[lo:hi] - row0] = True
    return mask


def _guarded(shard: Shard, items: Iterator):
    """Iterate over an input reader, turning its failures into ShardReadError (write
    failures, raised between items, stay OSError)."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except _READ_ERRORS as e:
            raise _shard_error(shard, e) from e
        yield item


# --------------------------------------------------------------------------------------
# output files
# --------------------------------------------------------------------------------------


class _PendingOutput:
    """One output file, written under a temporary name in its final directory.

    The temporary name starts with "." so that discovery never takes a leftover (after a
    kill) for a shard; it is created with O_EXCL and mode 0666 so the umask applies as for
    any other file.

    Under a remote root (a URI, :mod:`contamscan.storage`), the file is written to a local
    temporary file (in $TMPDIR) and uploaded on commit: an object store shows an upload only
    once complete, under its final name."""

    def __init__(self, shard: Shard, root: Path | str):
        rel = Path(shard.relpath)
        if rel.is_absolute() or ".." in rel.parts:
            raise ContamscanError(f"{shard.relpath}: cannot be written under {storage.display(root)}")
        self.remote = storage.is_remote(root)
        if self.remote:
            self.final = storage.join(root, shard.relpath)
            if storage.is_remote(shard.path) and storage.key(self.final) == storage.key(shard.path):
                raise ContamscanError(f"{shard.relpath}: output {storage.display(self.final)} is the input itself")
            try:
                self.temp = Path(storage.tmp_file(".tmp"))
            except OSError as e:
                raise OutputWriteError(f"cannot create a temporary file for {shard.relpath}: {e.strerror or e}") from e
            return
        self.final = Path(root) / rel
        self.temp: Path | None = None
        try:
            if self.final.exists() and not storage.is_remote(shard.path) and os.path.samefile(self.final, shard.path):
                raise ContamscanError(f"{shard.relpath}: output {self.final} is the input itself")
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.temp = self._reserve_temp()
        except OSError as e:
            raise OutputWriteError(f"cannot create {self.final}: {e.strerror or e}") from e

    def _reserve_temp(self) -> Path:
        while True:
            temp = self.final.with_name(f".{self.final.name}.{secrets.token_hex(6)}.tmp")
            try:
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return temp
            except FileExistsError:
                continue

    @property
    def path(self) -> str:
        return str(self.temp)

    def commit(self) -> None:
        if self.remote:
            try:
                storage.upload(self.temp, self.final)
            except ContamscanError as e:
                raise OutputWriteError(str(e)) from e
            self.discard()
            return
        # on disk before the rename, so a crash cannot leave a complete-looking empty file
        fd = os.open(self.temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.temp, self.final)
        self.temp = None

    def discard(self) -> None:
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None


# --------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------


def _parquet_codec(md: pq.FileMetaData) -> str:
    if md.num_row_groups == 0 or md.num_columns == 0:
        return _DEFAULT_PARQUET_CODEC
    name = str(md.row_group(0).column(0).compression).lower()
    return _PARQUET_CODECS.get(name, _DEFAULT_PARQUET_CODEC)


class _ParquetOutput:
    """Buffers filtered batches into row groups of ``group_rows`` rows (fewer if they
    exceed _GROUP_BYTES), so the outputs keep row groups of about the input's size even
    though each input batch loses some rows to the other side."""

    def __init__(self, path: str, schema: pa.Schema, codec: str, group_rows: int):
        self.writer = pq.ParquetWriter(path, schema, compression=codec)
        self.group_rows = group_rows
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0
        self.nbytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes
        while self.rows >= self.group_rows:
            self._write_group(self.group_rows)
        if self.nbytes >= _GROUP_BYTES:
            self._write_group(self.rows)

    def _write_group(self, n: int) -> None:
        table = pa.Table.from_batches(self.pending)
        self.writer.write_table(table.slice(0, n), row_group_size=n)
        rest = table.slice(n)
        self.pending = rest.to_batches()
        self.rows = rest.num_rows
        self.nbytes = rest.nbytes

    def close(self) -> None:
        if self.rows:
            self._write_group(self.rows)
        self.writer.close()


def _split_parquet(shard: Shard, flagged_rows: np.ndarray, clean: _PendingOutput | None,
                   flagged: _PendingOutput | None) -> SplitCounts:
    pf = _open_parquet(shard)
    md = pf.metadata
    codec = _parquet_codec(md)
    group_rows = max([md.row_group(g).num_rows for g in range(md.num_row_groups)] + [1])
    sides: list = [None, None]
    row0 = n_flagged = 0
    try:
        for i, out in enumerate((clean, flagged)):
            if out is not None:
                sides[i] = _ParquetOutput(out.path, pf.schema_arrow, codec, group_rows)
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            if rg.num_rows == 0:
                continue
            batch_rows = _rows_per_batch(rg.num_rows, rg.total_byte_size, _BATCH_BYTES)
            try:
                batches = pf.iter_batches(batch_size=batch_rows, row_groups=[g], use_threads=False)
            except _READ_ERRORS as e:
                raise _shard_error(shard, e) from e
            for batch in _guarded(shard, batches):
                mask = _flag_mask(flagged_rows, row0, batch.num_rows)
                _route_batch(batch, mask, sides, lambda side, part: side.add(part))
                row0 += batch.num_rows
                n_flagged += int(mask.sum())
            del batches
            _release_memory()  # once per row group, as the readers do
        _close(sides)
    finally:
        _close_quietly(sides)
        pf.close()
    return SplitCounts(row0 - n_flagged, n_flagged)


def _close(sides) -> None:
    """Finish the output writers (Parquet footer, IPC footer / end marker, compressed
    stream trailer); a failure here is a failed split."""
    for i, side in enumerate(sides):
        if side is not None:
            sides[i] = None
            side.close()


def _close_quietly(sides) -> None:
    """Release the writers left open by a failed split without masking its error (their
    files are discarded)."""
    for side in sides:
        if side is not None:
            try:
                side.close()
            except Exception:  # noqa: BLE001
                pass


def _route_batch(batch, mask: np.ndarray, sides, write) -> None:
    """Send the unflagged rows of ``batch`` to sides[0] and the flagged ones to sides[1]."""
    for side, keep in zip(sides, (~mask, mask)):
        if side is not None and keep.any():
            write(side, batch if keep.all() else batch.filter(pa.array(keep)))


# --------------------------------------------------------------------------------------
# Arrow IPC
# --------------------------------------------------------------------------------------


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
        with storage.open_input_file(path) if storage.is_remote(path) else pa.memory_map(path, "r") as src:
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


def _drop_read_pages(mapped, kind: str, source, batch: pa.RecordBatch) -> None:
    """Let the pages of the input map read so far leave RSS, as readers._read_arrow does
    (RSS would otherwise grow to the file's size); batches are written out at once, so
    nothing still needs them."""
    if not hasattr(mapped, "drop_until"):  # a plain NativeFile from an older _open_ipc
        return
    mapped.drop_until(mapped.end_of(batch) if kind == "file" else source.tell())


def _split_arrow(shard: Shard, flagged_rows: np.ndarray, clean: _PendingOutput | None,
                 flagged: _PendingOutput | None) -> SplitCounts:
    kind, reader, mapped = _open_ipc(shard)
    source = getattr(mapped, "source", mapped)  # readers' map wrapper, or a plain NativeFile
    sides: list = [None, None]
    try:
        options = pa.ipc.IpcWriteOptions(compression=_ipc_compression(shard.path, kind))
        for i, out in enumerate((clean, flagged)):
            if out is None:
                continue
            if kind == "file":
                sides[i] = pa.ipc.new_file(out.path, reader.schema, options=options,
                                           metadata=reader.metadata)
            else:
                sides[i] = pa.ipc.new_stream(out.path, reader.schema, options=options)
        row0 = n_flagged = 0
        for batch, custom in _guarded(shard, _ipc_batches(shard, kind, reader)):
            mask = _flag_mask(flagged_rows, row0, batch.num_rows)
            _route_batch(batch, mask, sides,
                         lambda side, part: side.write_batch(part, custom_metadata=custom))
            row0 += batch.num_rows
            n_flagged += int(mask.sum())
            _drop_read_pages(mapped, kind, source, batch)
        _close(sides)
    finally:
        _close_quietly(sides)
        source.close()
    return SplitCounts(row0 - n_flagged, n_flagged)


# --------------------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------------------


def _exact_line_blocks(shard: Shard, stream) -> Iterator[bytes]:
    """The decompressed input, unchanged, in blocks of whole lines (the last block may end
    without a newline).  Unlike readers._json_blocks it neither strips the BOM nor adds a
    final newline, since the outputs must be the input's bytes."""
    pending: list[bytes] = []  # pieces of a line longer than a block
    while True:
        try:
            chunk = stream.read(_JSONL_BLOCK)
        except _READ_ERRORS as e:
            raise _shard_error(shard, e) from e
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


def _open_bytes_output(path: str, compression: str | None):
    sink = pa.OSFile(path, "w")
    return pa.CompressedOutputStream(sink, compression) if compression else sink


def _split_jsonl(shard: Shard, flagged_rows: np.ndarray, clean: _PendingOutput | None,
                 flagged: _PendingOutput | None) -> SplitCounts:
    """Lines go to the clean or flagged output unchanged and in input order.  Blank
    (whitespace-only) lines are not records: they go to the clean output, so no byte of the
    input is lost.  A final line without a newline stays without one."""
    compression = _classify(storage.basename(shard.path))[1]
    raw, stream = _open_json_stream(shard)
    sides: list = [None, None]
    try:
        for i, out in enumerate((clean, flagged)):
            if out is not None:
                sides[i] = _open_bytes_output(out.path, compression)
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
        _close(sides)
    finally:
        _close_quietly(sides)
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
    to_flagged[np.flatnonzero(is_record)[_flag_mask(flagged_rows, row0, n_records)]] = True
    # write runs of consecutive lines going to the same side in one call
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(to_flagged)) + 1, [len(starts)]))
    view = memoryview(block)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        side = sides[int(to_flagged[a])]
        if side is not None:
            side.write(view[starts[a]:ends[b - 1]])
    return row0 + n_records, int(to_flagged.sum())


_SPLITTERS = {"parquet": _split_parquet, "arrow": _split_arrow, "jsonl": _split_jsonl}
