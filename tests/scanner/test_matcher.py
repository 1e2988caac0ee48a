"""contamscan.Matcher, the per-text API: the same matches as a scan of the same texts (both
call match_batch), one annotation row per text, pickled into worker processes (spawn and
fork) and a Ray task with the index opened once per worker; its docstring example runs."""

import doctest
import multiprocessing as mp
import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _workspace import build
from conftest import HUMAN

import contamscan
from contamscan.config import ScanOptions
from contamscan.model import flagging
from contamscan.scanner import matcher as matcher_module


@pytest.fixture(scope="module")
def ws(tmp_path_factory, ai_table):
    return build(tmp_path_factory.mktemp("matcher"), ai_table, HUMAN)


@pytest.fixture(scope="module")
def scanned(ws, tmp_path_factory):
    out = tmp_path_factory.mktemp("matcher-scan") / "out"
    contamscan.scan([str(ws.data)], str(ws.index), str(out), ScanOptions(workers=1))
    return pq.read_table(out / "matches.parquet")


def test_docstring_example_runs():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(contamscan.Matcher, "Matcher", globs={})
    assert tests and sum(len(t.examples) for t in tests) >= 8
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_match_equals_the_scan(ws, scanned):
    texts = pq.read_table(ws.parquet)
    m = contamscan.Matcher(str(ws.index))
    table = m.match(texts["text"], ids=texts["id"])
    expected = scanned.drop_columns(["shard", "turn"])
    assert table.schema.names == expected.schema.names
    assert table.num_rows == expected.num_rows > 40
    assert table.equals(expected.cast(table.schema))
    # a list of str gives the same as the Arrow column, and small batches the same as one
    small = contamscan.Matcher(str(ws.index), ScanOptions(batch_bytes=1 << 16))
    assert small.match(texts["text"].to_pylist()).drop_columns(["doc_id"]).equals(
        table.drop_columns(["doc_id"]))


def test_planted_copies_are_found_and_negatives_not(ws):
    m = contamscan.Matcher(str(ws.index))
    ann = m.annotate([d["text"] for d in ws.docs])
    assert ann.num_rows == len(ws.docs)
    flagged = ann.column("flagged").to_pylist()
    refs = ann.column("ref_id").to_pylist()
    planted = [i for i, d in enumerate(ws.docs) if d["planted"]]
    assert all(flagged[i] for i in planted)
    assert [refs[i] for i in planted] == [ws.docs[i]["planted"] for i in planted]
    assert [ann.column("label")[i].as_py() for i in planted] == [ws.docs[i]["model"] for i in planted]
    negatives = [i for i, d in enumerate(ws.docs) if d["id"].startswith("negative/")]
    assert not any(flagged[i] for i in negatives)
    humans = [i for i, d in enumerate(ws.docs) if d["id"].startswith("human/")]
    assert sum(flagged[i] for i in humans) <= 1
    # a passage inside a human document: its span is the passage's place
    k = next(i for i, d in enumerate(ws.docs) if d["id"].startswith("passage/"))
    span = ann.column("spans")[k].as_py()[0]
    text = ws.docs[k]["text"]
    assert 0 < span["start"] < span["end"] < len(text)
    assert span["end"] - span["start"] > 900


def test_annotate_agrees_with_the_scan(ws, scanned):
    texts = pq.read_table(ws.parquet)["text"]
    ann = contamscan.Matcher(str(ws.index)).annotate(texts)
    assert ann.num_rows == len(texts)
    hits = flagging(scanned)
    rows = hits.column("row").to_numpy()
    assert set(np.flatnonzero(ann.column("flagged").to_numpy(zero_copy_only=False))) == set(rows.tolist())
    first = hits.filter(pa.compute.equal(hits.column("rank"), 1))  # the strongest match of each document
    by_row = dict(zip(first.column("row").to_pylist(), first.column("label").to_pylist()))
    assert {r: ann.column("label")[r].as_py() for r in by_row} == by_row
    counts = np.bincount(rows, minlength=len(texts))
    assert ann.column("sources").to_numpy().tolist() == counts.tolist()


def test_none_and_empty_texts(ws):
    copy = next(d for d in ws.docs if d["id"].startswith("copy/"))
    m = contamscan.Matcher(str(ws.index))
    ann = m.annotate([None, "", "short", copy["text"]])
    assert ann.column("flagged").to_pylist() == [False, False, False, True]
    assert ann.column("error").to_pylist() == ["text_null", None, None, None]
    assert ann.column("spans").to_pylist()[:3] == [[], [], []]
    assert m.match([None, copy["text"]]).column("row").to_pylist() == [1]
    assert m.match([]).num_rows == 0 and m.annotate([]).num_rows == 0


def test_lookup(ws):
    text = ws.docs[next(i for i, d in enumerate(ws.docs) if d["id"].startswith("copy/"))]
    found = contamscan.lookup(str(ws.index), text["text"])
    assert found and found[0]["ref_id"] == text["planted"] and found[0]["label"] == text["model"]
    assert set(found[0]) == {"ref_id", "label", "similarity", "containment", "char_start", "char_end"}
    assert contamscan.lookup(str(ws.index), "nothing anybody indexed, written for this test") == []


# --------------------------------------------------------------------------- in workers


def _work(args):
    """In a worker: match a chunk with a matcher it received pickled; what it opened."""
    matcher, texts = args
    table = matcher.match(texts)
    return os.getpid(), matcher_module.OPENS[matcher.path], table.to_pylist()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_matcher_in_a_process_pool(ws, method):
    m = contamscan.Matcher(str(ws.index))
    texts = [d["text"] for d in ws.docs]
    chunks = [texts[i:i + 40] for i in range(0, len(texts), 40)]
    expected = [m.match(c).to_pylist() for c in chunks]
    opened_here = matcher_module.OPENS[m.path]
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        got = pool.map(_work, [(m, c) for c in chunks], chunksize=1)  # the matcher pickled with every task
    assert [g[2] for g in got] == expected
    by_pid = {}
    for pid, opens, _ in got:
        by_pid.setdefault(pid, set()).add(opens)
    assert len(by_pid) >= 1
    if method == "spawn":  # a fresh process opens the index on its first task, and never again
        assert all(opens == {1} for opens in by_pid.values()), by_pid
    else:  # a forked worker inherits the parent's opened index: it opens nothing
        assert all(opens == {opened_here} for opens in by_pid.values()), by_pid


def test_matcher_pickles_small(ws):
    m = contamscan.Matcher(str(ws.index))
    blob = pickle.dumps(m)
    assert len(blob) < 4000  # the path and the options, not the index
    assert pickle.loads(blob).index is m.index  # the same process: the same opened index


def test_matcher_in_a_ray_task(ws):
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    m = contamscan.Matcher(str(ws.index))
    texts = [d["text"] for d in ws.docs]
    chunks = [texts[i:i + 60] for i in range(0, len(texts), 60)]
    expected = [m.match(c).to_pylist() for c in chunks]
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    try:
        @ray.remote(num_cpus=1)
        def task(matcher, chunk):
            from contamscan.scanner import matcher as mm

            return os.getpid(), mm.OPENS[matcher.path], matcher.match(chunk).to_pylist()

        got = ray.get([task.remote(m, c) for c in chunks])
    finally:
        ray.shutdown()
    assert [g[2] for g in got] == expected
    opens = {}
    for pid, n, _ in got:
        opens.setdefault(pid, set()).add(n)
    assert all(v == {1} for v in opens.values()), opens  # one worker process (num_cpus=1) opened it once
