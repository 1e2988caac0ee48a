"""The content fingerprint of a unit of work: what a checkpoint must still match for
``--resume`` to reuse it.

A shard's size and modification time say nothing when a file is replaced by one of the same
size with its time kept (``cp -p``, ``rsync -t``, ``tar`` do that), so a finished shard's
checkpoint also holds an xxh3-128 digest of the bytes the unit depends on: the whole file,
or for a piece of a Parquet shard (whole row groups) the byte range of its row groups and
the footer (which holds every row group's offsets, sizes and statistics). A worker computes
it just before it scans the unit (the read brings the file into the page cache, where the
scan then finds it), and a resumed scan computes it again for every finished unit and scans
again those whose digest changed.

Remote objects have no digest here (None): an object store sets an object's modification time
itself on every write, and no client can set it back, so size and time already tell.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import xxhash

from ..io import Location
from ..model import Shard

CHUNK = 8 << 20


def content_digest(unit: Shard) -> str | None:
    """xxh3-128 (hex) of the bytes ``unit`` depends on; None for a remote object.

    Raises:
        OSError: the file cannot be read (the scan then fails the shard when it reads it).
    """
    if Location.of(unit.path).remote:
        return None
    fd = os.open(unit.path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        ranges = [(0, size)] if unit.row_groups is None else _piece_ranges(fd, unit, size)
        h = xxhash.xxh3_128()
        h.update(f"{size}:{ranges}".encode())
        for start, end in ranges:
            while start < end:
                block = os.pread(fd, min(CHUNK, end - start), start)
                if not block:
                    break
                h.update(block)
                start += len(block)
        return h.hexdigest()
    finally:
        os.close(fd)


def _piece_ranges(fd: int, unit: Shard, size: int) -> list[tuple[int, int]]:
    """The byte ranges of a Parquet piece: its row groups' column chunks, and the footer."""
    tail = os.pread(fd, 8, max(size - 8, 0))
    footer = int.from_bytes(tail[:4], "little") if len(tail) == 8 else 0
    ranges = [(max(size - 8 - footer, 0), size)]
    with open(os.dup(fd), "rb") as f:
        md = pq.ParquetFile(f).metadata
        for g in unit.row_groups:
            rg = md.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                starts = [o for o in (col.dictionary_page_offset, col.data_page_offset) if o is not None and o > 0]
                start = min(starts) if starts else 0
                ranges.append((start, start + col.total_compressed_size))
    return _merged(ranges)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
