"""Parquet: read row group by row group in bounded memory, and split into clean/flagged copies
that keep the schema, key-value and field metadata, codec and row-group size."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ContamscanError, ShardReadError
from ..io import Location
from ..model import Batch, Fields, Shard
from .base import (
    READ_ERRORS,
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
    rows_per_batch,
    shard_error,
)

# Parquet / Arrow input is filtered in batches of about this many (uncompressed) bytes
_BATCH_BYTES = 32 << 20
# a Parquet output row group is written once it has as many rows as the input's largest row
# group, or earlier once this many bytes are buffered (the writer needs a whole row group
# in memory; this bounds it when the input has huge row groups)
_GROUP_BYTES = 128 << 20


def _text_bytes_per_row_group(md, text_cols: list[str]) -> list[int]:
    """Uncompressed bytes of the text column (all its leaves) in each row group."""
    out = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        total = 0
        for c in range(rg.num_columns):
            col = rg.column(c)
            if col.path_in_schema.split(".")[0] in text_cols:
                total += col.total_uncompressed_size
        out.append(total)
    return out


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


def open_parquet(shard: Shard) -> pq.ParquetFile:
    loc = Location.of(shard.path)
    try:
        # no pre-buffering (it keeps the compressed file in memory) and a bounded read
        # buffer: a column chunk is streamed page by page rather than read whole (in larger
        # reads from object storage, where each read is a request)
        source, fs = loc.arrow_source()
        return pq.ParquetFile(source, filesystem=fs, pre_buffer=False, buffer_size=loc.read_buffer)
    except (OSError, pa.ArrowException, ValueError, ContamscanError) as e:
        raise shard_error(shard, e) from e


def read(shard: Shard, fields: Fields, batch_bytes: int, strict: bool) -> Iterator[Batch]:
    """Row group by row group (small ones gathered, see :func:`_row_group_runs`), each cut
    into equal batches of about ``batch_bytes`` of text.

    Memory: a batch never spans two big row groups (which would hold both column chunks at
    once), column chunks are read through a small buffer, and Arrow's allocator releases
    its cache after each run of row groups, so peak memory is bounded by the batch and row
    group sizes, not by the shard size."""
    pf = open_parquet(shard)
    plan = arrow_plan(pf.schema_arrow, fields, shard.relpath)
    md = pf.metadata
    total = md.num_rows
    if total == 0:
        return
    size = shard.size
    group_bytes = _text_bytes_per_row_group(md, plan.text_columns)
    only = shard.row_groups
    # a piece's rows are numbered as in the whole file; its raw bytes are its share of the file
    row0 = sum(md.row_group(g).num_rows for g in range(only[0])) if only else 0
    reported = size * row0 // total
    first = row0
    for groups, n_rows, n_bytes in _row_group_runs(md, group_bytes, batch_bytes, only):
        rows_per = rows_per_batch(n_rows, n_bytes, batch_bytes)
        try:
            it = pf.iter_batches(batch_size=rows_per, row_groups=groups, columns=plan.columns, use_threads=False)
        except (OSError, pa.ArrowException, ValueError) as e:
            raise shard_error(shard, e) from e
        run_end = row0 + n_rows
        while True:
            try:
                rb = next(it)
            except StopIteration:
                break
            except (OSError, pa.ArrowException, ValueError) as e:
                raise shard_error(shard, e) from e
            n = rb.num_rows
            if row0 + n > run_end:
                raise promise_broken(shard, groups, row0 + n - (run_end - n_rows), n_rows)
            upto = size if row0 + n >= total else size * (row0 + n) // total
            try:
                batch = convert_arrow(rb, plan, row0, shard, strict, upto - reported)
            except (pa.ArrowException, OSError) as e:
                raise shard_error(shard, e) from e
            reported = upto
            row0 += n
            del rb
            yield batch
            del batch  # the consumer holds it as long as it needs it
        del it
        if row0 != run_end:
            raise promise_broken(shard, groups, row0 - (run_end - n_rows), n_rows)
        release_memory()
    promised = sum(md.row_group(g).num_rows for g in only) if only else total
    if row0 - first != promised:  # the runs cover every row group (empty ones are skipped)
        raise promise_broken(shard, list(only or range(md.num_row_groups)), row0 - first, promised)


def promise_broken(shard: Shard, groups: Sequence[int], got: int, promised: int) -> ShardReadError:
    """A shard that yields more or fewer rows than its footer promises fails: pyarrow reads a
    row group whose pages lie past the end of the file (a file truncated after its footer was
    read, while it is scanned) as no rows at all, without an error."""
    where = f"row group {groups[0]}" if len(groups) == 1 else f"row groups {groups[0]}-{groups[-1]}"
    return ShardReadError(f"{shard.relpath}: {where} gave {got:,} rows, the footer promises {promised:,} "
                          f"(the file was truncated or changed while it was read)")


def check(shard: Shard, fields: Fields) -> None:
    arrow_plan(open_parquet(shard).schema_arrow, fields, shard.relpath)


def has_field(shard: Shard, name: str) -> bool:
    return resolve_arrow(open_parquet(shard).schema_arrow, name, shard.relpath) is not None


def row_group_sizes(shard: Shard) -> list[int]:
    """Bytes of each row group (for splitting a large shard into pieces); [] if unreadable."""
    try:
        md = open_parquet(shard).metadata
    except ContamscanError:
        return []  # unreadable: scanned whole, and fails there with its reason
    return [md.row_group(g).total_byte_size for g in range(md.num_row_groups)]


# --------------------------------------------------------------------------- splitting

# codecs ParquetWriter can write; others (LZO, legacy Hadoop LZ4) fall back to its default
_PARQUET_CODECS = {"uncompressed": "none", "snappy": "snappy", "gzip": "gzip",
                   "brotli": "brotli", "lz4": "lz4", "lz4_raw": "lz4", "zstd": "zstd"}


_DEFAULT_PARQUET_CODEC = "snappy"


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


def split(shard: Shard, flagged_rows: np.ndarray, clean: str | None, flagged: str | None) -> SplitCounts:
    pf = open_parquet(shard)
    md = pf.metadata
    codec = _parquet_codec(md)
    group_rows = max([md.row_group(g).num_rows for g in range(md.num_row_groups)] + [1])
    sides: list = [None, None]
    row0 = n_flagged = 0
    try:
        for i, out in enumerate((clean, flagged)):
            if out is not None:
                sides[i] = _ParquetOutput(out, pf.schema_arrow, codec, group_rows)
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            if rg.num_rows == 0:
                continue
            batch_rows = rows_per_batch(rg.num_rows, rg.total_byte_size, _BATCH_BYTES)
            try:
                batches = pf.iter_batches(batch_size=batch_rows, row_groups=[g], use_threads=False)
            except READ_ERRORS as e:
                raise shard_error(shard, e) from e
            group_end = row0 + rg.num_rows
            for batch in guarded(shard, batches):
                if row0 + batch.num_rows > group_end:
                    raise promise_broken(shard, [g], row0 + batch.num_rows - group_end + rg.num_rows, rg.num_rows)
                mask = flag_mask(flagged_rows, row0, batch.num_rows)
                route_batch(batch, mask, sides, lambda side, part: side.add(part))
                row0 += batch.num_rows
                n_flagged += int(mask.sum())
            del batches
            if row0 != group_end:
                raise promise_broken(shard, [g], row0 - group_end + rg.num_rows, rg.num_rows)
            release_memory()  # once per row group, as the readers do
        close_all(sides)
    finally:
        close_quietly(sides)
        pf.close()
    return SplitCounts(row0 - n_flagged, n_flagged)
