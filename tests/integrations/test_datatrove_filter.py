"""contamscan.integrations.datatrove: ContamscanFilter in a LocalPipelineExecutor pipeline with
datatrove's own ParquetReader and JsonlWriter, on shards of real human text and model
outputs from ../shared/data: it drops exactly the documents a scan of the same shards flags
(to the exclusion writer), annotates their metadata with the scan's model, reference and
containment, and counts them per model in the step's stats; with two tasks in two worker
processes (the step pickled) the same."""

import gzip
import json

import pyarrow.parquet as pq
import pytest
from _workspace import build
from conftest import HUMAN

import contamscan
from contamscan.config import ScanOptions
from contamscan.model import flagging

pytest.importorskip("datatrove")
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import ParquetReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from contamscan.integrations.datatrove import ContamscanFilter  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory, ai_table):
    ws = build(tmp_path_factory.mktemp("datatrove"), ai_table, HUMAN)
    # two shards for two tasks (datatrove gives each task its files)
    t = pq.read_table(ws.parquet)
    shards = ws.root / "shards"
    shards.mkdir()
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), shards / "part-0.parquet", row_group_size=50)
    pq.write_table(t.slice(half), shards / "part-1.parquet", row_group_size=50)
    return ws


@pytest.fixture(scope="module")
def expected(ws, tmp_path_factory):
    """{doc id: (label, ref_id, containment)} of what the scan flags, strongest match."""
    out = tmp_path_factory.mktemp("datatrove-scan") / "out"
    contamscan.scan([str(ws.root / "shards")], str(ws.index), str(out), ScanOptions(workers=1))
    best = {}
    for r in flagging(pq.read_table(out / "matches.parquet")).to_pylist():
        best.setdefault(r["doc_id"], (r["label"], r["ref_id"], r["containment"]))
    return best


def _read(folder):
    docs = []
    for p in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(p, "rt") as f:
            docs += [json.loads(line) for line in f]
    return docs


@pytest.mark.parametrize("tasks", [1, 2])
def test_pipeline_drops_what_the_scan_flags(ws, expected, tmp_path, tasks):
    pipeline = [
        ParquetReader(str(ws.root / "shards"), text_key="text", id_key="id"),
        ContamscanFilter(str(ws.index), exclusion_writer=JsonlWriter(str(tmp_path / "removed")), batch_size=64),
        JsonlWriter(str(tmp_path / "kept")),
    ]
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=tasks, logging_dir=str(tmp_path / "logs")).run()
    removed, kept = _read(tmp_path / "removed"), _read(tmp_path / "kept")
    assert len(removed) + len(kept) == len(ws.docs)
    assert {d["id"] for d in removed} == set(expected) and len(expected) >= 48
    for d in removed:
        m = d["metadata"]
        assert (m["contamscan_label"], m["contamscan_ref_id"], m["contamscan_containment"]) == expected[d["id"]]
        assert m["filter_reason"] == "contamscan"
    assert all(d["metadata"]["contamscan_label"] is None for d in kept)
    planted = {d["id"]: d["model"] for d in ws.docs if d["planted"]}
    assert {d["id"] for d in removed} >= set(planted)
    # stats: flagged documents per model, as the scan counts them by their strongest match
    stats = json.loads((tmp_path / "logs" / "stats.json").read_text())
    step = next(s for s in stats if "contamscan" in s["name"])
    by_model = {}
    for label, _, _ in expected.values():
        by_model[label] = by_model.get(label, 0) + 1
    got = {k[len("contamscan_flagged_"):]: v["total"] if isinstance(v, dict) else v
           for k, v in step["stats"].items() if k.startswith("contamscan_flagged_")}
    assert got == by_model
    total = step["stats"]["dropped"]
    assert (total["total"] if isinstance(total, dict) else total) == len(expected)


def test_annotate_only_keeps_every_document(ws, expected, tmp_path):
    pipeline = [
        ParquetReader(str(ws.root / "shards"), text_key="text", id_key="id"),
        ContamscanFilter(str(ws.index), drop=False),
        JsonlWriter(str(tmp_path / "all")),
    ]
    LocalPipelineExecutor(pipeline=pipeline, tasks=1, logging_dir=str(tmp_path / "logs")).run()
    docs = _read(tmp_path / "all")
    assert len(docs) == len(ws.docs)
    flagged = {d["id"]: (d["metadata"]["contamscan_label"], d["metadata"]["contamscan_ref_id"],
                         d["metadata"]["contamscan_containment"])
               for d in docs if d["metadata"]["contamscan_label"] is not None}
    assert flagged == expected


def test_filter_pickles_as_its_index_path(ws):
    import pickle

    f = ContamscanFilter(str(ws.index))
    g = pickle.loads(pickle.dumps(f))
    assert g.matcher.path == f.matcher.path and g.drop
