"""Reports people read: the evidence kept during a scan, `contamscan report OUT` (re-rendering),
`contamscan report --compare OLD NEW`, and the terminal summary (NO_COLOR, not a terminal)."""

import json
import os
import pty
import re
import select
import subprocess
import sys

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.cli import EXIT_OK, EXIT_USAGE, cli
from contamscan.report.compare import compare_reports
from contamscan.report.stats import diff_ci
from contamscan.config import ScanOptions
from contamscan.model import match_order
from contamscan.report.evidence import EXCERPT_CHARS
from contamscan.index import build_index, open_index
from contamscan.discover import discover
from contamscan import scan
from contamscan.report.render.terminal import MAX_MODEL_BARS
from contamscan.sketch.text import shingles, words

import _reportdata as rd


@pytest.fixture(scope="module")
def scans(tmp_path_factory, ai_table):
    """Two datasets (variant 0 and 1) scanned through the CLI against one index with stored texts."""
    root = tmp_path_factory.mktemp("reports")
    refs = rd.refs_file(root, ai_table)
    build_index([str(refs)], root / "index", store_text=True)
    for v in (0, 1):
        data = rd.build(root / f"v{v}", ai_table, v)
        r = CliRunner().invoke(cli, ["scan", str(data), "--index", str(root / "index"), "-o", str(root / f"out{v}"),
                                     "--workers", "1"])
        assert r.exit_code == EXIT_OK, r.output
    return root


def _documents(data) -> dict:
    """(shard, row) -> text of every document of a dataset, read as the scan reads it."""
    from contamscan.formats import read_batches
    from contamscan.model import Fields

    shards, _ = discover([str(data)])
    docs = {}
    for s in shards:
        for b in read_batches(s, Fields(text="text")):
            docs.update({(s.relpath, int(r)): t for r, t in zip(b.rows, b.texts.to_pylist())})
    return docs


def _covered(segment: str, other: set, n: int = 5) -> bool:
    """Every word of ``segment`` lies in an n-gram of the segment that is one of ``other``."""
    ws = words(segment)
    hit = [False] * len(ws)
    for i in range(len(ws) - n + 1):
        if " ".join(ws[i:i + n]).encode() in other:
            hit[i:i + n] = [True] * n
    return bool(ws) and all(hit)


def test_evidence_is_the_top_matches_with_their_text(scans):
    out = scans / "out0"
    report = json.loads((out / "report.json").read_text())
    ev = pq.read_table(out / "evidence.parquet").to_pylist()
    matches = pl.read_parquet(out / "matches.parquet")
    docs = _documents(scans / "v0" / "data")
    index = open_index(scans / "index")
    ref_text = dict(zip(index.ref_ids.to_pylist(), index.texts.to_pylist()))
    # the same matches, in the same order, as report.json's top_matches
    for s in report["shards"]:
        mine = [(r["row"], r["ref_id"]) for r in ev if r["shard"] == s["shard"]]
        assert mine == [(m["row"], m["ref_id"]) for m in s["top_matches"]]
        assert [r["rank"] for r in ev if r["shard"] == s["shard"]] == list(range(len(mine)))
    keys = [match_order(r["containment"], r["similarity"], r["row"]) for r in ev if r["shard"] == "a/web.parquet"]
    assert keys == sorted(keys)
    assert {r["kind"] for r in ev} == {"whole", "partial"}
    for r in ev:
        m = matches.filter((pl.col("shard") == r["shard"]) & (pl.col("row") == r["row"])).to_dicts()[0]
        assert {k: r[k] for k in ("doc_id", "ref_id", "label", "kind", "similarity", "containment", "char_start",
                                  "char_end")} == {k: m[k] for k in ("doc_id", "ref_id", "label", "kind", "similarity",
                                                                      "containment", "char_start", "char_end")}
        # the excerpts are the texts at their offsets, and hold the matched span's start
        doc, ref = docs[(r["shard"], r["row"])], ref_text[r["ref_id"]]
        assert r["doc_chars"] == len(doc) and r["ref_chars"] == len(ref)
        assert doc[r["doc_excerpt_start"]:r["doc_excerpt_start"] + len(r["doc_excerpt"])] == r["doc_excerpt"]
        assert ref[r["ref_excerpt_start"]:r["ref_excerpt_start"] + len(r["ref_excerpt"])] == r["ref_excerpt"]
        assert len(r["doc_excerpt"]) <= EXCERPT_CHARS and len(r["ref_excerpt"]) <= EXCERPT_CHARS
        assert r["doc_excerpt_start"] <= r["char_start"] < r["doc_excerpt_start"] + len(r["doc_excerpt"])
        # the marked text is shared: each marked segment is made of word 5-grams of the other excerpt
        doc_grams, ref_grams = set(shingles(r["doc_excerpt"])), set(shingles(r["ref_excerpt"]))
        assert r["doc_highlights"] and r["ref_highlights"] and r["shared_shingles"] > 50
        for h in r["doc_highlights"]:
            assert _covered(r["doc_excerpt"][h["start"]:h["end"]], ref_grams)
        for h in r["ref_highlights"]:
            assert _covered(r["ref_excerpt"][h["start"]:h["end"]], doc_grams)
        marked = sum(h["end"] - h["start"] for h in r["doc_highlights"])
        if r["kind"] == "whole" and r["similarity"] == 1.0:  # an exact copy: the marked text is the same text
            assert marked > 0.8 * len(r["doc_excerpt"])
            norm_ref = " ".join(words(r["ref_excerpt"]))
            assert all(" ".join(words(r["doc_excerpt"][h["start"]:h["end"]])) in norm_ref for h in r["doc_highlights"])
        if r["kind"] == "partial":  # a passage inside human text: the human text around it is not marked
            first, last = r["doc_highlights"][0]["start"], r["doc_highlights"][-1]["end"]
            assert first > 20 and last < len(r["doc_excerpt"]) - 20
            span = (r["char_start"] - r["doc_excerpt_start"], r["char_end"] - r["doc_excerpt_start"])
            assert first <= span[0] and span[1] <= last + 5 * 20  # the span lies in the marked text


def test_evidence_survives_resume(scans, tmp_path):
    """A scan interrupted after one shard and resumed writes the same evidence as one that was not."""
    data = [str(scans / "v0" / "data")]
    full = scan(data, scans / "index", tmp_path / "full", ScanOptions(workers=1))

    def interrupt(name, fields):
        if name == "shard_finished":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(data, scans / "index", tmp_path / "out", ScanOptions(workers=1), events=interrupt)
    assert not (tmp_path / "out" / "report.html").exists()
    resumed = scan(data, scans / "index", tmp_path / "out", ScanOptions(workers=2), resume=True)
    assert resumed.evidence().equals(full.evidence()) and resumed.evidence().num_rows
    html = [(d / "report.html").read_text() for d in (tmp_path / "full", tmp_path / "out")]
    stamps = re.compile(r"Scanned .*? by contamscan")
    assert stamps.sub("", html[0]).replace(str(tmp_path / "full"), "") == \
        stamps.sub("", html[1]).replace(str(tmp_path / "out"), "")


def test_report_rerenders_the_scans_own_files(scans):
    out = scans / "out0"
    before = {name: (out / name).read_bytes() for name in ("report.md", "report.html")}
    (out / "report.html").unlink()
    (out / "report.md").write_text("stale")
    r = CliRunner().invoke(cli, ["report", str(out)])
    assert r.exit_code == EXIT_OK, r.output
    assert {name: (out / name).read_bytes() for name in before} == before
    assert "flagged documents by model" in r.output and "report.html" in r.output
    # errors: not an output directory; OUT and --compare together; neither
    r = CliRunner().invoke(cli, ["report", str(scans / "v0")])
    assert r.exit_code == 1 and "no report.json" in r.output
    assert CliRunner().invoke(cli, ["report"]).exit_code == EXIT_USAGE
    r = CliRunner().invoke(cli, ["report", "--help"])
    assert r.exit_code == EXIT_OK and "--compare" in r.output and "--markdown" in r.output
    assert CliRunner().invoke(cli, ["report", str(out), "--compare", str(out), str(out)]).exit_code == EXIT_USAGE


def test_compare_two_scans(scans, tmp_path):
    old, new = scans / "out0", scans / "out1"
    md = tmp_path / "cmp.md"
    r = CliRunner().invoke(cli, ["report", "--compare", str(old), str(new), "--markdown", str(md)])
    assert r.exit_code == EXIT_OK, r.output
    a, b = (json.loads((d / "report.json").read_text()) for d in (old, new))
    cmp = compare_reports(a, b)
    shards = {s["shard"]: s for s in cmp["shards"]}
    assert {k: v["presence"] for k, v in shards.items()} == {
        "a/web.parquet": "both", "b/forum.jsonl": "both", "c/clean.jsonl": "old only", rd.HOSTILE_SHARD: "old only",
        "d/new.jsonl": "new only"}
    web, forum = shards["a/web.parquet"], shards["b/forum.jsonl"]
    sa = {s["shard"]: s for s in a["shards"]}
    sb = {s["shard"]: s for s in b["shards"]}
    assert web["old"]["flagged"] == sa["a/web.parquet"]["flagged_documents"] == 12
    assert web["new"]["flagged"] == sb["a/web.parquet"]["flagged_documents"] == 34
    assert web["delta"] == pytest.approx(sb["a/web.parquet"]["contamination_rate"] - sa["a/web.parquet"]["contamination_rate"])
    assert web["changed"] and not forum["changed"] and forum["delta"] == 0
    lo, hi = web["delta_ci95"]
    assert 0 < lo < web["delta"] < hi
    models = {m["label"]: m for m in cmp["models"]}
    for label in set(a["totals"]["by_label"]) | set(b["totals"]["by_label"]):
        m = models[label]
        assert m["new"]["flagged"] - m["old"]["flagged"] == b["totals"]["by_label"].get(label, 0) - \
            a["totals"]["by_label"].get(label, 0)
    assert any(m["presence"] == "new only" for m in cmp["models"])
    # printed and written
    out = r.output
    assert "only in " + str(new) in out and "only in " + str(old) in out and "changed" in out
    assert "a/web.parquet" in out and "+" in out
    text = md.read_text()
    assert "## Shards only in NEW" in text and "d/new.jsonl" in text and "## Shards only in OLD" in text
    assert "c/clean.jsonl" in text and rd.HOSTILE_SHARD.replace("|", "\\|") in text
    web_line = next(x for x in text.splitlines() if x.startswith("| a/web.parquet"))
    assert "12 / " in web_line and "34 / " in web_line and "**yes**" in web_line
    assert "| b/forum.jsonl" in text and next(x for x in text.splitlines() if x.startswith("| b/forum.jsonl")).endswith(
        "| no |")
    assert "## Models" in text and "(only in NEW)" in text
    assert cmp["warnings"] == []
    # scans with different indexes are compared, with a warning
    other = json.loads(json.dumps(b))
    other["index"]["params"]["threshold"] = 0.7
    assert "threshold" in compare_reports(a, other)["warnings"][0]


def test_difference_interval():
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339
    lo, hi = diff_ci(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    lo, hi = diff_ci(0, 100, 0, 100)
    assert lo < 0 < hi


def test_summary_without_a_terminal_is_plain_text(scans, monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(cli, ["report", str(scans / "out1")])
    assert r.exit_code == EXIT_OK
    assert "\x1b" not in r.output
    bars = r.output.split("flagged documents by model")[1]
    assert "█" in bars and "of flagged" in bars
    labels = json.loads((scans / "out1" / "report.json").read_text())["totals"]["by_label"]
    for label in list(labels)[:MAX_MODEL_BARS]:
        assert label in bars
    assert len(labels) > MAX_MODEL_BARS and f"… {len(labels) - MAX_MODEL_BARS} more model" in bars
    assert len(bars.strip().splitlines()) == MAX_MODEL_BARS + 2  # compact: the models, a "more" line, the files


def _run_in_terminal(args, env) -> str:
    """Run a command with a terminal as its output; what it printed."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            p.kill()
            break
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the other end is closed
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def _colour_codes(text: str) -> list[str]:
    """SGR sequences that set a colour (foreground or background)."""
    out = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        codes = [int(c) for c in params.split(";") if c]
        if any(30 <= c <= 49 or 90 <= c <= 107 for c in codes):
            out.append(params)
    return out


def test_summary_on_a_terminal_honours_no_color(scans):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(TERM="xterm-256color", COLUMNS="160")
    args = [sys.executable, "-m", "contamscan", "report", str(scans / "out0")]
    coloured = _run_in_terminal(args, env)
    assert "flagged documents by model" in coloured and _colour_codes(coloured)  # colours on a terminal...
    plain = _run_in_terminal(args, {**env, "NO_COLOR": "1"})
    assert "flagged documents by model" in plain and "█" in plain
    assert _colour_codes(plain) == []  # ...and none with NO_COLOR
