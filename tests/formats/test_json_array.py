"""A .json file holding one JSON array of records (formats/json_array.py): the same records
as JSON Lines, pretty-printed or not, compressed or not, streamed in batches, bad elements
counted, a broken array a failed read; split keeps the elements byte for byte."""

import gzip
import json
import os

import pytest

from contamscan.errors import FieldMissingError, ShardReadError
from contamscan.formats import check_fields, has_field, json_array, read_batches, split_shard
from contamscan.model import Fields, Shard


def shard_for(path, name=None) -> Shard:
    return Shard(str(path), name or os.path.basename(path), "jsonl", os.path.getsize(path))


def collect(shard, batch_bytes=1 << 16, **fields):
    out = {"texts": [], "ids": [], "rows": [], "bad": [], "records": 0, "raw": 0, "batches": 0}
    for b in read_batches(shard, Fields(text="text", **fields), batch_bytes=batch_bytes):
        out["texts"] += b.texts.to_pylist()
        out["ids"] += b.ids.to_pylist() if b.ids is not None else []
        out["rows"] += b.rows.tolist()
        out["bad"] += [(x.row, x.line, x.reason) for x in b.bad]
        out["records"] += b.n_records
        out["raw"] += b.raw_bytes
        out["batches"] += 1
    return out


@pytest.fixture(scope="module")
def records(ai_texts):
    # texts with what a tokenizer can trip on: quotes, backslashes, brackets, commas, non-ASCII
    tricky = ['say "hi", then ]}[{ , \\ and \\" too', "ünïcödé – “quotes” ‘…’", "tab\tand\\nescaped newline"]
    return [{"id": f"r{i}", "text": t, "meta": {"n": i}} for i, t in enumerate(tricky + list(ai_texts[:150]))]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("compress", [False, True])
def test_array_gives_the_records_json_lines_give(tmp_path, records, indent, compress):
    text = json.dumps(records, indent=indent, ensure_ascii=False).encode()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    suffix = ".json.gz" if compress else ".json"
    arr, jl = tmp_path / f"a{suffix}", tmp_path / f"l{suffix}"
    arr.write_bytes(gzip.compress(text) if compress else text)
    jl.write_bytes(gzip.compress(lines) if compress else lines)  # a .json holding JSON Lines: as before
    a, b = collect(shard_for(arr), id="id"), collect(shard_for(jl), id="id")
    assert a["texts"] == b["texts"] == [r["text"] for r in records]
    assert a["ids"] == [r["id"] for r in records]
    assert a["rows"] == list(range(len(records))) and a["bad"] == []
    assert a["records"] == len(records) and a["raw"] == arr.stat().st_size  # every byte on disk accounted for
    assert a["batches"] > 1  # streamed, not read whole
    assert json_array.applies(shard_for(arr)) and not json_array.applies(shard_for(jl))


def test_dotted_fields_and_field_checks(tmp_path, records):
    p = tmp_path / "a.json"
    p.write_text(json.dumps(records))
    s = shard_for(p)
    assert has_field(s, "meta.n") and not has_field(s, "meta.x")
    assert collect(s, **{"id": "meta.n"})["ids"][:3] == ["0", "1", "2"]
    with pytest.raises(FieldMissingError, match="'body' not found.*fields present: id, text, meta"):
        check_fields(s, Fields(text="body"))


def test_bad_elements_are_counted_with_their_line(tmp_path):
    body = ('[\n  {"text": "a good one"},\n  42,\n  {"text": null},\n  {"text": ["x"]},\n  {"other": 1},\n'
            '  {"text": "b" "c"},\n  ,\n  {"text": "last"}\n]\n')
    p = tmp_path / "a.json"
    p.write_text(body)
    out = collect(shard_for(p))
    assert out["texts"] == ["a good one", "last"]
    assert out["bad"] == [(1, 3, "not_an_object"), (2, 4, "text_null"), (3, 5, "text_not_string"),
                          (4, 6, "text_missing"), (5, 7, "malformed_json"), (6, 8, "malformed_json")]
    assert out["records"] == 8 == len(out["texts"]) + len(out["bad"])


@pytest.mark.parametrize("body,what", [
    ('[{"text": "a"}] trailing', "text after the closing ']'"),
    ('[{"text": "a"}, {"text": "b"', "the file ends inside the array"),
    ('[{"text": "unterminated}]', "unterminated string"),
    ('[{"text": "a"}}', "unbalanced"),
])
def test_a_broken_array_fails_the_read(tmp_path, body, what):
    p = tmp_path / "a.json"
    p.write_text(body)
    with pytest.raises(ShardReadError, match=f"a.json: not a JSON array of records: {what}"):
        collect(shard_for(p))


def test_empty_arrays_have_no_records(tmp_path):
    for body in ("[]", " \n[ \n ]\n", "\ufeff[]"):
        p = tmp_path / "a.json"
        p.write_text(body)
        assert collect(shard_for(p))["records"] == 0


def test_split_keeps_elements_byte_for_byte(tmp_path, records):
    p = tmp_path / "in" / "a.json.gz"
    p.parent.mkdir()
    p.write_bytes(gzip.compress(json.dumps(records, indent=1, ensure_ascii=False).encode()))
    flagged = [0, 5, len(records) - 1]
    counts = split_shard(shard_for(p), flagged, tmp_path / "clean", tmp_path / "flagged")
    assert (counts.clean, counts.flagged) == (len(records) - 3, 3)
    clean = json.loads(gzip.decompress((tmp_path / "clean" / "a.json.gz").read_bytes()))
    flag = json.loads(gzip.decompress((tmp_path / "flagged" / "a.json.gz").read_bytes()))
    assert flag == [records[i] for i in flagged]
    assert clean == [r for i, r in enumerate(records) if i not in flagged]
    # and they read back as arrays
    assert collect(shard_for(tmp_path / "flagged" / "a.json.gz"))["texts"] == [records[i]["text"] for i in flagged]
