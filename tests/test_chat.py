"""End to end through the CLI: a chat SFT dataset (JSON Lines, Parquet with a list<struct>
column, Arrow) whose assistant turns hold real human texts, with real model outputs from the
index planted as some of the assistant turns."""

import json
import random

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import HUMAN
from contamscan.cli import EXIT_FAILED_SHARDS, cli

MODELS = ["claude-sonnet-4-20250514", "openai/o3", "moonshotai/kimi-k2"]
SELECTOR = "messages[role=assistant].content"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def chat(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("chat")
    ai = pl.from_arrow(ai_table.select(["id", "model", "text"]))
    refs = ai.filter(pl.col("model").is_in(MODELS)).sample(n=240, seed=1, shuffle=True)
    refs.write_parquet(root / "refs.parquet")
    r = run("index", "build", root / "refs.parquet", "-o", root / "index")
    assert r.exit_code == 0, r.output

    humans = pl.concat([pl.read_parquet(p).select("text") for p in HUMAN]).sample(n=2000, seed=2, shuffle=True)
    human = humans["text"].to_list()
    planted = refs.sample(n=30, seed=3, shuffle=True).to_dicts()
    in_user = refs.filter(~pl.col("id").is_in([p["id"] for p in planted])).head(5)["text"].to_list()
    rng = random.Random(5)
    records, truth = [], {}  # truth: record -> (turn of the planted copy, its model)
    h = iter(human)
    for i in range(300):
        msgs = [{"role": "system", "content": "You are a helpful assistant."}]
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": next(h)[:200]})
            msgs.append({"role": "assistant", "content": next(h)})
        records.append({"id": f"c{i}", "messages": msgs})
    for k, p in enumerate(planted):  # a real model output as one assistant turn
        i = rng.randrange(len(records))
        while i in truth:
            i = rng.randrange(len(records))
        msgs = records[i]["messages"]
        turn = rng.choice([j for j, m in enumerate(msgs) if m["role"] == "assistant"])
        msgs[turn]["content"] = p["text"]
        truth[i] = (turn, p["model"])
    for t in in_user:  # a model output asked about by the user: not an assistant turn, not flagged
        i = rng.choice([j for j in range(len(records)) if j not in truth])
        records[i]["messages"][1]["content"] = t
    for i in rng.sample([j for j in range(len(records)) if j not in truth], 4):  # no assistant turn
        records[i]["messages"] = [m for m in records[i]["messages"] if m["role"] != "assistant"]
    data = root / "data"
    data.mkdir()
    with open(data / "sft.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    table = pa.Table.from_pylist(records)
    assert str(table.schema.field("messages").type) == "list<item: struct<role: string, content: string>>"
    pq.write_table(table, data / "sft.parquet", row_group_size=64)
    with pa.ipc.new_file(data / "sft.arrow", table.schema) as w:
        w.write_table(table, max_chunksize=50)
    return root, records, truth


def _scan(root, shard, out, *extra):
    # 4 of the 300 records have no assistant turn on purpose (text_no_match): 1.3% of bad
    # records, above the default --max-bad-share of 1%
    r = run("scan", root / "data" / shard, "--index", root / "index", "-o", out, "--workers", "1",
            "--text-field", SELECTOR, "--max-bad-share", "0.02", *extra)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    return report, pq.read_table(out / "matches.parquet").to_pylist()


@pytest.mark.parametrize("shard", ["sft.jsonl", "sft.parquet", "sft.arrow"])
def test_planted_assistant_turns_are_flagged_with_their_model(chat, tmp_path, shard):
    root, records, truth = chat
    report, matches = _scan(root, shard, tmp_path / "out")
    assert {m["row"]: m["label"] for m in matches} == {i: model for i, (_, model) in truth.items()}
    assert all(m["turn"] is None for m in matches)
    assert [m["doc_id"] for m in matches] == [records[m["row"]]["id"] for m in matches]
    t = report["totals"]
    assert t["flagged_documents"] == len(truth)
    assert t["errors"]["by_reason"] == {"text_no_match": 4}
    assert t["documents"] + t["errors"]["bad_records"] == len(records)


@pytest.mark.parametrize("shard", ["sft.jsonl", "sft.parquet", "sft.arrow"])
def test_per_turn_names_the_turn(chat, tmp_path, shard):
    root, records, truth = chat
    report, matches = _scan(root, shard, tmp_path / "out", "--per-turn")
    assert {(m["row"], m["turn"], m["label"]) for m in matches} == {(i, turn, model) for i, (turn, model) in truth.items()}
    assert len(matches) == len(truth)
    t = report["totals"]
    assert t["flagged_documents"] == len(truth) and sum(t["by_label"].values()) == len(truth)
    assert t["documents"] + t["errors"]["bad_records"] == len(records)
    assert t["documents"] == len(records) - 4  # documents are records, not turns


@pytest.mark.parametrize("shard", ["sft.jsonl", "sft.parquet", "sft.arrow"])
def test_a_list_of_turns_as_the_text_fails_loudly(chat, tmp_path, shard):
    """It used to exit 0 with 0 documents: now the shard fails (exit 3), saying what the field
    holds and which selector to use."""
    root, _, _ = chat
    r = run("scan", root / "data" / shard, "--index", root / "index", "-o", tmp_path / "out", "--text-field",
            "messages")
    assert r.exit_code == EXIT_FAILED_SHARDS, r.output
    (s,) = json.loads((tmp_path / "out" / "report.json").read_text())["shards"]
    assert s["status"] == "failed" and s["documents"] == 0
    assert "list" in s["error"] and "messages[role=assistant].content" in s["error"]
    assert "messages[role=assistant].content" in r.output


def test_write_clean_keeps_chat_records_byte_for_byte(chat, tmp_path):
    root, records, truth = chat
    _scan(root, "sft.jsonl", tmp_path / "out", "--write-clean", tmp_path / "clean", "--write-flagged",
          tmp_path / "flagged")
    lines = (root / "data" / "sft.jsonl").read_bytes().splitlines(keepends=True)
    assert (tmp_path / "clean" / "sft.jsonl").read_bytes() == b"".join(
        line for i, line in enumerate(lines) if i not in truth)
    assert (tmp_path / "flagged" / "sft.jsonl").read_bytes() == b"".join(lines[i] for i in sorted(truth))


def test_sources_with_different_text_fields_in_one_run(chat, tmp_path):
    """One source names its text `content`, another `text`, a third holds chat turns: one
    run with fallbacks reads them all and flags exactly the copies planted in each."""
    root, records, truth = chat
    refs = pl.read_parquet(root / "refs.parquet").to_dicts()
    humans = [m["content"] for i, r in enumerate(records) if i not in truth  # human text only: no planted copy
              for m in r["messages"] if m["role"] == "assistant"][:120]
    data = tmp_path / "data"
    data.mkdir()
    planted = {}
    for name, field in (("a.jsonl", "content"), ("b.jsonl", "text")):
        rows = [{"id": f"{name}-{i}", field: t} for i, t in enumerate(humans[:60] if name == "a.jsonl" else humans[60:])]
        for k in range(5):
            ref = refs[(7 * k + len(planted)) % len(refs)]
            rows.insert(3 + 11 * k, {"id": f"{name}-copy-{k}", field: ref["text"]})
            planted[f"{name}-copy-{k}"] = ref["model"]
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "c.jsonl").write_bytes((root / "data" / "sft.jsonl").read_bytes())
    r = run("scan", data, "--index", root / "index", "-o", tmp_path / "out", "--workers", "1", "--max-bad-share",
            "0.02", "--text-field", f"text|content|{SELECTOR}")
    assert r.exit_code == 0, r.output
    matches = pq.read_table(tmp_path / "out" / "matches.parquet").to_pylist()
    by_shard = {s: {m["doc_id"]: m["label"] for m in matches if m["shard"] == s} for s in ("a.jsonl", "b.jsonl")}
    assert by_shard["a.jsonl"] | by_shard["b.jsonl"] == planted
    assert {m["row"]: m["label"] for m in matches if m["shard"] == "c.jsonl"} == {i: model for i, (_, model) in
                                                                                 truth.items()}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["documents"] for s in report["shards"]] == [65, 65, 300 - 4]
