"""Discovery's rules for what is not data: contamscan directories (by their manifest.json or
report.json), the JSON metadata of datasets.save_to_disk folders (by their state.json), and
--exclude globs; JSON files that only look alike stay shards."""

import json

import pytest

from contamscan.discover import discover


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)


def test_contamscan_directories_are_skipped_whole_and_look_alikes_are_not(tmp_path):
    _write(tmp_path / "style.profile" / "manifest.json", {"format": "contamscan-style-profile", "version": 1})
    _write(tmp_path / "style.profile" / "sub" / "x.jsonl", '{"text": "a"}\n')
    _write(tmp_path / "refs.index" / "manifest.json", {"format": "contamscan-index"})
    _write(tmp_path / "refs.index" / "refs.parquet", "not read")
    _write(tmp_path / "scan" / "report.json", {"tool": {"name": "contamscan"}, "totals": {}})
    _write(tmp_path / "other" / "manifest.json", {"format": "something-else"})  # data, as far as we know
    _write(tmp_path / "other" / "report.json", {"tool": {"name": "another-tool"}})
    _write(tmp_path / "other" / "state.json", {"no": "_data_files"})
    shards, skipped = discover([tmp_path])
    assert [s.relpath for s in shards] == ["other/manifest.json", "other/report.json", "other/state.json"]
    assert [(s.path, s.reason) for s in skipped] == [
        (str(tmp_path / "refs.index"), "contamscan index"), (str(tmp_path / "scan"), "contamscan scan output"),
        (str(tmp_path / "style.profile"), "contamscan style profile")]


def test_a_datasetdict_folder_keeps_its_arrow_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": f"t{i}"} for i in range(5)]),
                               "test": datasets.Dataset.from_list([{"text": "x"}])})
    dd.save_to_disk(str(tmp_path / "dd"))
    shards, skipped = discover([tmp_path / "dd"])
    assert [s.relpath for s in shards] == ["test/data-00000-of-00001.arrow", "train/data-00000-of-00001.arrow"]
    assert {s.format for s in shards} == {"arrow"}
    assert sorted((s.path.rsplit("/", 2)[-2:], s.reason) for s in skipped) == [
        (["dd", "dataset_dict.json"], "datasets metadata (save_to_disk)"),
        (["test", "dataset_info.json"], "datasets metadata (save_to_disk)"),
        (["test", "state.json"], "datasets metadata (save_to_disk)"),
        (["train", "dataset_info.json"], "datasets metadata (save_to_disk)"),
        (["train", "state.json"], "datasets metadata (save_to_disk)")]


def test_exclude_globs_match_relative_paths_and_paths(tmp_path):
    for rel in ("a/x.jsonl", "a/cache/y.jsonl", "b/z.jsonl"):
        _write(tmp_path / rel, '{"text": "a"}\n')
    shards, skipped = discover([tmp_path], exclude_globs=["*/cache/*", str(tmp_path / "b") + "/*"])
    assert [s.relpath for s in shards] == ["a/x.jsonl"]
    assert sorted(s.path for s in skipped if s.reason == "excluded by `exclude`") == \
        [str(tmp_path / "a" / "cache" / "y.jsonl"), str(tmp_path / "b" / "z.jsonl")]
