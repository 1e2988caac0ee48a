"""contamscan.integrations.hf: ``ds.map(annotator(index), batched=True)`` flags exactly the
documents a scan of the same texts flags, with the same model and reference; ``ds.filter``
on the columns; the same with ``num_proc=2`` (the function pickled into worker processes).
Offline: datasets built in memory from ../shared/data."""

import pickle

import pyarrow.parquet as pq
import pytest
from _workspace import build
from conftest import HUMAN

import contamscan
from contamscan.config import ScanOptions
from contamscan.model import flagging

datasets = pytest.importorskip("datasets")
from contamscan.integrations.hf import annotator  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory, ai_table):
    return build(tmp_path_factory.mktemp("hf"), ai_table, HUMAN)


@pytest.fixture(scope="module")
def expected(ws, tmp_path_factory):
    """What the scan says of each row of the shard: {row: (label, ref_id, containment)} of
    the strongest flagging match."""
    out = tmp_path_factory.mktemp("hf-scan") / "out"
    contamscan.scan([str(ws.data)], str(ws.index), str(out), ScanOptions(workers=1))
    hits = flagging(pq.read_table(out / "matches.parquet"))
    best = {}
    for r in hits.to_pylist():
        best.setdefault(r["row"], (r["label"], r["ref_id"], r["containment"]))
    return best


def _dataset(ws):
    t = pq.read_table(ws.parquet)
    return datasets.Dataset.from_dict({"id": t["id"].to_pylist(), "text": t["text"].to_pylist()})


@pytest.mark.parametrize("num_proc", [None, 2])
def test_map_flags_what_the_scan_flags(ws, expected, num_proc):
    ds = _dataset(ws)
    out = ds.map(annotator(str(ws.index), text_column="text"), batched=True, batch_size=50, num_proc=num_proc)
    assert out.num_rows == ds.num_rows
    assert out.features["contamscan_flagged"].dtype == "bool"
    assert out.features["contamscan_label"].dtype == "string"
    assert out.features["contamscan_containment"].dtype == "float64"
    flagged = {i for i, f in enumerate(out["contamscan_flagged"]) if f}
    assert flagged == set(expected) and len(flagged) >= 48
    got = {i: (out[i]["contamscan_label"], out[i]["contamscan_ref_id"], out[i]["contamscan_containment"])
           for i in flagged}
    assert got == expected
    assert all(out[i]["contamscan_label"] == "" and out[i]["contamscan_containment"] == 0.0
               for i in range(out.num_rows) if i not in flagged)
    clean = out.filter(lambda f: not f, input_columns="contamscan_flagged")
    assert clean.num_rows == ds.num_rows - len(flagged)
    planted = {d["id"] for d in ws.docs if d["planted"]}
    assert planted.isdisjoint(clean["id"])


def test_columns_typed_when_a_batch_flags_nothing(ws):
    """The first batches hold no copy: the label and containment columns are still strings
    and floats (not datasets' null type, which a later batch could not be written to)."""
    human = [d for d in ws.docs if d["id"].startswith("human/")][:20]
    copies = [d for d in ws.docs if d["id"].startswith("copy/")][:5]
    ds = datasets.Dataset.from_dict({"text": [d["text"] for d in human + copies]})
    out = ds.map(annotator(str(ws.index)), batched=True, batch_size=10)
    assert out.features["contamscan_label"].dtype == "string"
    assert out["contamscan_flagged"][-5:] == [True] * 5
    assert out["contamscan_ref_id"][-5:] == [d["planted"] for d in copies]


def test_annotator_pickles_and_names_a_missing_column(ws):
    fn = annotator(str(ws.index), text_column="body")
    assert len(pickle.dumps(fn)) < 4000
    with pytest.raises(KeyError, match="no column 'body'"):
        fn({"text": ["x"]})
