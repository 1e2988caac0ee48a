"""The README's "Use it from Python / datatrove / datasets" examples run as written, in a
directory holding refs.index and crawl/ (real human text with planted copies of real model
outputs), and do what the README says of them."""

import gzip
import json
import re
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _workspace import build
from conftest import HUMAN, REPO

from contamscan.model import flagging

SECTION = "### Use it from Python / datatrove / datasets"


def _examples() -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text[text.index(SECTION):]
    body = body[: body.index("\n## ")]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_the_section_has_its_examples():
    blocks = _examples()
    assert len(blocks) == 4
    assert "contamscan.Matcher" in blocks[0] and "ContamscanFilter" in blocks[1] and "annotator" in blocks[2]


@pytest.fixture(scope="module")
def here(tmp_path_factory, ai_table):
    ws = build(tmp_path_factory.mktemp("readme-ws"), ai_table, HUMAN)
    d = tmp_path_factory.mktemp("readme")
    shutil.copytree(ws.index, d / "refs.index")
    (d / "crawl").mkdir()
    t = pq.read_table(ws.parquet)
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), d / "crawl" / "part-0.parquet")
    pq.write_table(t.slice(half), d / "crawl" / "part-1.parquet")
    return ws, d


def test_examples_run(here, monkeypatch, capsys):
    ws, d = here
    monkeypatch.chdir(d)
    blocks = _examples()
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    # the scan of the last example, and what the datatrove pipeline removed
    scanned = flagging(pq.read_table(d / "scan-out" / "matches.parquet"))
    flagged_ids = set(scanned["doc_id"].to_pylist())
    assert len(flagged_ids) >= 48
    removed = set()
    for f in (d / "removed").glob("*.jsonl.gz"):
        with gzip.open(f, "rt") as fh:
            removed |= {json.loads(line)["id"] for line in fh}
    assert removed == flagged_ids
    kept = 0
    for f in (d / "clean").glob("*.jsonl.gz"):
        with gzip.open(f, "rt") as fh:
            kept += sum(1 for _ in fh)
    assert kept + len(removed) == len(ws.docs)
    # the datasets example printed rows, clean rows and openai-labelled rows of part-0
    part0 = pq.read_table(d / "crawl" / "part-0.parquet")
    in_part0 = scanned.filter(pc.equal(scanned["shard"], "part-0.parquet"))
    rows = {r["row"]: r["label"] for r in in_part0.to_pylist() if r["rank"] == 1}
    line = f"{part0.num_rows} {part0.num_rows - len(rows)} {sum(v.startswith('openai/') for v in rows.values())}"
    assert line in out
    assert "[]" in out  # lookup of a text that copies nothing
