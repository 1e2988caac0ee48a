"""Tests for contamscan.formats.split_shard: splitting a shard into clean and flagged copies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contamscan.formats import arrow_ipc, jsonl, parquet
from contamscan.errors import ContamscanError, ShardReadError
from contamscan.discover import discover
from contamscan.formats import read_batches
from contamscan.formats.jsonl import _BOM
from contamscan.model import Fields, Shard
from contamscan.formats import SplitCounts, split_shard
from conftest import AI, ESSAYS


@pytest.fixture(scope="module")
def ai_rows() -> pa.Table:
    """The first 120 real model outputs (id, model, prompt_index, prompt, text)."""
    if not AI.exists():
        pytest.skip("shared data not available")
    return pa.Table.from_batches([next(pq.ParquetFile(AI).iter_batches(batch_size=120))])


@pytest.fixture(scope="module")
def essays() -> list[dict]:
    if not ESSAYS.exists():
        pytest.skip("shared data not available")
    batch = next(pq.ParquetFile(ESSAYS).iter_batches(batch_size=40))
    return batch.to_pylist()


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def shard_at(root: Path, relpath: str) -> Shard:
    shards, _ = discover([str(root)])
    (shard,) = [s for s in shards if s.relpath == relpath]
    return shard


def split(shard: Shard, flagged, tmp_path: Path) -> tuple[SplitCounts, Path, Path]:
    clean, flagged_root = tmp_path / "clean", tmp_path / "flagged"
    counts = split_shard(shard, np.array(flagged, dtype=np.int64), clean, flagged_root)
    return counts, clean / shard.relpath, flagged_root / shard.relpath


def files_under(*roots: Path) -> list[str]:
    return sorted(str(p.relative_to(r)) for r in roots if r.exists()
                  for p in r.rglob("*") if p.is_file())


def read_all(path: Path) -> dict:
    """Texts, bad rows and record count of a shard, read back by the readers."""
    shard = shard_at(path.parent, path.name)
    texts, bad, n = [], [], 0
    for b in read_batches(shard, Fields()):
        texts += b.texts.to_pylist()
        bad += [r.reason for r in b.bad]
        n += b.n_records
    return {"texts": texts, "bad": bad, "n": n}


def lines_of(data: bytes) -> list[bytes]:
    """Lines split on b"\\n" only, each with its newline (the last may have none)."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def decompressed(path: Path) -> bytes:
    with pa.input_stream(str(path)) as f:  # compression detected from the extension
        return f.read()


def expected_split(table: pa.Table, flagged) -> tuple[pa.Table, pa.Table]:
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[list(flagged)] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------


def with_metadata(table: pa.Table) -> pa.Table:
    """Schema key-value metadata (as HF datasets writes it) and field metadata on text."""
    schema = table.schema
    i = schema.get_field_index("text")
    schema = schema.set(i, schema.field(i).with_metadata({b"description": b"model output"}))
    schema = schema.with_metadata({b"huggingface": json.dumps({"info": {"features": {}}}).encode(),
                                   b"origin": b"slop_score"})
    return table.cast(schema)


@pytest.mark.parametrize("codec", ["zstd", "snappy"])
def test_parquet_split_keeps_schema_codec_and_row_groups(tmp_path, ai_rows, codec):
    table = with_metadata(ai_rows)
    src = tmp_path / "in" / "sub" / "part-0.parquet"
    src.parent.mkdir(parents=True)
    pq.write_table(table, src, compression=codec, row_group_size=32)  # 4 row groups
    flagged = [0, 5, 31, 32, 33, 90, 119]

    counts, clean, flagged_out = split(shard_at(tmp_path / "in", "sub/part-0.parquet"),
                                       flagged, tmp_path)

    assert counts == SplitCounts(clean=120 - 7, flagged=7)
    assert counts.clean + counts.flagged == table.num_rows
    want_clean, want_flagged = expected_split(table, flagged)
    for out, want in ((clean, want_clean), (flagged_out, want_flagged)):
        pf = pq.ParquetFile(out)
        assert pf.schema_arrow.equals(table.schema, check_metadata=True)
        assert pf.schema_arrow.metadata[b"origin"] == b"slop_score"
        assert pf.schema_arrow.field("text").metadata == {b"description": b"model output"}
        assert pf.metadata.row_group(0).column(0).compression == codec.upper()
        assert pf.read().equals(want)
        assert read_all(out)["texts"] == want["text"].to_pylist()
    # clean row groups keep the input's size (32 rows), the last one takes the rest
    md = pq.ParquetFile(clean).metadata
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == [32, 32, 32, 17]
    assert pq.ParquetFile(flagged_out).metadata.num_row_groups == 1
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == ["sub/part-0.parquet"] * 2


def test_parquet_row_groups_flush_early_when_large(tmp_path, ai_rows, monkeypatch):
    monkeypatch.setattr(parquet, "_BATCH_BYTES", 16 << 10)
    monkeypatch.setattr(parquet, "_GROUP_BYTES", 64 << 10)  # ~10 real outputs
    pq.write_table(ai_rows, tmp_path / "in.parquet", row_group_size=120)
    counts, clean, _ = split(shard_at(tmp_path, "in.parquet"), [3], tmp_path)
    md = pq.ParquetFile(clean).metadata
    assert md.num_row_groups > 1 and md.num_rows == counts.clean == 119
    assert pq.read_table(clean).equals(expected_split(ai_rows, [3])[0])


# ---------------------------------------------------------------------------------------
# Arrow IPC
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, compression", [("file", "zstd"), ("file", None), ("stream", None),
                                               ("stream", "lz4")])
def test_arrow_split_keeps_flavour_schema_and_compression(tmp_path, ai_rows, kind, compression):
    table = with_metadata(ai_rows)
    src = tmp_path / "in" / "data.arrow"
    src.parent.mkdir()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    if kind == "file":
        writer = pa.ipc.new_file(src, table.schema, options=options, metadata={b"footer": b"kept"})
    else:
        writer = pa.ipc.new_stream(src, table.schema, options=options)
    with writer:
        for i, batch in enumerate(table.to_batches(max_chunksize=25)):
            writer.write_batch(batch, custom_metadata={b"batch": str(i).encode()})
    flagged = [1, 24, 25, 26, 100]

    counts, clean, flagged_out = split(shard_at(tmp_path / "in", "data.arrow"), flagged, tmp_path)

    assert counts == SplitCounts(clean=115, flagged=5)
    want_clean, want_flagged = expected_split(table, flagged)
    for out, want in ((clean, want_clean), (flagged_out, want_flagged)):
        if kind == "file":
            reader = pa.ipc.open_file(out)
            assert reader.metadata == {b"footer": b"kept"}
            batch_meta = [reader.get_batch_with_custom_metadata(i)[1]
                          for i in range(reader.num_record_batches)]
        else:
            with pytest.raises(pa.ArrowInvalid):
                pa.ipc.open_file(out)
            reader = pa.ipc.open_stream(out)
            batch_meta = [m for _, m in reader.iter_batches_with_custom_metadata()]
            reader = pa.ipc.open_stream(out)
        assert reader.schema.equals(table.schema, check_metadata=True)
        assert reader.read_all().equals(want)
        assert all(m is not None and m[b"batch"] for m in batch_meta)
        assert arrow_ipc._ipc_compression(str(out), kind) == compression
        assert read_all(out)["texts"] == want["text"].to_pylist()
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == ["data.arrow"] * 2


# ---------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------


def nasty_jsonl(essays: list[dict]) -> tuple[bytes, list[bytes]]:
    """(file bytes, its lines): real essays with a BOM, CRLF lines, blank lines, a malformed
    line, U+2028 inside a string and a last line without a newline."""
    lines = []
    for i, e in enumerate(essays[:12]):
        rec = {"id": e["id"], "source": e["source"], "text": e["text"]}
        if i == 4:
            rec["text"] = e["text"][:200] + "\u2028" + e["text"][200:400]
        end = b"\r\n" if i % 3 == 0 else b"\n"
        lines.append(json.dumps(rec, ensure_ascii=False).encode() + end)
        if i == 2:
            lines.append(b"\n")  # empty line
        if i == 6:
            lines.append(b" \t \r\n")  # whitespace-only line
        if i == 8:
            lines.append(b'{"id": "broken", "text": "unterminated\n')  # malformed: a record
    lines[-1] = lines[-1].rstrip(b"\r\n")
    return _BOM + b"".join(lines), lines


def write_compressed(path: Path, data: bytes) -> None:
    compression = {".gz": "gzip", ".zst": "zstd"}.get(path.suffix)
    with pa.OSFile(str(path), "w") as raw:
        if compression:
            with pa.CompressedOutputStream(raw, compression) as out:
                out.write(data)
        else:
            raw.write(data)


MAGIC = {".gz": b"\x1f\x8b", ".zst": b"\x28\xb5\x2f\xfd", ".jsonl": _BOM}


@pytest.mark.parametrize("name, flagged", [
    ("docs.jsonl", [0, 3, 9, 12]),  # 9 is the malformed line, 12 the last line (no newline)
    ("docs.jsonl.gz", [1, 4]),  # 4 holds the U+2028
    ("docs.jsonl.zst", [0, 2, 12]),
])
def test_jsonl_split_is_byte_exact(tmp_path, essays, name, flagged):
    data, lines = nasty_jsonl(essays)
    src = tmp_path / "in" / name
    src.parent.mkdir()
    write_compressed(src, data)
    records = [i for i, line in enumerate(lines) if line.strip(b" \t\r\n")]
    assert len(records) == 13  # 12 essays + the malformed line; blank lines are no records

    counts, clean, flagged_out = split(shard_at(tmp_path / "in", name), flagged, tmp_path)

    assert counts == SplitCounts(clean=13 - len(flagged), flagged=len(flagged))
    flagged_lines = {records[r] for r in flagged}
    for out in (clean, flagged_out):
        assert out.read_bytes().startswith(MAGIC[src.suffix])  # compression kept
    clean_data, flagged_data = decompressed(clean), decompressed(flagged_out)
    # both outputs carry the BOM; otherwise they are the input's lines, unchanged
    assert clean_data == _BOM + b"".join(l for i, l in enumerate(lines) if i not in flagged_lines)
    assert flagged_data == _BOM + b"".join(lines[i] for i in sorted(flagged_lines))
    # interleaving the outputs back by record order gives the input's lines exactly
    clean_iter = iter(lines_of(clean_data[len(_BOM):]))
    flagged_iter = iter(lines_of(flagged_data[len(_BOM):]))
    rebuilt = [next(flagged_iter if i in flagged_lines else clean_iter) for i in range(len(lines))]
    assert rebuilt == lines == lines_of(data[len(_BOM):])
    assert next(clean_iter, None) is None and next(flagged_iter, None) is None
    assert not lines[-1].endswith(b"\n")
    # the readers see exactly the records of each side (the malformed one as a bad record)
    texts = {i: json.loads(lines[i])["text"] for i in records if i != records[9]}
    for out, side in ((clean, [r for r in range(13) if r not in flagged]), (flagged_out, flagged)):
        got = read_all(out)
        assert got["n"] == len(side)
        assert got["texts"] == [texts[records[r]] for r in side if records[r] in texts]
        assert got["bad"] == (["malformed_json"] if 9 in side else [])
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == [name] * 2


def test_jsonl_small_blocks_and_long_lines(tmp_path, essays, monkeypatch):
    """Lines longer than a read block, and blocks ending mid-line, change nothing."""
    monkeypatch.setattr(jsonl, "_JSONL_BLOCK", 97)
    data, lines = nasty_jsonl(essays)
    write_compressed(tmp_path / "in.jsonl.gz", data)
    counts, clean, flagged_out = split(shard_at(tmp_path, "in.jsonl.gz"), [5, 12], tmp_path)
    assert counts == SplitCounts(11, 2)
    records = [i for i, line in enumerate(lines) if line.strip(b" \t\r\n")]
    assert decompressed(flagged_out) == _BOM + lines[records[5]] + lines[records[12]]
    assert len(decompressed(clean)) + len(decompressed(flagged_out)) == len(data) + len(_BOM)


# ---------------------------------------------------------------------------------------
# empty sides, one side only, errors
# ---------------------------------------------------------------------------------------


def write_shard(tmp_path: Path, name: str, table: pa.Table) -> Shard:
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    elif name.endswith(".arrow"):
        with pa.ipc.new_stream(path, table.schema) as w:
            w.write_table(table)
    else:
        data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in table.to_pylist())
        write_compressed(path, data)
    return shard_at(tmp_path / "in", name)


@pytest.mark.parametrize("name", ["a.parquet", "b.arrow", "c.jsonl", "d.jsonl.gz", "e.jsonl.zst"])
def test_side_without_records_is_a_valid_empty_file(tmp_path, ai_rows, name):
    table = ai_rows.slice(0, 10)
    shard = write_shard(tmp_path, name, table)
    counts, clean, flagged_out = split(shard, [], tmp_path)
    assert counts == SplitCounts(10, 0)
    assert read_all(flagged_out) == {"texts": [], "bad": [], "n": 0}
    assert read_all(clean)["texts"] == table["text"].to_pylist()
    if name.endswith(".parquet"):
        assert pq.read_schema(flagged_out).equals(table.schema, check_metadata=True)
    counts, clean, flagged_out = split(shard, list(range(10)), tmp_path)
    assert counts == SplitCounts(0, 10)
    assert read_all(clean)["n"] == 0 and read_all(flagged_out)["n"] == 10


def test_one_side_only(tmp_path, ai_rows):
    shard = write_shard(tmp_path, "x.jsonl", ai_rows.slice(0, 5))
    counts = split_shard(shard, np.array([2]), None, tmp_path / "flagged")
    assert counts == SplitCounts(4, 1)
    assert files_under(tmp_path / "flagged") == ["x.jsonl"] and not (tmp_path / "clean").exists()
    assert read_all(tmp_path / "flagged" / "x.jsonl")["texts"] == [ai_rows["text"][2].as_py()]


def test_truncated_gzip_raises_and_leaves_no_output(tmp_path, essays, monkeypatch):
    monkeypatch.setattr(jsonl, "_JSONL_BLOCK", 4096)  # some blocks are written before the error
    data = b"".join(json.dumps(e).encode() + b"\n" for e in essays)
    (tmp_path / "in").mkdir()
    write_compressed(tmp_path / "in" / "t.jsonl.gz", data)
    whole = (tmp_path / "in" / "t.jsonl.gz").read_bytes()
    (tmp_path / "in" / "t.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ShardReadError, match="t.jsonl.gz"):
        split(shard_at(tmp_path / "in", "t.jsonl.gz"), [1], tmp_path)
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == []


def test_corrupt_parquet_raises_and_leaves_no_output(tmp_path, ai_rows):
    shard = write_shard(tmp_path, "bad.parquet", ai_rows.slice(0, 5))
    Path(shard.path).write_bytes(Path(shard.path).read_bytes()[:-100])
    with pytest.raises(ShardReadError, match="bad.parquet"):
        split(shard, [], tmp_path)
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == []


@pytest.mark.parametrize("flagged", [[5], [3, 1], [1, 1], [-1]])
def test_bad_flagged_rows_raise_and_leave_no_output(tmp_path, ai_rows, flagged):
    shard = write_shard(tmp_path, "x.jsonl.zst", ai_rows.slice(0, 5))
    with pytest.raises(ValueError):
        split(shard, flagged, tmp_path)
    assert files_under(tmp_path / "clean", tmp_path / "flagged") == []


def test_refuses_to_overwrite_the_input(tmp_path, ai_rows):
    shard = write_shard(tmp_path, "x.parquet", ai_rows.slice(0, 5))
    before = Path(shard.path).read_bytes()
    with pytest.raises(ContamscanError, match="input itself"):
        split_shard(shard, np.array([0]), tmp_path / "in", None)
    assert Path(shard.path).read_bytes() == before
    assert sorted(os.listdir(tmp_path / "in")) == ["x.parquet"]
