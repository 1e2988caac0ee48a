"""Tests for the deterministic demo workspace generator (contamscan.demo)."""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from contamscan.demo import MODELS, DemoWorkspace, make_demo_workspace

WORD_RE = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_jsonl_lines(path: Path) -> list[str]:
    if path.name.endswith(".gz"):
        data = gzip.decompress(path.read_bytes())
    elif path.name.endswith(".zst"):
        with pa.input_stream(str(path), compression="zstd") as f:
            data = f.read()
    else:
        data = path.read_bytes()
    return data.decode("utf-8").splitlines()


def read_shard(path: Path) -> list[dict | None]:
    """Physical records in order; None for a line that is not valid JSON."""
    if path.name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    if path.name.endswith(".arrow"):
        with pa.memory_map(str(path)) as source:
            return ipc.open_file(source).read_all().to_pylist()
    out: list[dict | None] = []
    for line in read_jsonl_lines(path):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append(None)
    return out


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> DemoWorkspace:
    return make_demo_workspace(tmp_path_factory.mktemp("demo") / "workspace")


@pytest.fixture(scope="module")
def truth(ws) -> dict:
    return json.loads(ws.truth.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def references(ws) -> dict[str, dict]:
    refs = pq.read_table(ws.references / "outputs_a.parquet").to_pylist()
    for line in (ws.references / "outputs_b.jsonl").read_text(encoding="utf-8").splitlines():
        refs.append(json.loads(line))
    return {r["id"]: r for r in refs}


@pytest.fixture(scope="module")
def shards(ws, truth) -> dict[str, list[dict | None]]:
    return {rel: read_shard(ws.dataset / rel) for rel in truth["documents_per_shard"]}


# --- determinism --------------------------------------------------------------------------------


def test_byte_identical_across_runs_and_overwrite(ws, tmp_path):
    first = tree_bytes(ws.root)
    other = make_demo_workspace(tmp_path / "again")
    assert tree_bytes(other.root) == first
    # Regenerating over an existing workspace overwrites in place and leaves no temp files.
    (other.dataset / "web" / "part-000.parquet").write_bytes(b"garbage")
    make_demo_workspace(tmp_path / "again")
    assert tree_bytes(other.root) == first


def test_seed_changes_content(ws, tmp_path):
    other = make_demo_workspace(tmp_path / "seed8", seed=8)
    a, b = tree_bytes(ws.root), tree_bytes(other.root)
    assert a.keys() == b.keys()
    assert a["references/outputs_b.jsonl"] != b["references/outputs_b.jsonl"]


# --- layout and formats -------------------------------------------------------------------------


def test_layout(ws):
    assert ws.references == ws.root / "references"
    assert ws.dataset == ws.root / "dataset"
    assert ws.truth == ws.root / "truth.json"
    files = set(tree_bytes(ws.root))
    assert files == {
        "truth.json",
        "references/outputs_a.parquet",
        "references/outputs_b.jsonl",
        "dataset/web/part-000.parquet",
        "dataset/web/part-001.jsonl",
        "dataset/forum/part-000.jsonl.gz",
        "dataset/forum/part-001.jsonl.zst",
        "dataset/books/part-000.arrow",
    }


def test_references(ws, references):
    assert pq.read_schema(ws.references / "outputs_a.parquet").names == ["id", "model", "text"]
    for line in (ws.references / "outputs_b.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        assert obj["meta"]["model"] == obj["model"]
    assert len(references) == 600  # ids are unique
    per_model = collections.Counter(r["model"] for r in references.values())
    assert set(per_model) == set(MODELS)
    assert min(per_model.values()) >= 100
    for r in references.values():
        assert 120 <= len(r["text"].split()) <= 400


def test_references_are_mutually_distinct(references):
    sets = [shingles(r["text"]) for r in references.values()]
    index: dict[tuple, list[int]] = collections.defaultdict(list)
    for i, s in enumerate(sets):
        for g in s:
            index[g].append(i)
    for i, s in enumerate(sets):
        counts = collections.Counter(j for g in s for j in index[g] if j != i)
        for j, n in counts.items():
            assert n / (len(s) + len(sets[j]) - n) < 0.1


def test_shards_readable_and_counted(truth, shards):
    bad = collections.defaultdict(dict)
    for b in truth["bad_records"]:
        bad[b["shard"]][b["row"]] = b
        assert b["line"] == b["row"] + 1
    assert len(truth["bad_records"]) >= 2
    assert {b["kind"] for b in truth["bad_records"]} == {"malformed_json", "null_text"}
    all_ids = []
    for rel, rows in shards.items():
        assert len(rows) == truth["records_per_shard"][rel]
        valid = 0
        for row, rec in enumerate(rows):
            if row in bad[rel]:
                if bad[rel][row]["kind"] == "malformed_json":
                    assert rec is None
                else:
                    assert rec is not None and rec["text"] is None
                continue
            assert rec is not None, f"{rel} row {row} does not parse"
            assert set(rec) == {"id", "text"}
            assert isinstance(rec["text"], str) and rec["text"].strip()
            all_ids.append(rec["id"])
            valid += 1
        assert valid == truth["documents_per_shard"][rel]
        assert 300 <= valid <= 800
    assert len(all_ids) == len(set(all_ids))


def test_bad_lines_only_in_one_plain_jsonl_shard_after_planted_rows(truth):
    shards_with_bad = {b["shard"] for b in truth["bad_records"]}
    assert shards_with_bad == {"web/part-001.jsonl"}
    last_planted = max(p["row"] for p in truth["planted"] if p["shard"] == "web/part-001.jsonl")
    assert min(b["row"] for b in truth["bad_records"]) > last_planted


# --- ground truth -------------------------------------------------------------------------------


def test_planted_records_match_references(truth, references, shards):
    kinds = collections.Counter()
    seen = set()
    for p in truth["planted"]:
        rec = shards[p["shard"]][p["row"]]
        ref = references[p["ref_id"]]
        assert rec["id"] == p["id"]
        assert ref["model"] == p["model"]
        assert p["ref_id"] not in seen
        seen.add(p["ref_id"])
        kinds[p["kind"]] += 1
        doc_sh, ref_sh = shingles(rec["text"]), shingles(ref["text"])
        j = jaccard(doc_sh, ref_sh)
        assert p["jaccard5"] == pytest.approx(j, abs=1e-4)
        if p["kind"] == "exact":
            assert rec["text"] == ref["text"]
        elif p["kind"] == "reformatted":
            assert rec["text"] != ref["text"]
            assert words(rec["text"]) == words(ref["text"])
        else:
            assert p["kind"] == "edited"
            a, b = words(rec["text"]), words(ref["text"])
            assert a != b
            assert abs(len(a) - len(b)) <= 0.06 * len(b)
            assert 0.5 <= j < 1.0
            assert len(doc_sh & ref_sh) / len(doc_sh) > 0.7
    assert set(kinds) == {"exact", "edited", "reformatted"}


def test_planted_rates_differ_per_shard(truth):
    per_shard = collections.Counter(p["shard"] for p in truth["planted"])
    rates = sorted(per_shard[rel] / n for rel, n in truth["documents_per_shard"].items())
    assert rates[0] == 0.0  # one clean shard
    assert rates[-1] >= 0.2
    assert len(set(rates)) == len(rates)


def test_unrelated_documents_are_not_near_duplicates(truth, references, shards):
    index: dict[tuple, list[str]] = collections.defaultdict(list)
    for rid, r in references.items():
        for g in shingles(r["text"]):
            index[g].append(rid)
    ref_sets = {rid: shingles(r["text"]) for rid, r in references.items()}
    planted = {(p["shard"], p["row"]) for p in truth["planted"]}
    decoys = {(d["shard"], d["row"]) for d in truth["decoys"]}
    assert len(decoys) >= 2
    checked = 0
    for rel, rows in shards.items():
        for row, rec in enumerate(rows):
            if rec is None or rec.get("text") is None or (rel, row) in planted:
                continue
            s = shingles(rec["text"])
            counts = collections.Counter(rid for g in s for rid in index[g])
            for rid, n in counts.items():
                if (rel, row) in decoys:  # same style as the references, but not a copy
                    assert n / (len(s) + len(ref_sets[rid]) - n) < 0.1
                else:  # human prose
                    assert n / len(s) < 0.05, (rel, row, rid)
            checked += 1
    assert checked > 1500
