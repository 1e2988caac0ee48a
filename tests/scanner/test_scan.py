"""Scan behaviour on real text: the error policy, determinism across workers, the index checks."""

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contamscan.config import IndexParams, ScanOptions
from contamscan.errors import ContamscanError, FieldMissingError, IndexFormatError
from contamscan.index import build_index, open_index
from contamscan import scan


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("scan")
    refs = ai_table.slice(0, 400).select(["id", "model", "text"])
    pq.write_table(refs, root / "refs.parquet")
    index = build_index([str(root / "refs.parquet")], root / "index")
    return root, index, refs


def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def test_bad_records_are_counted_and_skipped(setup, tmp_path):
    root, index, refs = setup
    texts = refs["text"].to_pylist()
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", [{"id": "x0", "text": texts[0]}, '{"id": "x1", "text": ', {"id": "x2", "text": None},
                              {"id": "x3", "text": 7}, {"id": "x4", "text": texts[1]}, ["not", "an", "object"]])
    # Parquet with a row of invalid UTF-8: Arrow does not validate, the kernel must
    raw = [texts[2].encode(), b"caf\xe9 au lait", texts[3].encode()]
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int32)
    arr = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(raw))])
    pq.write_table(pa.table({"id": ["p0", "p1", "p2"], "text": arr}), data / "b.parquet")
    # 4 bad of 6 and 1 of 3: far above the default max_bad_share, which has its own tests
    # (test_loud_failures.py); here every bad record is counted and skipped
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1, max_bad_share=1.0))
    shards = {s["shard"]: s for s in report.shards}
    a, b = shards["a.jsonl"], shards["b.parquet"]
    assert a["documents"] == 2 and a["flagged_documents"] == 2
    assert a["errors"]["by_reason"] == {"malformed_json": 1, "text_null": 1, "text_not_string": 1, "not_an_object": 1}
    assert {(e["row"], e["line"]) for e in a["errors"]["examples"]} >= {(1, 2), (2, 3)}
    assert b["documents"] == 2 and b["errors"]["by_reason"] == {"invalid_utf8": 1}
    assert b["errors"]["examples"][0]["row"] == 1
    t = report.totals
    # nothing is lost: every record is either scanned or counted
    assert t["documents"] + t["errors"]["bad_records"] == 6 + 3
    assert set(report.matches()["doc_id"].to_pylist()) == {"x0", "x4", "p0", "p2"}

    strict = scan([str(data)], index, tmp_path / "out2", ScanOptions(workers=1, strict=True))
    assert {s["shard"]: s["status"] for s in strict.shards} == {"a.jsonl": "failed", "b.parquet": "failed"}
    assert "line 2" in strict.shards[0]["error"]


def test_missing_text_field_names_fields(setup, tmp_path):
    root, index, refs = setup
    with pytest.raises(FieldMissingError, match="fields present: id, model, text"):
        scan([str(root / "refs.parquet")], index, tmp_path / "out", ScanOptions(text_field="body"))


def test_same_report_whatever_the_workers(setup, tmp_path, ai_table):
    root, index, refs = setup
    data = tmp_path / "data"
    data.mkdir()
    rows = ai_table.slice(300, 400).select(["id", "text"])  # 100 indexed, 300 not
    for i in range(4):
        pq.write_table(rows.slice(i * 100, 100), data / f"part-{i}.parquet")
    r1 = scan([str(data)], index, tmp_path / "o1", ScanOptions(workers=1))
    r2 = scan([str(data)], index, tmp_path / "o2", ScanOptions(workers=2))
    strip = lambda d: {k: v for k, v in d.items() if k not in ("started_at", "finished_at")}
    assert strip(r1.data) == strip(r2.data)
    assert r1.matches().equals(r2.matches())
    # every indexed output is flagged whole; an output of another model can only share a
    # passage (prompts that quote a text, which their answers quote back)
    m = r1.matches()
    indexed = set(refs["id"].to_pylist())
    whole = {d for d, k in zip(m["doc_id"].to_pylist(), m["kind"].to_pylist()) if k == "whole"}
    assert whole == indexed & set(rows["id"].to_pylist()) and len(whole) == 100
    assert r1.totals["flagged_documents"] >= 100


def test_output_dir_inside_dataset_is_not_scanned(setup, tmp_path):
    root, index, refs = setup
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(refs.slice(0, 10), data / "a.parquet")
    scan([str(data)], index, data / "out", ScanOptions(workers=1))
    again = scan([str(data)], index, data / "out", ScanOptions(workers=1))
    assert [s["shard"] for s in again.shards] == ["a.parquet"]


def test_index_checks(setup, tmp_path):
    root, index, refs = setup
    summary = open_index(root / "index").summary()
    assert summary.refs == 400 and sum(summary.labels.values()) == 400
    assert summary.params["bands"] == 25 and summary.params["rows"] == 5
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(root / "index", bad)
    sig = np.load(bad / "signatures.npy")
    sig[0, 0] ^= 1
    np.save(bad / "signatures.npy", sig)
    with pytest.raises(IndexFormatError, match="checksum mismatch for signatures.npy"):
        open_index(bad)
    (bad / "manifest.json").unlink()
    with pytest.raises(IndexFormatError, match="not a contamscan index"):
        open_index(bad)
    with pytest.raises(ContamscanError, match="threshold"):
        IndexParams(threshold=1.5)


def test_store_text_and_duplicate_ids(setup, tmp_path):
    root, index, refs = setup
    ix = build_index([str(root / "refs.parquet")], tmp_path / "ix", store_text=True)
    assert ix.texts.to_pylist()[:3] == refs["text"].to_pylist()[:3]
    assert "text" not in ix.refs.columns  # texts are memory-mapped, not loaded with the table
    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": ["a", "a"], "model": ["m", "m"], "text": ["one two three", "four five six"]}), dup)
    with pytest.raises(ContamscanError, match="not unique"):
        build_index([str(dup)], tmp_path / "ix2")


def test_nested_label_and_integer_ids(tmp_path, ai_table):
    rows = ai_table.slice(0, 30).to_pylist()
    _jsonl(tmp_path / "refs.jsonl", [{"id": i, "meta": {"model": r["model"]}, "text": r["text"]} for i, r in enumerate(rows)])
    ix = build_index([str(tmp_path / "refs.jsonl")], tmp_path / "ix", label_field="meta.model")
    assert ix.refs["ref_id"].to_list() == [str(i) for i in range(30)]
    assert ix.refs["label"].to_list() == [r["model"] for r in rows]
    with pytest.raises(FieldMissingError, match="'model'"):
        build_index([str(tmp_path / "refs.jsonl")], tmp_path / "ix2", label_field="model")


def test_large_shards_in_pieces_give_the_same_report(setup, tmp_path, ai_table):
    """A Parquet shard scanned as pieces of row groups (in parallel) reports exactly what one
    task scanning it whole does: counts, rows, matches, evidence, bad-record examples."""
    root, index, refs = setup
    rows = ai_table.slice(300, 400).select(["id", "text"]).to_pylist()
    rows[7]["text"] = None  # a bad record in the first piece
    rows[250]["text"] = None  # and one in a later piece
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), data / "big.parquet", row_group_size=20)
    whole = scan([str(data)], index, tmp_path / "whole", ScanOptions(workers=1))
    events = []
    pieces = scan([str(data)], index, tmp_path / "pieces", ScanOptions(workers=2, piece_bytes=200_000),
                  events=lambda n, f: events.append(f) if n == "shard_finished" else None)
    assert len(events) > 3 and all("row_groups" in e for e in events)  # it was split
    strip = lambda d: {k: v for k, v in d.items() if k not in ("started_at", "finished_at")}
    assert strip(pieces.data) == strip(whole.data)
    assert pieces.matches().equals(whole.matches())
    assert pq.read_table(tmp_path / "pieces" / "evidence.parquet").equals(
        pq.read_table(tmp_path / "whole" / "evidence.parquet"))


def test_matches_stay_on_disk_and_top_matches_are_the_strongest(setup, tmp_path, ai_table, monkeypatch):
    """The scan keeps each finished shard's result without its matches (they are in its
    checkpoint until matches.parquet is written), so memory does not grow with the flagged
    documents of a dataset; report.json's top matches are still each shard's strongest."""
    from contamscan.scanner import executors

    root, index, refs = setup
    data = tmp_path / "data"
    data.mkdir()
    texts = refs["text"].to_pylist()
    for k in range(3):  # copies and human-like unrelated text (other models' outputs)
        rows = texts[40 * k:40 * k + 30] + ai_table["text"].to_pylist()[600 + 20 * k:620 + 20 * k]
        pq.write_table(pa.table({"id": [f"{k}-{i}" for i in range(len(rows))], "text": rows}), data / f"p{k}.parquet")
    kept = []
    real_run = executors.LocalExecutor.run

    def spy(self, *args, **kwargs):
        results = real_run(self, *args, **kwargs)
        kept.extend(results)
        return results

    monkeypatch.setattr(executors.LocalExecutor, "run", spy)
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1, top_matches=5))
    assert len(kept) == 3 and all(r.matches.num_rows == 0 for r in kept)
    assert all(r.flagged_documents >= 30 for r in kept)
    matches = report.matches()
    assert matches.num_rows == report.totals["flagged_documents"] >= 90
    assert matches.column("shard").to_pylist() == sorted(matches.column("shard").to_pylist())
    for s in report.shards:
        m = matches.filter(pa.compute.equal(matches["shard"], s["shard"])).to_pylist()
        m.sort(key=lambda r: (-r["containment"], -r["similarity"], r["row"]))
        assert [(t["row"], t["ref_id"]) for t in s["top_matches"]] == [(r["row"], r["ref_id"]) for r in m[:5]]


def test_a_small_dataset_is_cut_into_enough_pieces_for_the_workers(tmp_path, ai_table, monkeypatch):
    """Five shards on two workers would keep one worker on the fifth while the other waits:
    a dataset of less than PIECES pieces of ``piece_bytes`` is cut into PIECES (row groups
    allowing, none under MIN_PIECE), and the plan depends on the dataset alone."""
    from contamscan.discover import discover
    from contamscan.scanner import shard as shard_mod

    monkeypatch.setattr(shard_mod, "MIN_PIECE", 1)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(5):
        part = ai_table.slice(100 * k, 100).select(["id", "text"])
        pq.write_table(part, data / f"p{k}.parquet", row_group_size=10)
    shards, _ = discover([str(data)])
    units = shard_mod.plan_units(shards, ScanOptions())
    assert len(units) >= shard_mod.PIECES // 2 and all(u.row_groups for u in units)
    assert [u.path for u in units] == sorted(u.path for u in units)  # in shard order, each shard's in row order
    for s in shards:  # every row group of every shard exactly once
        groups = [g for u in units if u.path == s.path for g in u.row_groups]
        assert groups == list(range(10))
    assert shard_mod.plan_units(shards, ScanOptions(workers=7)) == units
    assert len(shard_mod.plan_units(shards, ScanOptions(write_flagged=str(tmp_path / "f")))) == 5  # whole shards
