"""Tests for contamscan.discover and contamscan.formats: shard discovery and streaming record reading."""

from __future__ import annotations

import gzip
import json
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from contamscan.formats import jsonl as R
from contamscan.errors import ContamscanError, FieldMissingError, ShardReadError
from contamscan.discover import discover
from contamscan.errors import FieldTypeError
from contamscan.formats import check_fields, has_field, read_batches
from contamscan.model import BAD_REASONS, BadRecord, Fields, Shard
from conftest import ESSAYS


@pytest.fixture(scope="module")
def essays() -> list[dict]:
    if not os.path.exists(ESSAYS):
        pytest.skip("shared data not available")
    return pq.read_table(ESSAYS, columns=["id", "source", "title", "text"]).to_pylist()


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def touch(path, data: bytes = b"x") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def write_jsonl(path, records, *, newline="\n", opener=open) -> str:
    with opener(path, "wb") as f:
        for r in records:
            line = r if isinstance(r, (bytes, str)) else json.dumps(r, ensure_ascii=False)
            if isinstance(line, str):
                line = line.encode("utf-8")
            f.write(line + newline.encode())
    return str(path)


def shard_for(path) -> Shard:
    shards, skipped = discover([str(path)])
    assert len(shards) == 1, (shards, skipped)
    return shards[0]


def collect(shard: Shard, fields: Fields = Fields(), **kw) -> dict:
    texts, ids, labels, rows, bad = [], [], [], [], []
    n_records = raw = nbatches = 0
    for b in read_batches(shard, fields, **kw):
        nbatches += 1
        assert isinstance(b.texts, pa.LargeStringArray)
        assert b.texts.null_count == 0
        assert b.rows.dtype == np.int64 and len(b.rows) == len(b.texts)
        assert len(b.texts) + len(b.bad) == b.n_records
        if fields.id is not None:
            assert isinstance(b.ids, pa.LargeStringArray) and len(b.ids) == len(b.texts)
            ids += b.ids.to_pylist()
        else:
            assert b.ids is None
        if fields.label is not None:
            assert len(b.labels) == len(b.texts)
            labels += b.labels.to_pylist()
        texts += b.texts.to_pylist()
        rows += b.rows.tolist()
        bad += list(b.bad)
        n_records += b.n_records
        raw += b.raw_bytes
    return dict(texts=texts, ids=ids, labels=labels, rows=rows, bad=bad,
                n_records=n_records, raw=raw, nbatches=nbatches)


# ---------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------


def test_discover_directory_tree(tmp_path):
    root = tmp_path / "in"
    touch(root / "a.parquet")
    touch(root / "sub" / "b.jsonl")
    touch(root / "sub" / "c.jsonl.gz")
    touch(root / "sub" / "d.json.zst")
    touch(root / "sub" / "e.JSON")
    touch(root / "z" / "f.feather")
    touch(root / "z" / "g.arrow")
    touch(root / "z" / "h.ipc")
    touch(root / "notes.txt")
    touch(root / "data.csv")
    touch(root / ".hidden.jsonl")
    touch(root / ".git" / "x.jsonl")
    touch(root / "_SUCCESS")
    touch(root / ".part-0.parquet.crc")
    touch(root / "part-1.parquet.crc")
    touch(root / "with space é.jsonl")
    touch(root / "ünïcødé" / "日本.parquet")
    shards, skipped = discover([str(root)])
    rel = [s.relpath for s in shards]
    assert rel == sorted(rel)
    assert rel == [
        "a.parquet", "sub/b.jsonl", "sub/c.jsonl.gz", "sub/d.json.zst", "sub/e.JSON",
        "with space é.jsonl", "z/f.feather", "z/g.arrow", "z/h.ipc", "ünïcødé/日本.parquet",
    ]
    fmt = {s.relpath: s.format for s in shards}
    assert fmt["a.parquet"] == "parquet"
    assert fmt["sub/c.jsonl.gz"] == fmt["sub/d.json.zst"] == fmt["sub/e.JSON"] == "jsonl"
    assert fmt["z/f.feather"] == fmt["z/g.arrow"] == fmt["z/h.ipc"] == "arrow"
    for s in shards:
        assert os.path.isabs(s.path) and os.path.exists(s.path)
        assert s.size == 1
    assert sorted((os.path.basename(s.path), s.reason) for s in skipped) == [
        ("data.csv", "unknown extension"), ("notes.txt", "unknown extension"),
    ]
    # deterministic
    assert discover([str(root)]) == (shards, skipped)


def test_discover_files_and_globs(tmp_path, monkeypatch):
    root = tmp_path / "in"
    p1 = touch(root / "x" / "one.jsonl")
    touch(root / "x" / "deep" / "two.parquet")
    touch(root / "y" / "three.jsonl")
    touch(root / "y" / "readme.md")
    shards, skipped = discover([p1])
    assert [(s.relpath, s.path) for s in shards] == [("one.jsonl", p1)]

    shards, _ = discover([str(root / "**" / "*.jsonl")])
    assert [s.relpath for s in shards] == ["x/one.jsonl", "y/three.jsonl"]
    shards, _ = discover([str(root / "x" / "**")])
    assert [s.relpath for s in shards] == ["deep/two.parquet", "one.jsonl"]
    shards, _ = discover([str(root / "?")])  # glob matching directories walks them
    assert [s.relpath for s in shards] == ["x/deep/two.parquet", "x/one.jsonl", "y/three.jsonl"]
    shards, _ = discover([str(root / "[y]" / "*")])
    assert [s.relpath for s in shards] == ["y/three.jsonl"]

    monkeypatch.chdir(root / "y")
    shards, skipped = discover(["*"])
    assert [s.relpath for s in shards] == ["three.jsonl"]
    assert [s.reason for s in skipped] == ["unknown extension"]

    # explicit unknown extension: skipped, not an error
    shards, skipped = discover([str(root / "y" / "readme.md")])
    assert shards == [] and skipped[0].reason == "unknown extension"

    with pytest.raises(ContamscanError, match="does not exist"):
        discover([str(root / "nope.jsonl")])
    with pytest.raises(ContamscanError, match="no files match"):
        discover([str(root / "*.nothing")])


def test_discover_dedupe_and_symlinks(tmp_path):
    root = tmp_path / "in"
    real = touch(root / "a" / "data.jsonl")
    os.symlink(root / "a", root / "b")  # second route to the same directory
    os.symlink(real, root / "link.jsonl")  # second route to the same file
    os.symlink(root, root / "a" / "loop")  # a -> loop -> root: a cycle
    os.symlink(root / "missing.jsonl", root / "broken.jsonl")
    shards, skipped = discover([str(root), real, str(root / "a")])
    assert len(shards) == 1 and shards[0].relpath == "a/data.jsonl"
    reasons = [(os.path.basename(s.path), s.reason) for s in skipped]
    assert reasons.count(("loop", "symlink loop")) == 1
    assert ("broken.jsonl", "broken symlink") in reasons


def test_discover_exclude_output_dir(tmp_path):
    root = tmp_path / "in"
    touch(root / "a.jsonl")
    out = root / "out"
    touch(out / "report.jsonl")
    touch(out / "deep" / "matches.parquet")
    shards, skipped = discover([str(root)], exclude=[str(out)])
    assert [s.relpath for s in shards] == ["a.jsonl"]
    assert [(s.path, s.reason) for s in skipped] == [(str(out), "inside output directory")]
    # a file named directly under the output dir, or via a symlinked route, is excluded too
    os.symlink(out, tmp_path / "alias")
    shards, skipped = discover(
        [str(out / "report.jsonl"), str(tmp_path / "alias")], exclude=[str(out)]
    )
    assert shards == []
    assert {s.reason for s in skipped} == {"inside output directory"}


# ---------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["d.parquet", "d.jsonl", "d.json", "d.jsonl.gz", "d.jsonl.zst", "d.arrow",
             "d.feather", "stream.arrow"]
)
def test_each_format_roundtrip(tmp_path, essays, name):
    recs = essays[:200]
    path = str(tmp_path / name)
    table = pa.Table.from_pylist(recs)
    if name.endswith(".parquet"):
        pq.write_table(table, path, row_group_size=50)
    elif name.endswith((".jsonl", ".json")):
        write_jsonl(path, recs)
    elif name.endswith(".gz"):
        write_jsonl(path, recs, opener=gzip.open)
    elif name.endswith(".zst"):
        write_jsonl(path, recs, opener=lambda p, m: pa.CompressedOutputStream(p, "zstd"))
    elif name == "stream.arrow":
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            for b in table.to_batches(max_chunksize=64):
                w.write_batch(b)
    elif name == "d.arrow":
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            for b in table.to_batches(max_chunksize=64):
                w.write_batch(b)
    else:
        feather.write_feather(table, path, chunksize=64)
    shard = shard_for(path)
    fields = Fields(text="text", id="id", label="source")
    check_fields(shard, fields)
    got = collect(shard, fields, batch_bytes=40_000)
    assert got["texts"] == [r["text"] for r in recs]
    assert got["ids"] == [r["id"] for r in recs]
    assert got["labels"] == [r["source"] for r in recs]
    assert got["rows"] == list(range(len(recs)))
    assert got["bad"] == [] and got["n_records"] == len(recs)
    assert got["raw"] == shard.size
    assert got["nbatches"] > 1  # batch_bytes is honoured


def test_dotted_paths_parquet_and_jsonl(tmp_path, essays):
    recs = [
        {"meta": {"model": f"m{i % 3}", "doc": {"text": r["text"]}}, "num": i}
        for i, r in enumerate(essays[:30])
    ]
    fields = Fields(text="meta.doc.text", id="num", label="meta.model")
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "n.parquet")
    write_jsonl(tmp_path / "n.jsonl", recs)
    for name in ("n.parquet", "n.jsonl"):
        shard = shard_for(tmp_path / name)
        check_fields(shard, fields)
        got = collect(shard, fields)
        assert got["texts"] == [r["text"] for r in essays[:30]]
        assert got["ids"] == [str(i) for i in range(30)]  # int ids cast to string
        assert got["labels"] == [f"m{i % 3}" for i in range(30)]
        with pytest.raises(FieldMissingError) as ei:
            check_fields(shard, Fields(text="meta.nope"))
        assert "meta.model" in ei.value.available and "num" in ei.value.available


def test_literal_dotted_key_in_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"a.b": "literal", "a": {"b": "nested"}}])
    shard = shard_for(path)
    check_fields(shard, Fields(text="a.b"))
    assert collect(shard, Fields(text="a.b"))["texts"] == ["literal"]


# ---------------------------------------------------------------------------------------
# bad records and JSON Lines details
# ---------------------------------------------------------------------------------------


def test_every_bad_record_reason(tmp_path, essays):
    t = essays[0]["text"]
    lines = [
        json.dumps({"text": t, "id": 1}).encode(),         # row 0 ok
        b'{"text": "unterminated',                           # row 1 malformed_json
        json.dumps({"body": t}).encode(),                    # row 2 text_missing
        b'{"text": null}',                                   # row 3 text_null
        b'{"text": 42}',                                     # row 4 text_not_string number
        b'{"text": ["a"]}',                                  # row 5 list
        b'{"text": {"a": 1}}',                               # row 6 object
        b'{"text": true}',                                   # row 7 boolean
        b'{"text": "bad \xff\xfe bytes"}',                   # row 8 invalid_utf8
        b'["not", "an", "object"]',                          # row 9 not_an_object
        b'"just a string"',                                  # row 10 not_an_object
        b'{"text": "lone \\ud800 surrogate"}',               # row 11 invalid_utf8
        b'{"text": "a"} {"text": "b"}',                      # row 12 two objects: malformed
        b'{"text": "x", "n": Inf}',                          # row 13 not JSON: malformed
        json.dumps({"text": "fine", "id": "z"}).encode(),    # row 14 ok
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    shard = shard_for(path)
    got = collect(shard, Fields(id="id"))
    assert got["texts"] == [t, "fine"] and got["rows"] == [0, 14] and got["ids"] == ["1", "z"]
    assert [(b.row, b.line, b.reason) for b in got["bad"]] == [
        (1, 2, "malformed_json"), (2, 3, "text_missing"), (3, 4, "text_null"),
        (4, 5, "text_not_string"), (5, 6, "text_not_string"), (6, 7, "text_not_string"),
        (7, 8, "text_not_string"), (8, 9, "invalid_utf8"), (9, 10, "not_an_object"),
        (10, 11, "not_an_object"), (11, 12, "invalid_utf8"), (12, 13, "malformed_json"),
        (13, 14, "malformed_json"),
    ]
    details = {b.row: b.detail for b in got["bad"]}
    assert details[4] == "number" and details[5] == "list" and details[6] == "object"
    assert details[7] == "boolean" and details[9] == "list" and details[10] == "string"
    assert got["n_records"] == len(lines)
    # the one reason only a selector with a list step gives: no list item it picks
    chat = write_jsonl(tmp_path / "chat.jsonl", [
        json.dumps({"messages": [{"role": "assistant", "content": t}]}).encode(),
        json.dumps({"messages": [{"role": "user", "content": t}]}).encode(),  # row 1 text_no_match
    ])
    turns = collect(shard_for(chat), Fields(text="messages[role=assistant].content"))
    assert turns["rows"] == [0] and [(b.row, b.reason) for b in turns["bad"]] == [(1, "text_no_match")]
    assert set(BAD_REASONS) == {b.reason for b in got["bad"] + turns["bad"]}

    with pytest.raises(ContamscanError, match=r"bad\.jsonl: line 2: malformed_json"):
        collect(shard, Fields(), strict=True)


def test_parquet_null_text_and_strict(tmp_path, essays):
    texts = [essays[0]["text"], None, essays[1]["text"], None]
    pq.write_table(pa.table({"text": texts, "id": [10, 11, 12, 13]}), tmp_path / "n.parquet")
    shard = shard_for(tmp_path / "n.parquet")
    got = collect(shard, Fields(id="id"))
    assert got["texts"] == [texts[0], texts[2]] and got["ids"] == ["10", "12"]
    assert got["rows"] == [0, 2]
    assert got["bad"] == [BadRecord(1, None, "text_null", "null"),
                          BadRecord(3, None, "text_null", "null")]
    with pytest.raises(ContamscanError, match="row 1: text_null"):
        collect(shard, strict=True)


def test_bom_crlf_u2028_last_line_blank_lines(tmp_path, essays):
    t0 = essays[2]["text"]
    weird = "before\u2028after\u2029 and \r inside"
    body = (
        "\ufeff" + json.dumps({"text": t0}) + "\r\n"
        + "\r\n"
        + "   \n"
        + json.dumps({"text": weird}, ensure_ascii=False) + "\r\n"
        + "\n"
        + json.dumps({"text": "no newline at end"})
    ).encode("utf-8")
    shard = shard_for(touch(tmp_path / "w.jsonl", body))
    check_fields(shard, Fields())
    got = collect(shard)
    assert got["texts"] == [t0, weird, "no newline at end"]
    assert got["rows"] == [0, 1, 2]  # blank lines consume no row index
    assert got["bad"] == [] and got["n_records"] == 3 and got["raw"] == shard.size


def test_line_numbers_count_blank_lines(tmp_path):
    path = touch(tmp_path / "l.jsonl", b'\n{"text":"a"}\n\n\n{"x":1}\n')
    got = collect(shard_for(path))
    assert got["bad"] == [BadRecord(1, 5, "text_missing", "no field 'text'")]


def test_empty_and_blank_files(tmp_path):
    for name, data in [("e.jsonl", b""), ("b.jsonl", b"\n \n\r\n"), ("bom.jsonl", b"\xef\xbb\xbf")]:
        shard = shard_for(touch(tmp_path / name, data))
        check_fields(shard, Fields(text="anything"))  # nothing to check: passes
        got = collect(shard)
        assert got["texts"] == [] and got["bad"] == [] and got["n_records"] == 0
        assert got["raw"] == shard.size
    empty_pq = tmp_path / "e.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty_pq)
    assert collect(shard_for(empty_pq))["n_records"] == 0


def test_large_jsonl_streams_with_stable_rows(tmp_path, essays):
    rng = random.Random(7)
    lines, expect_good, n_nonblank = [], [], 0
    for i in range(1500):
        r = essays[i % len(essays)]
        k = rng.random()
        if k < 0.03:
            lines.append(b"")  # blank: not a record
            continue
        if k < 0.05:
            lines.append(b'{"text": broken')
        elif k < 0.06:
            lines.append(json.dumps({"text": None, "id": i}).encode())
        else:
            lines.append(json.dumps({"text": r["text"], "id": i}, ensure_ascii=False).encode())
            expect_good.append((n_nonblank, r["text"], str(i)))
        n_nonblank += 1
    path = write_jsonl(tmp_path / "big.jsonl", lines)
    shard = shard_for(path)
    got = collect(shard, Fields(id="id"), batch_bytes=64 << 10)
    assert got["nbatches"] > 10
    assert list(zip(got["rows"], got["texts"], got["ids"])) == expect_good
    assert got["n_records"] == n_nonblank == len(got["texts"]) + len(got["bad"])
    assert got["raw"] == shard.size
    seen = sorted(got["rows"] + [b.row for b in got["bad"]])
    assert seen == list(range(n_nonblank))
    # the fast path and the reference per-line path agree exactly
    slow = list(R.read(shard, Fields(id="id"), 64 << 10, False, _force_slow=True))
    fast = list(read_batches(shard, Fields(id="id"), batch_bytes=64 << 10))
    assert _flatten(fast) == _flatten(slow)


def test_large_parquet_multi_batches(tmp_path, essays):
    table = pa.Table.from_pylist(essays)
    pq.write_table(table, tmp_path / "e.parquet", row_group_size=100)
    shard = shard_for(tmp_path / "e.parquet")
    got = collect(shard, Fields(id="id"), batch_bytes=100_000)
    assert got["nbatches"] > 5
    assert got["texts"] == table.column("text").to_pylist()
    assert got["rows"] == list(range(len(essays)))
    assert got["raw"] == shard.size


def _flatten(batches):
    out = []
    for b in batches:
        out.append((b.texts.to_pylist(), None if b.ids is None else b.ids.to_pylist(),
                    None if b.labels is None else b.labels.to_pylist(),
                    b.rows.tolist(), b.bad, b.n_records, b.raw_bytes))
    return out


def test_fast_path_matches_reference_on_mutations(tmp_path, essays):
    """Differential test: lines pyarrow.json and json.loads might disagree on."""
    rng = random.Random(3)
    base = [json.dumps({"id": i, "text": essays[i]["text"][:300], "meta": {"m": "x"}},
                       ensure_ascii=False) for i in range(40)]
    mutations = [
        lambda s: s.replace('"meta"', '"n": Inf, "meta"'),
        lambda s: s.replace('"meta"', '"n": -Inf, "meta"'),
        lambda s: s.replace('"meta"', '"n": -NaN, "meta"'),
        lambda s: s.replace('"meta"', '"n": NaN, "meta"'),
        lambda s: s.replace('"meta"', '"n": Infinity, "meta"'),
        lambda s: s.replace('"meta"', '"n": 1e999, "meta"'),
        lambda s: s.replace('"meta"', '"text": "dup", "meta"'),
        lambda s: s + " " + s,
        lambda s: s.replace(", ", ",\n", 1),
        lambda s: s.replace('"id": ', '"id": "s') .replace(', "text"', '", "text"', 1),
        lambda s: s.replace('"meta": {"m": "x"}', '"meta": "\\udc00"'),
        lambda s: s.replace('"text": "', '"text": "\\ud83d\\ude00 \\u0000 \\/ '),
        lambda s: s.replace('"text"', '"txt"'),
        lambda s: s.replace('{"id"', '  {"id"'),
        lambda s: s + "\r",
        lambda s: s + " ",
        lambda s: s.replace('"text": "', '"text": "Chapter: Infinite, [Inf '),
        lambda s: s.replace('"id": ', '"id": 1.5, "x": '),
        lambda s: s.replace('"id": ', '"id": true, "x": '),
        lambda s: s[:-1],
    ]
    lines = []
    for i in range(600):
        s = base[i % len(base)]
        if rng.random() < 0.3:
            s = rng.choice(mutations)(s)
        lines.append(s.encode("utf-8"))
    path = write_jsonl(tmp_path / "mut.jsonl", lines)
    shard = shard_for(path)
    for fields in (Fields(id="id"), Fields(text="text", label="meta.m")):
        for bb in (4 << 10, 1 << 20):
            fast = _flatten(read_batches(shard, fields, batch_bytes=bb))
            slow = _flatten(R.read(shard, fields, bb, False, _force_slow=True))
            assert fast == slow


def test_id_types_adapt_across_blocks(tmp_path, essays):
    recs = [{"id": i if i < 300 else f"s{i}", "text": essays[i % 50]["text"]} for i in range(600)]
    recs[450]["id"] = 7.5
    shard = shard_for(write_jsonl(tmp_path / "ids.jsonl", recs))
    got = collect(shard, Fields(id="id"), batch_bytes=20_000)
    expect = [str(r["id"]) for r in recs]
    assert got["ids"] == expect


# ---------------------------------------------------------------------------------------
# failures of the file itself, missing fields
# ---------------------------------------------------------------------------------------


def _truncate(path, keep=0.5):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["t.jsonl.gz", "t.jsonl.zst"])
def test_truncated_compressed_raises(tmp_path, essays, name):
    path = str(tmp_path / name)
    if name.endswith(".gz"):
        write_jsonl(path, essays, opener=gzip.open)
    else:
        write_jsonl(path, essays, opener=lambda p, m: pa.CompressedOutputStream(p, "zstd"))
    _truncate(path)
    shard = shard_for(path)
    with pytest.raises(ShardReadError, match=name.replace(".", r"\.")):
        collect(shard, batch_bytes=64 << 10)


def test_corrupt_parquet_and_arrow(tmp_path, essays):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(essays[:50]), path)
    data = path.read_bytes()
    path.write_bytes(data[:-12] + b"\0" * 12)  # smash the footer
    shard = shard_for(path)
    with pytest.raises(ShardReadError, match=r"c\.parquet: "):
        check_fields(shard, Fields())
    with pytest.raises(ShardReadError):
        collect(shard)
    bad_arrow = shard_for(touch(tmp_path / "x.arrow", b"definitely not arrow" * 10))
    with pytest.raises(ShardReadError, match="x.arrow"):
        check_fields(bad_arrow, Fields())
    with pytest.raises(ShardReadError):
        collect(bad_arrow)


def test_unreadable_file_raises_shard_error(tmp_path):
    path = touch(tmp_path / "gone.jsonl", b'{"text":"a"}\n')
    shard = shard_for(path)
    os.remove(path)
    with pytest.raises(ShardReadError, match="gone.jsonl"):
        collect(shard)
    with pytest.raises(ShardReadError):
        check_fields(shard, Fields())


def test_missing_text_field_names_present_fields(tmp_path, essays):
    recs = [{k: r[k] for k in ("id", "title", "text")} for r in essays[:5]]
    write_jsonl(tmp_path / "m.jsonl", recs)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "m.parquet")
    feather.write_feather(pa.Table.from_pylist(recs), tmp_path / "m.feather")
    for name in ("m.jsonl", "m.parquet", "m.feather"):
        shard = shard_for(tmp_path / name)
        with pytest.raises(FieldMissingError) as ei:
            check_fields(shard, Fields(text="content"))
        assert ei.value.field == "content" and ei.value.path == name
        assert ei.value.available == ["id", "title", "text"]
        assert "fields present: id, title, text" in str(ei.value)
        with pytest.raises(FieldMissingError):
            check_fields(shard, Fields(id="doc_id"))
        with pytest.raises(FieldMissingError):
            check_fields(shard, Fields(label="model"))
    with pytest.raises(FieldMissingError):  # Parquet/Arrow cannot read a missing column
        collect(shard_for(tmp_path / "m.parquet"), Fields(text="content"))


def test_jsonl_field_absent_from_first_records_is_missing(tmp_path, essays):
    recs = [{"body": r["text"]} for r in essays[:120]] + [{"text": "late"}]
    shard = shard_for(write_jsonl(tmp_path / "late.jsonl", recs))
    with pytest.raises(FieldMissingError):
        check_fields(shard, Fields())
    # malformed lines before the first valid objects do not hide the field
    shard = shard_for(write_jsonl(tmp_path / "ok.jsonl", [b"{oops", {"text": "fine"}]))
    check_fields(shard, Fields())


def test_non_string_text_column(tmp_path):
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "i.parquet")
    shard = shard_for(tmp_path / "i.parquet")
    with pytest.raises(FieldTypeError, match="not a string column.*int64"):
        check_fields(shard, Fields())
    with pytest.raises(ContamscanError):
        collect(shard)
    # dictionary-encoded and large strings are fine
    table = pa.table({"text": pa.array(["a", "b", "a"]).dictionary_encode(),
                      "t2": pa.array(["x", None, "z"], pa.large_string())})
    feather.write_feather(table, tmp_path / "d.feather")
    shard = shard_for(tmp_path / "d.feather")
    check_fields(shard, Fields())
    assert collect(shard)["texts"] == ["a", "b", "a"]
    got = collect(shard, Fields(text="t2"))
    assert got["texts"] == ["x", "z"] and got["bad"][0].reason == "text_null"


def test_fast_path_suspect_lines_are_rechecked(tmp_path, essays, monkeypatch):
    """Blocks that take the pyarrow fast path still report exactly what json.loads says
    about null / missing text and the non-JSON tokens pyarrow accepts (Inf, -NaN)."""
    used = []
    real_fast = R._fast_block
    monkeypatch.setattr(R, "_fast_block", lambda *a: used.append(real_fast(*a)) or used[-1])
    lines = []
    for i in range(200):
        rec = {"id": i, "text": essays[i]["text"]}
        s = json.dumps(rec, ensure_ascii=False)
        if i % 17 == 3:
            s = s.replace('"id"', '"n": Inf, "id"')
        elif i % 17 == 5:
            s = s.replace('"id"', '"n": -NaN, "id"')
        elif i % 17 == 7:
            s = json.dumps({"id": i, "text": None})
        elif i % 17 == 9:
            s = json.dumps({"id": i, "body": "x"})
        elif i % 17 == 11:
            s = s.replace('"text": "', '"text": "Note: Infinity, [Inf, ')
        lines.append(s)
    for nl in ("\n", "\r\n"):
        shard = shard_for(write_jsonl(tmp_path / f"s{len(nl)}.jsonl", lines, newline=nl))
        used.clear()
        fast = _flatten(read_batches(shard, Fields(id="id"), batch_bytes=50_000))
        # pyarrow path taken (all but the first block, which learns that ids are ints)
        assert len(used) > 2 and sum(r is not None for r in used) == len(used) - 1
        slow = _flatten(R.read(shard, Fields(id="id"), 50_000, False, _force_slow=True))
        assert fast == slow
        reasons = sorted({b.reason for batch in fast for b in batch[4]})
        assert reasons == ["malformed_json", "text_missing", "text_null"]


def test_has_field(tmp_path, essays):
    recs = [{"id": r["id"], "meta": {"m": "x"}, "text": r["text"]} for r in essays[:3]]
    write_jsonl(tmp_path / "h.jsonl", recs)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "h.parquet")
    feather.write_feather(pa.Table.from_pylist(recs), tmp_path / "h.arrow")
    for name in ("h.jsonl", "h.parquet", "h.arrow"):
        shard = shard_for(tmp_path / name)
        assert has_field(shard, "id") and has_field(shard, "meta.m")
        assert not has_field(shard, "doc_id") and not has_field(shard, "meta.z")
    assert not has_field(shard_for(touch(tmp_path / "e.jsonl", b"")), "id")
