"""End to end through the CLI, on real model outputs and real human text."""

import gzip
import json
import random
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.cli import EXIT_FAILED_SHARDS, EXIT_GATE, cli
from conftest import AI, HUMAN

INDEXED_MODELS = ["claude-sonnet-4-20250514", "deepseek/deepseek-r1", "google/gemini-2.5-flash", "openai/gpt-5-mini",
                  "moonshotai/kimi-k2", "openai/o3"]


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    """Replace a share of the words with other words: a light edit."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), k=max(1, int(len(words) * rate))):
        words[i] = rng.choice(["indeed", "perhaps", "notably", "really", "quite"])
    return " ".join(words)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("e2e")
    ai = pl.from_arrow(ai_table)
    prompts = list(range(0, 300, 3))  # 100 prompts, creative and essay
    ai = ai.filter(pl.col("prompt_index").is_in(prompts))
    indexed = ai.filter(pl.col("model").is_in(INDEXED_MODELS))
    others = ai.filter(~pl.col("model").is_in(INDEXED_MODELS))
    refs = root / "refs"
    refs.mkdir()
    half = indexed.height // 2
    indexed.slice(0, half).write_parquet(refs / "part-a.parquet")
    with open(refs / "part-b.jsonl", "w") as f:  # label nested, to exercise dotted paths
        for r in indexed.slice(half).iter_rows(named=True):
            f.write(json.dumps({"id": r["id"], "meta": {"model": r["model"]}, "model": r["model"], "text": r["text"]}) + "\n")

    rng = random.Random(11)
    humans = pl.concat([pl.read_parquet(p).select("id", "text") for p in HUMAN])
    humans = humans.sample(n=3000, seed=5, shuffle=True)
    picked = indexed.sample(n=90, seed=3, shuffle=True).to_dicts()
    exact, edited = picked[:60], picked[60:]
    negatives = others.sample(n=200, seed=4, shuffle=True).to_dicts()  # same prompts, unindexed models

    docs = [{"id": f"h{i}-{r['id']}", "text": r["text"], "kind": "human"} for i, r in enumerate(humans.to_dicts())]
    docs += [{"id": f"copy-{r['id']}", "text": r["text"], "kind": "exact", "ref": r["id"], "model": r["model"]} for r in exact]
    docs += [{"id": f"edit-{r['id']}", "text": edit_words(r["text"], 0.02, rng), "kind": "edited", "ref": r["id"],
              "model": r["model"]} for r in edited]
    docs += [{"id": f"other-{r['id']}", "text": r["text"], "kind": "other"} for r in negatives]
    rng.shuffle(docs)
    data = root / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    chunks = [docs[i::4] for i in range(4)]
    table = lambda rows: pa.table({"id": [d["id"] for d in rows], "text": [d["text"] for d in rows]})
    pq.write_table(table(chunks[0]), data / "a" / "shard-0.parquet", row_group_size=500)
    with gzip.open(data / "a" / "shard-1.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in chunks[1])
    with pa.CompressedOutputStream(str(data / "b" / "shard-2.jsonl.zst"), "zstd") as f:
        f.write("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in chunks[2]).encode())
    feather.write_feather(table(chunks[3]), data / "b" / "shard-3.arrow")
    truth = {d["id"]: d for d in docs}
    return root, truth


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def check_schema(report: dict) -> None:
    assert set(report) == {"tool", "index", "match_rules", "started_at", "finished_at", "totals", "shards"}
    assert set(report["match_rules"]) == {"verify", "min_anchors", "min_tight_anchors", "miss_penalty", "min_words"}
    assert set(report["tool"]) == {"name", "version"}
    assert set(report["index"]) == {"path", "refs", "labels", "params"}
    totals_keys = {"shards", "documents", "bytes", "flagged_documents", "flagged_bytes", "contamination_rate", "ci95",
                   "byte_rate", "by_label", "by_label_any", "errors"}
    assert set(report["totals"]) == totals_keys
    shard_keys = {"shard", "status", "error", "documents", "bytes", "flagged_documents", "contamination_rate", "ci95",
                  "byte_rate", "by_label", "by_label_any", "similarity_histogram", "top_matches", "errors",
                  "flagged_bytes"}
    for s in report["shards"]:
        assert set(s) >= shard_keys - {"flagged_bytes"}
        assert s["status"] in ("ok", "failed")
        lo, hi = s["ci95"]
        assert 0 <= lo <= s["contamination_rate"] <= hi <= 1
        assert not s["shard"].startswith("/")


def test_scan_flags_exactly_the_copies(workspace, tmp_path):
    root, truth = workspace
    index = tmp_path / "index"
    r = run("index", "build", root / "refs", "-o", index, "--label-field", "model")
    assert r.exit_code == 0, r.output
    assert "refs" in r.output
    out = tmp_path / "out"
    r = run("scan", root / "data", "--index", index, "-o", out, "--workers", "1")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    check_schema(report)
    matches = pl.read_parquet(out / "matches.parquet")
    assert matches.columns == ["shard", "row", "doc_id", "ref_id", "label", "similarity", "containment",
                               "char_start", "char_end", "kind", "ambiguous", "alt_ref_id", "alt_label", "turn", "rank"]
    assert matches["turn"].null_count() == matches.height  # not --per-turn
    strongest = matches.filter(pl.col("rank") == 1)
    assert strongest["doc_id"].is_unique().all()
    flagged = dict(zip(strongest["doc_id"], zip(strongest["ref_id"], strongest["label"])))
    expected = {k for k, d in truth.items() if d["kind"] in ("exact", "edited")}
    assert set(flagged) == expected  # no human text, no unindexed model output
    for doc_id in expected:
        assert flagged[doc_id] == (truth[doc_id]["ref"], truth[doc_id]["model"])
    exact = matches.filter(pl.col("doc_id").str.starts_with("copy-"))
    assert (exact["similarity"] == 1.0).all()
    t = report["totals"]
    assert t["documents"] == len(truth) and t["flagged_documents"] == len(expected)
    assert sum(t["by_label"].values()) == len(expected)
    assert report["index"]["labels"].keys() == set(INDEXED_MODELS)
    assert {s["shard"] for s in report["shards"]} == {"a/shard-0.parquet", "a/shard-1.jsonl.gz",
                                                      "b/shard-2.jsonl.zst", "b/shard-3.arrow"}
    # rows point at the right records
    shard0 = pq.read_table(root / "data" / "a" / "shard-0.parquet").to_pylist()
    for m in matches.filter(pl.col("shard") == "a/shard-0.parquet").iter_rows(named=True):
        assert shard0[m["row"]]["id"] == m["doc_id"]
    assert "| shard |" in (out / "report.md").read_text()

    # the gate: the rate is above 1%
    r = run("scan", root / "data", "--index", index, "-o", tmp_path / "out2", "--fail-above", "0.01")
    assert r.exit_code == EXIT_GATE


def test_python_m_and_failed_shard(workspace, tmp_path):
    """`python -m contamscan` works; a corrupt shard fails alone, the exit status says so."""
    root, truth = workspace
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text("".join(json.dumps({"text": d["text"]}) + "\n" for d in list(truth.values())[:50]))
    (data / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    index = tmp_path / "index"
    assert run("index", "build", root / "refs", "-o", index).exit_code == 0
    p = subprocess.run([sys.executable, "-m", "contamscan", "scan", str(data), "--index", str(index), "-o",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert p.returncode == EXIT_FAILED_SHARDS, p.stderr
    assert "Traceback" not in p.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    status = {s["shard"]: s["status"] for s in report["shards"]}
    assert status == {"bad.parquet": "failed", "good.jsonl": "ok"}
    assert report["totals"]["documents"] == 50 and report["totals"]["errors"]["failed_shards"] == 1


def test_missing_text_field_fails_before_work(workspace, tmp_path):
    root, _ = workspace
    index = tmp_path / "index"
    assert run("index", "build", root / "refs", "-o", index).exit_code == 0
    r = run("scan", root / "data", "--index", index, "-o", tmp_path / "out", "--text-field", "body")
    assert r.exit_code == 1
    assert "'body'" in r.output and "id" in r.output and "text" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out" / "report.json").exists()


def test_help_on_every_command():
    for args in ([], ["index"], ["index", "build"], ["index", "info"], ["scan"], ["demo"]):
        r = run(*args, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_demo_finds_every_planted_copy(tmp_path):
    r = run("demo", tmp_path / "demo")
    assert r.exit_code == 0, r.output
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text())
    matches = pl.read_parquet(tmp_path / "demo" / "scan" / "matches.parquet")
    found = {(m["shard"], m["row"]): (m["ref_id"], m["label"]) for m in matches.iter_rows(named=True)}
    planted = {(p["shard"], p["row"]): (p["ref_id"], p["model"]) for p in truth["planted"]}
    assert found == planted
    report = json.loads((tmp_path / "demo" / "scan" / "report.json").read_text())
    assert report["totals"]["errors"]["bad_records"] == len(truth["bad_records"])
