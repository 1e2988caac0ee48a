"""Faults of issue 15: outputs that overlap each other or the data, damaged checkpoints."""

import json

import pyarrow.parquet as pq
import pytest

from contamscan import scan
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError
from contamscan.index import build_index


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("faults")
    refs = ai_table.slice(0, 200).select(["id", "model", "text"])
    pq.write_table(refs, root / "refs.parquet")
    index = build_index([str(root / "refs.parquet")], root / "index")
    return root, index, refs


def _data(tmp_path, refs):
    data = tmp_path / "data"
    data.mkdir()
    texts = refs["text"].to_pylist()
    # shards named as the scan's own outputs: a clean copy written into -o would clobber them
    (data / "report.json").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:3]))
    (data / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[3:6]))
    return data


@pytest.mark.parametrize("case", ["clean=out", "clean in out", "out in clean", "flagged=out", "clean in flagged",
                                  "clean=data", "clean in data", "data in flagged", "out=data", "out contains data",
                                  "glob base"])
def test_overlapping_outputs_are_refused_before_any_work(setup, tmp_path, case):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    out = tmp_path / "out"
    inputs = [str(data)]
    kw = {}
    if case == "clean=out":
        kw = {"write_clean": str(out)}
    elif case == "clean in out":
        kw = {"write_clean": str(out / "clean")}
    elif case == "out in clean":
        kw = {"write_clean": str(tmp_path / "c")}
        out = tmp_path / "c" / "out"
    elif case == "flagged=out":
        kw = {"write_flagged": str(out) + "/./"}
    elif case == "clean in flagged":
        kw = {"write_clean": str(tmp_path / "f" / "c"), "write_flagged": str(tmp_path / "f")}
    elif case == "clean=data":
        kw = {"write_clean": str(data)}
    elif case == "clean in data":
        kw = {"write_clean": str(data / "clean")}
    elif case == "data in flagged":
        kw = {"write_flagged": str(tmp_path)}
    elif case == "out=data":
        out = data
    elif case == "out contains data":
        out = tmp_path
    elif case == "glob base":
        inputs = [str(data / "*.jsonl")]
        kw = {"write_clean": str(data / "clean")}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ContamscanError) as err:
        scan(inputs, index, out, ScanOptions(workers=1, **kw))
    assert "overlap" in str(err.value) or "outside the data" in str(err.value) or "different" in str(err.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing made, nothing written


def test_separate_outputs_still_work_and_out_inside_data_is_skipped(setup, tmp_path):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    r = scan([str(data)], index, data / "out", ScanOptions(workers=1, write_clean=str(tmp_path / "clean")))
    assert sorted(s["shard"] for s in r.shards) == ["a.jsonl", "report.json"]
    assert (tmp_path / "clean" / "a.jsonl").exists()
