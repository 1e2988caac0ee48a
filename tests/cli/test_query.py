"""``contamscan matches OUT`` and ``contamscan lookup INDEX TEXT``, through the command line,
on a scan of real human text with planted copies of real model outputs."""

import csv
import io
import json
import shutil
import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _locations import run_cli
from _workspace import build, write_formats
from conftest import HUMAN

from contamscan.model import flagging


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, ai_table):
    ws = build(tmp_path_factory.mktemp("query"), ai_table, HUMAN)
    write_formats(ws, ws.root / "formats")
    shutil.copytree(ws.root / "formats", ws.data / "mixed")
    out = ws.root / "out"
    r = run_cli("scan", ws.data, "--index", ws.index, "-o", out, "--max-bad-share", "1", "--workers", "1")
    assert r.returncode == 0, r.stderr
    return ws, out, flagging(pq.read_table(out / "matches.parquet"))


def _json(*args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_matches_filters(scanned):
    ws, out, matches = scanned
    every = _json("matches", out, "--format", "json")
    assert [(m["shard"], m["row"], m["ref_id"]) for m in every] == \
        list(zip(matches["shard"].to_pylist(), matches["row"].to_pylist(), matches["ref_id"].to_pylist()))
    label = matches["label"][0].as_py()
    by_label = _json("matches", out, "--label", label, "--format", "json")
    assert by_label and {m["label"] for m in by_label} == {label}
    assert len(by_label) == pc.sum(pc.equal(matches["label"], label)).as_py()
    ref = matches["ref_id"][0].as_py()
    assert {m["ref_id"] for m in _json("matches", out, "--ref", ref, "--format", "json")} == {ref}
    mixed = _json("matches", out, "--shard", "mixed/*", "--format", "json")
    assert mixed and all(m["shard"].startswith("mixed/") for m in mixed)
    assert len(mixed) == sum(s.startswith("mixed/") for s in matches["shard"].to_pylist())
    assert {m["shard"] for m in _json("matches", out, "--shard", "mixed/[ab].*", "--format", "json")} == \
        {"mixed/a.parquet", "mixed/b.jsonl"}
    strong = _json("matches", out, "--min-similarity", "0.9", "--format", "json")
    assert strong and all(m["similarity"] >= 0.9 for m in strong) and len(strong) < len(every)
    assert _json("matches", out, "--label", "no-such-model", "--format", "json") == []


def test_matches_formats(scanned, tmp_path):
    ws, out, matches = scanned
    r = run_cli("matches", out, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["doc_id"] for x in rows] == matches["doc_id"].to_pylist()
    r = run_cli("matches", out, "--format", "parquet", "-o", tmp_path / "m.parquet")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "m.parquet").select(["shard", "row", "ref_id"]).to_pylist() == \
        matches.select(["shard", "row", "ref_id"]).to_pylist()
    r = run_cli("matches", out, "--limit", "3")
    assert r.returncode == 0, r.stderr
    assert matches["doc_id"][0].as_py() in r.stdout and f"{matches.num_rows - 3:,} more" in r.stdout
    r = run_cli("matches", ws.root)  # not a scan's output
    assert r.returncode == 1 and "no matches.parquet" in r.stderr


def test_lookup(scanned):
    ws, _, _ = scanned
    copy = next(d for d in ws.docs if d["id"].startswith("passage/"))
    found = _json("lookup", ws.index, copy["text"], "--format", "json")
    assert found[0]["ref_id"] == copy["planted"] and found[0]["label"] == copy["model"]
    assert set(found[0]) == {"ref_id", "label", "similarity", "containment", "char_start", "char_end"}
    assert 0 < found[0]["char_start"] < found[0]["char_end"] < len(copy["text"])
    p = subprocess.run([sys.executable, "-m", "contamscan", "lookup", str(ws.index), "--format", "json"],
                       input=copy["text"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == found
    assert _json("lookup", ws.index, "Nothing of this was ever indexed.", "--format", "json") == []
    r = run_cli("lookup", ws.index, copy["text"])
    assert r.returncode == 0 and copy["planted"] in r.stdout
