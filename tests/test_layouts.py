"""Real datasets in: copies of real model outputs planted among real human texts in a JSON
array file, a ``datasets.save_to_disk`` folder (made with the ``datasets`` package) and a
Hugging Face Hub layout folder; the CLI flags exactly the planted copies, with the right
model, reads every record once, and scans no index, profile or scan output found among the
inputs."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _locations import run_cli
from conftest import HUMAN

from contamscan.cli import EXIT_OK
from contamscan.index import build_index

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def world(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("layouts")
    ai = ai_table.to_pylist()[::7]
    indexed, rest = ai[:400], ai[400:]
    (root / "refs").mkdir()
    pq.write_table(pa.Table.from_pylist(indexed).select(["id", "model", "text"]), root / "refs" / "refs.parquet")
    build_index([str(root / "refs")], root / "refs.index")
    human = [t for p in HUMAN for t in pq.read_table(p, columns=["text"])["text"].to_pylist()[:100]]
    assert len(human) >= 410
    data = root / "data"
    planted = {}  # (shard relpath, row) -> model

    def mix(name: str, n_human: int, copies: list[dict], offset: int) -> list[dict]:
        rows = [{"id": f"{name}-h{i}", "text": t} for i, t in enumerate(human[offset:offset + n_human])]
        for k, ref in enumerate(copies):
            rows.insert(3 + 7 * k, {"id": f"{name}-copy{k}", "text": ref["text"]})
        return rows

    # 1. a JSON array of objects, pretty-printed, beside a .json holding JSON Lines
    arr = mix("arr", 120, indexed[0:9], 0)
    (data / "json").mkdir(parents=True)
    (data / "json" / "records.json").write_text(json.dumps(arr, indent=2, ensure_ascii=False))
    lines = mix("lines", 40, indexed[9:11], 120)
    (data / "json" / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    # 2. datasets.save_to_disk, two Arrow shards and its JSON metadata
    disk = mix("disk", 150, indexed[20:31], 160)
    datasets.Dataset.from_list(disk).save_to_disk(str(data / "hf-disk"), num_shards=2)
    # 3. the Hub layout: data/*.parquet and a README.md (its dataset card)
    hub = mix("hub", 100, indexed[40:46], 310)
    (data / "hub" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(hub[:60]), data / "hub" / "data" / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(hub[60:]), data / "hub" / "data" / "train-00001-of-00002.parquet")
    (data / "hub" / "README.md").write_text("---\nlicense: mit\n---\n# a dataset card\n")
    # unindexed outputs of other models: never flagged
    (data / "json" / "others.json").write_text(json.dumps([{"text": r["text"]} for r in rest[:50]]))
    # an index, a profile-like contamscan directory and an earlier scan's output, among the data
    shutil.copytree(root / "refs.index", data / "old.index")
    for rows, rel in ((arr, ["json/records.json"]), (lines, ["json/lines.json"])):
        for i, r in enumerate(rows):
            if "copy" in r["id"]:
                planted[(rel[0], i)] = next(x["model"] for x in indexed if x["text"] == r["text"])
    shards = [f"hf-disk/data-0000{k}-of-00002.arrow" for k in range(2)]
    with pa.OSFile(str(data / shards[0])) as f:
        half = pa.ipc.open_stream(f).read_all().num_rows
    for i, r in enumerate(disk):
        if "copy" in r["id"]:
            planted[(shards[0], i) if i < half else (shards[1], i - half)] = \
                next(x["model"] for x in indexed if x["text"] == r["text"])
    for i, r in enumerate(hub):
        if "copy" in r["id"]:
            rel = "hub/data/train-00000-of-00002.parquet" if i < 60 else "hub/data/train-00001-of-00002.parquet"
            planted[(rel, i if i < 60 else i - 60)] = next(x["model"] for x in indexed if x["text"] == r["text"])
    records = {"json/records.json": len(arr), "json/lines.json": len(lines), "json/others.json": 50,
               shards[0]: half, shards[1]: len(disk) - half,
               "hub/data/train-00000-of-00002.parquet": 60, "hub/data/train-00001-of-00002.parquet": len(hub) - 60}
    # a finished scan's output inside the dataset: never read as data
    first = run_cli("scan", data / "hub", "--index", root / "refs.index", "-o", data / "old-scan", "--workers", "1")
    assert first.returncode == EXIT_OK, first.stderr
    return root, data, planted, records


@pytest.fixture(scope="module")
def scanned(world):
    root, data, planted, records = world
    r = run_cli("scan", data, "--index", root / "refs.index", "-o", root / "out", "--workers", "2")
    assert r.returncode == EXIT_OK, r.stderr
    return json.loads((root / "out" / "report.json").read_text()), pq.read_table(root / "out" / "matches.parquet")


def test_the_planted_copies_and_only_they_are_flagged_with_their_model(world, scanned):
    _, _, planted, _ = world
    report, matches = scanned
    found = {(r["shard"], r["row"]): r["label"] for r in matches.to_pylist()}
    assert found == planted
    assert report["totals"]["flagged_documents"] == len(planted) == 9 + 2 + 11 + 6


def test_every_record_is_read_once_and_nothing_else_is_scanned(world, scanned):
    _, data, _, records = world
    report, _ = scanned
    by_shard = {s["shard"]: s for s in report["shards"]}
    assert set(by_shard) == set(records)  # no index, scan output or metadata file among the shards
    assert len(report["shards"]) == len(records)  # each once
    for name, n in records.items():
        s = by_shard[name]
        assert s["status"] == "ok", s
        assert s["documents"] + s["errors"]["bad_records"] == n, name
        assert s["errors"]["bad_records"] == 0
    skipped = {(x["path"], x["reason"]) for x in report["totals"]["errors"]["skipped_files"]}
    assert (str(data / "old.index"), "contamscan index") in skipped
    assert (str(data / "old-scan"), "contamscan scan output") in skipped
    assert (str(data / "hf-disk" / "state.json"), "datasets metadata (save_to_disk)") in skipped
    assert (str(data / "hf-disk" / "dataset_info.json"), "datasets metadata (save_to_disk)") in skipped
    assert (str(data / "hub" / "README.md"), "unknown extension") in skipped


def test_exclude_globs_skip_files_by_relative_path_or_path(world, tmp_path):
    root, data, planted, records = world
    r = run_cli("scan", data, "--index", root / "refs.index", "-o", tmp_path / "out", "--workers", "1",
                "--exclude", "hub/*", "--exclude", str(data / "json" / "others.json"))
    assert r.returncode == EXIT_OK, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {s["shard"] for s in report["shards"]} == {k for k in records if not k.startswith("hub/")} - \
        {"json/others.json"}
    excluded = [x["path"] for x in report["totals"]["errors"]["skipped_files"] if x["reason"] == "excluded by `exclude`"]
    assert sorted(excluded) == sorted([str(data / "json" / "others.json")] +
                                      [str(data / "hub" / "data" / f"train-0000{k}-of-00002.parquet") for k in range(2)])
    assert report["totals"]["flagged_documents"] == sum(1 for k in planted if not k[0].startswith("hub/"))


def test_the_save_to_disk_folder_alone_and_the_hub_folder_alone(world, tmp_path):
    root, data, planted, _ = world
    for name in ("hf-disk", "hub"):
        r = run_cli("scan", data / name, "--index", root / "refs.index", "-o", tmp_path / name, "--workers", "1")
        assert r.returncode == EXIT_OK, r.stderr
        found = {(f"{name}/{r['shard']}", r["row"]): r["label"]
                 for r in pq.read_table(tmp_path / name / "matches.parquet").to_pylist()}
        assert found == {k: v for k, v in planted.items() if k[0].startswith(name + "/")}


def test_overlapping_inputs_are_scanned_once(world, tmp_path):
    root, data, planted, records = world
    r = run_cli("scan", data / "hf-disk", data / "hf-disk" / "data-00000-of-00002.arrow", str(data / "hub") + "/**/*.parquet",
                data / "hub", "--index", root / "refs.index", "-o", tmp_path / "out", "--workers", "1")
    assert r.returncode == EXIT_OK, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["shards"]) == 4  # two Arrow files, two Parquet files: each real file once
    assert report["totals"]["flagged_documents"] == sum(1 for k in planted if not k[0].startswith("json/"))
