"""Names from the data (shard paths, doc ids, labels, errors) in the renderings (issue 15): rich
markup in them prints as text; bidi and control characters never act in report.html/report.md."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from contamscan import scan
from contamscan.config import ScanOptions
from contamscan.index import build_index
from contamscan.report.render.terminal import print_summary

RLO = "\u202e"
HIDDEN = [RLO, "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\x1b", "\x07", "\x85"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("names")
    refs = ai_table.slice(0, 60).select(["id", "text"])
    labels = ["[/]", f"evil{RLO}gpj.exe", "[bold]x[/bold]", "ok\u2066\u200f\x1b[31m"] * 15
    pq.write_table(refs.append_column("model", pa.array(labels)), root / "refs.parquet")
    index = build_index([str(root / "refs.parquet")], root / "index", label_field="model")
    data = root / "data"
    data.mkdir()
    texts = refs["text"].to_pylist()
    (data / "x[").mkdir()  # the shard x[/]y.jsonl: a folder x[ and a file ]y.jsonl
    (data / "x[/]y.jsonl").write_text("".join(json.dumps({"id": f"doc{RLO}{i}\x07", "text": t}) + "\n"
                                              for i, t in enumerate(texts[:8])))
    (data / f"a{RLO}b.jsonl").write_text(json.dumps({"id": 1, "text": 5}) + "\n")  # fails: no document
    r = scan([str(data)], index, root / "out", ScanOptions(workers=1, id_field="id"))
    return root, r


def test_markup_in_names_prints_as_text(scanned):
    root, r = scanned
    buf = io.StringIO()
    print_summary(r.data, root / "out", Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert "x[/]y.jsonl" in text and "\n[/] " in text and "\n[bold]x[/bold] " in text and "FAILED" in text
    assert not [c for c in HIDDEN if c in text] and "a\\u202eb.jsonl" in text


def test_bidi_and_control_characters_are_shown_not_obeyed(scanned):
    root, r = scanned
    assert any(RLO in s["shard"] for s in r.shards) and r.totals["flagged_documents"] == 8
    for name in ("report.html", "report.md"):
        out = (root / "out" / name).read_text()
        assert not [c for c in HIDDEN if c in out], name
        assert "\\u202e" in out and "\\u2066" in out and "x[/]y.jsonl" in out, name
