"""Index build: where each reference's label comes from (a field, one constant, the file's
directory), and references in chat form."""

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.cli import cli
from contamscan.config import BuildOptions
from contamscan.errors import ContamscanError, FieldMissingError
from contamscan.index import build_index


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, ai_table):
    """Real model outputs without a model field, one directory per model."""
    root = tmp_path_factory.mktemp("labels")
    t = ai_table.select(["id", "model", "text"])
    models = {"o3": "openai/o3", "kimi": "moonshotai/kimi-k2"}
    for d, model in models.items():
        part = t.filter(pc.equal(t["model"], model)).slice(0, 40).select(["id", "text"])
        (root / "refs" / d).mkdir(parents=True)
        pq.write_table(part.slice(0, 25), root / "refs" / d / "a.parquet")
        with open(root / "refs" / d / "b.jsonl", "w") as f:
            for r in part.slice(25).to_pylist():
                f.write(json.dumps(r) + "\n")
    return root


def test_label_from_path_names_each_reference_by_its_directory(unlabelled, tmp_path):
    r = CliRunner().invoke(cli, ["index", "build", str(unlabelled / "refs"), "-o", str(tmp_path / "ix"),
                                 "--label-from-path"])
    assert r.exit_code == 0, r.output
    ix = build_index([str(unlabelled / "refs")], tmp_path / "ix2", label_from_path=True)
    labels = ix.refs.group_by("label").len().sort("label").rows()
    assert labels == [("kimi", 40), ("o3", 40)]
    by_source = dict(zip(ix.refs["source"].to_list(), ix.refs["label"].to_list()))
    assert all(src.split("/")[0] == label for src, label in by_source.items())
    assert "kimi" in r.output and "o3" in r.output


def test_one_label_for_every_reference(unlabelled, tmp_path):
    r = CliRunner().invoke(cli, ["index", "build", str(unlabelled / "refs" / "o3"), "-o", str(tmp_path / "ix"),
                                 "--label", "openai/o3"])
    assert r.exit_code == 0, r.output
    ix = build_index([str(unlabelled / "refs" / "o3")], tmp_path / "ix2", label="openai/o3")
    assert set(ix.refs["label"].to_list()) == {"openai/o3"} and len(ix.refs) == 40


def test_an_absent_label_field_names_the_three_ways(unlabelled, tmp_path):
    with pytest.raises(FieldMissingError, match=r"'model' not found.*`label_field`.*`label`.*`label_from_path`"):
        build_index([str(unlabelled / "refs")], tmp_path / "ix")
    r = CliRunner().invoke(cli, ["index", "build", str(unlabelled / "refs"), "-o", str(tmp_path / "ix")])
    assert r.exit_code == 1
    assert "--label-field" in r.output and "--label-from-path" in r.output and "--label (one label" in r.output
    assert not (tmp_path / "ix").exists()
    with pytest.raises(ContamscanError, match="exclude each other"):
        BuildOptions(label="x", label_from_path=True)


def test_chat_form_references(tmp_path, ai_table):
    """References as chat SFT records: the assistant turns, joined, are the reference."""
    rows = ai_table.select(["id", "model", "text"]).slice(0, 60).to_pylist()
    with open(tmp_path / "refs.jsonl", "w") as f:
        for i, r in enumerate(rows):
            turns = [{"role": "user", "content": "Write an essay."}, {"role": "assistant", "content": r["text"]}]
            if i % 3 == 0:
                turns += [{"role": "user", "content": "Go on."}, {"role": "assistant", "content": "And so it ends."}]
            if i == 7:
                turns = turns[:1]  # no assistant turn: skipped as a bad record
            f.write(json.dumps({"id": r["id"], "meta": {"model": r["model"]}, "messages": turns}) + "\n")
    ix = build_index([str(tmp_path / "refs.jsonl")], tmp_path / "ix", text_field="messages[role=assistant].content",
                     label_field="meta.model", store_text=True)
    assert len(ix.refs) == 59
    texts = ix.texts.to_pylist()
    want = [r["text"] + ("\n\nAnd so it ends." if i % 3 == 0 else "") for i, r in enumerate(rows) if i != 7]
    assert texts == want
    assert ix.refs["label"].to_list() == [r["model"] for i, r in enumerate(rows) if i != 7]
    assert ix.manifest["counts"]["skipped"] == {"text_no_match": 1}
