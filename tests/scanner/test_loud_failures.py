"""No silent passes: a shard that holds records and yields no document fails, in every
format; so does a shard with more bad records than `max_bad_share`; a scan that read no
document exits 5; a gate never passes when a shard failed or an input could not be read."""

import json
import os

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from _locations import run_cli
from conftest import ESSAYS

from contamscan import scan
from contamscan.cli import EXIT_FAILED_SHARDS, EXIT_OK
from contamscan.config import ScanOptions
from contamscan.errors import FailedShardsError, GateError, NoDocumentsError
from contamscan.index import build_index


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("loud")
    refs = ai_table.slice(0, 300).select(["id", "model", "text"])
    pq.write_table(refs, root / "refs.parquet")
    return root, build_index([str(root / "refs.parquet")], root / "index"), refs["text"].to_pylist()


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _shards(report) -> dict:
    return {s["shard"]: s for s in report.shards}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "arrow"])
def test_a_shard_of_records_and_no_document_fails_in_every_format(setup, tmp_path, fmt):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "good.jsonl", [{"text": t} for t in texts[:20]])
    if fmt in ("jsonl", "json"):  # every text a number: a wrong field type
        rows = [{"text": i} for i in range(30)]
        if fmt == "json":
            (data / "bad.json").write_text(json.dumps(rows))
        else:
            _jsonl(data / "bad.jsonl", rows)
    else:  # every text null
        table = pa.table({"text": pa.array([None] * 30, pa.string())})
        pq.write_table(table, data / "bad.parquet") if fmt == "parquet" else feather.write_feather(table,
                                                                                                   data / "bad.arrow")
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1, max_bad_share=1.0))
    bad = _shards(report)[f"bad.{fmt}"]
    assert bad["status"] == "failed"
    if fmt in ("jsonl", "json"):  # the records hold another type than a string: the format says which
        assert bad["error"] == (f"bad.{fmt}: 30 record(s) and no document: field 'text' in bad.{fmt} is not a string "
                                "column (type found: int64)")
    else:
        assert bad["error"] == f"bad.{fmt}: 30 record(s) and no document: every record is bad (text_null 30)"
    assert _shards(report)["good.jsonl"]["status"] == "ok"
    assert report.totals["errors"]["failed_shards"] == 1
    with pytest.raises(FailedShardsError):
        report.check()


def test_bad_records_above_max_bad_share_fail_the_shard(setup, tmp_path):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    for name, n_bad in (("one.jsonl", 1), ("two.jsonl", 2)):  # of 100 records: 1% passes, 2% fails
        _jsonl(data / name, [{"text": t} for t in texts[:100 - n_bad]] + [{"text": None}] * n_bad)
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    one, two = _shards(report)["one.jsonl"], _shards(report)["two.jsonl"]
    assert one["status"] == "ok" and one["documents"] + one["errors"]["bad_records"] == 100
    assert two["status"] == "failed"
    assert two["error"] == "two.jsonl: 2 of 100 records are bad (2.00%, above `max_bad_share` 1.00%): text_null 2"
    # 1 disables the share (the records are counted and skipped, as before)
    lenient = scan([str(data)], index, tmp_path / "out2", ScanOptions(workers=1, max_bad_share=1.0))
    assert [s["status"] for s in lenient.shards] == ["ok", "ok"]
    assert lenient.totals["documents"] + lenient.totals["errors"]["bad_records"] == 200
    # the CLI spells the option as its flag, and exits 3
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "out3", "--workers", "1")
    assert r.returncode == EXIT_FAILED_SHARDS
    assert "above --max-bad-share 1.00%" in r.stderr and "1 shard(s) could not be read" in r.stderr
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "out4", "--workers", "1", "--max-bad-share", "0.05")
    assert r.returncode == EXIT_OK, r.stderr


def test_a_large_parquet_shard_in_pieces_fails_on_the_whole_shards_share(setup, tmp_path):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    # 3 nulls in 200 rows (1.5%), all in the first of 4 row groups: the piece alone is 6%, the shard 1.5%
    col = [None, None, None] + texts[:197]
    pq.write_table(pa.table({"text": pa.array(col, pa.string())}), data / "big.parquet", row_group_size=50)
    size = os.path.getsize(data / "big.parquet")
    report = scan([str(data)], index, None, ScanOptions(workers=1, piece_bytes=max(1, size // 4)))
    s = report.shards[0]
    assert s["status"] == "failed" and "3 of 200 records are bad (1.50%" in s["error"]
    ok = scan([str(data)], index, None, ScanOptions(workers=1, piece_bytes=max(1, size // 4), max_bad_share=0.02))
    assert ok.shards[0]["status"] == "ok" and ok.totals["documents"] == 197


def test_a_scan_that_read_no_document_exits_5(setup, tmp_path):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    (data / "empty.jsonl").write_text("")
    (data / "empty.json").write_text("[]")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), data / "empty.parquet")
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    assert [s["status"] for s in report.shards] == ["ok"] * 3 and report.totals["documents"] == 0
    with pytest.raises(NoDocumentsError, match="the scan read no document in 3 shard"):
        report.check()
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "out2", "--workers", "1")
    assert r.returncode == 5 == NoDocumentsError.exit_code
    assert "error: the scan read no document in 3 shard(s)" in r.stderr
    assert (tmp_path / "out2" / "report.json").exists()  # the report is written all the same


def test_gates_never_pass_with_a_failed_shard_or_an_unreadable_input(setup, tmp_path):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    human = pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()[:60]
    _jsonl(data / "good.jsonl", [{"text": t} for t in human])  # no copies: rate 0
    _jsonl(data / "bad.jsonl", [{"text": 1}] * 5)
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    assert report.contamination_rate == 0.0
    with pytest.raises(FailedShardsError):
        report.check(fail_above=0.5, fail_above_shard=0.5)
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "o1", "--workers", "1", "--fail-above", "0.5")
    assert r.returncode == EXIT_FAILED_SHARDS
    # an input that could not be read (a broken link): without a gate, listed; with one, no pass
    (data / "bad.jsonl").unlink()
    os.symlink(tmp_path / "gone.jsonl", data / "link.jsonl")
    report = scan([str(data)], index, tmp_path / "out2", ScanOptions(workers=1))
    assert report.unreadable == [str(data / "link.jsonl")]
    report.check()  # no gate: the skip is in report.json, the scan passes
    with pytest.raises(FailedShardsError, match="1 input path\\(s\\) could not be read, so a gate cannot pass"):
        report.check(fail_above_shard=0.5)
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "o2", "--workers", "1", "--fail-above", "0.5")
    assert r.returncode == EXIT_FAILED_SHARDS and "so a gate cannot pass" in r.stderr
    # and a passing gate still passes, a failing one still fails
    (data / "link.jsonl").unlink()
    scan([str(data)], index, tmp_path / "out3", ScanOptions(workers=1)).check(fail_above=0.5)
    _jsonl(data / "copies.jsonl", [{"text": t} for t in texts[:10]])
    with pytest.raises(GateError):
        scan([str(data)], index, tmp_path / "out4", ScanOptions(workers=1)).check(fail_above_shard=0.5)


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_text_column_of_the_wrong_type_fails_its_shard(setup, tmp_path, fmt):
    root, index, texts = setup
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "good.jsonl", [{"text": t} for t in texts[:20]])
    table = pa.table({"text": pa.array(range(40), pa.int64())})
    pq.write_table(table, data / f"ints.{fmt}") if fmt == "parquet" else feather.write_feather(table,
                                                                                                data / f"ints.{fmt}")
    r = run_cli("scan", data, "--index", index.path, "-o", tmp_path / "out", "--workers", "1")
    assert r.returncode == EXIT_FAILED_SHARDS, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    shards = {s["shard"]: s for s in report["shards"]}
    assert shards[f"ints.{fmt}"]["status"] == "failed"
    assert shards[f"ints.{fmt}"]["error"] == f"field 'text' in ints.{fmt} is not a string column (type found: int64)"
    assert shards["good.jsonl"]["status"] == "ok" and report["totals"]["documents"] == 20
