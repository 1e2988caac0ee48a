"""Index maintenance: `index add` and `index merge` give the index a single build would."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import HUMAN
from contamscan.cli import cli
from contamscan.config import IndexParams
from contamscan.errors import ContamscanError
from contamscan.index.format import ARRAYS
from contamscan.index import add_to_index, build_index, compact_index, merge_indexes, open_index


def _same_index(a, b):
    for name in ARRAYS:
        assert np.array_equal(np.asarray(getattr_array(a, name)), np.asarray(getattr_array(b, name))), name
    assert a.refs.drop("source").equals(b.refs.drop("source"))
    assert (a.texts is None) == (b.texts is None)
    if a.texts is not None:
        assert a.texts.to_pylist() == b.texts.to_pylist()


def getattr_array(ix, name):
    return np.load(ix.path / f"{name}.npy")


@pytest.fixture(scope="module")
def parts(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("ops")
    t = ai_table.select(["id", "model", "text"]).slice(0, 600)
    for i in range(3):
        pq.write_table(t.slice(200 * i, 200), root / f"refs-{i}.parquet")
    # stock phrases: a low cap so that some anchors are dropped in the parts and in the whole
    params = IndexParams(max_anchor_refs=3)
    whole = build_index([str(root / f"refs-{i}.parquet") for i in range(3)], root / "whole", params=params,
                        store_text=True)
    return root, params, whole


def test_merge_equals_one_build(parts, tmp_path):
    root, params, whole = parts
    ixs = [build_index([str(root / f"refs-{i}.parquet")], tmp_path / f"p{i}", params=params, store_text=True)
           for i in range(3)]
    merged = merge_indexes(ixs, tmp_path / "merged")
    _same_index(merged, whole)
    assert merged.manifest["counts"]["common_anchors_dropped"] == whole.manifest["counts"]["common_anchors_dropped"] > 0
    open_index(tmp_path / "merged")  # checksums verify


def test_add_in_place_and_cli(parts, tmp_path):
    root, params, whole = parts
    r = CliRunner().invoke(cli, ["index", "build", str(root / "refs-0.parquet"), "-o", str(tmp_path / "ix"),
                                 "--store-text"])
    assert r.exit_code == 0, r.output
    # the CLI builds with default params; compare with a default-params build of everything
    full = build_index([str(root / f"refs-{i}.parquet") for i in range(3)], tmp_path / "full", store_text=True)
    r = CliRunner().invoke(cli, ["index", "add", str(tmp_path / "ix"), str(root / "refs-1.parquet")])
    assert r.exit_code == 0, r.output
    add_to_index(tmp_path / "ix", [str(root / "refs-2.parquet")])
    assert len(open_index(tmp_path / "ix").segments) == 3  # (tests/index/test_segments.py: same answers)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    # adding references that are already there: ids must stay unique
    manifest = (tmp_path / "ix" / "manifest.json").read_bytes()
    with pytest.raises(ContamscanError, match="not unique"):
        add_to_index(tmp_path / "ix", [str(root / "refs-2.parquet")])
    assert (tmp_path / "ix" / "manifest.json").read_bytes() == manifest  # untouched
    _same_index(compact_index(tmp_path / "ix"), full)  # one segment: the files of one build


def test_merge_refuses_different_parameters(parts, tmp_path):
    root, params, whole = parts
    other = build_index([str(root / "refs-0.parquet")], tmp_path / "o", params=IndexParams(ngram=4))
    with pytest.raises(ContamscanError, match="ngram: 5 vs 4"):
        merge_indexes([whole, other], tmp_path / "m")
    r = CliRunner().invoke(cli, ["index", "merge", str(whole.path), str(other.path), "-o", str(tmp_path / "m2")])
    assert r.exit_code == 1 and "parameters differ" in r.output
    with pytest.raises(ContamscanError, match="one of the indexes"):
        merge_indexes([whole, whole], whole.path)


def test_known_human_text_added_later_equals_giving_it_at_build(parts, tmp_path):
    """`index add INDEX --known-human PATH` (no references) marks the same anchors as
    `index build ... --known-human PATH`; with neither references nor text it is a usage error."""


    root, params, _ = parts
    refs = [str(root / f"refs-{i}.parquet") for i in range(3)]
    human = [str(p) for p in HUMAN]
    at_build = build_index(refs, tmp_path / "at-build", params=params, known_human=human)
    assert len(at_build.anchor_human) > 0
    later = build_index(refs, tmp_path / "later", params=params)
    assert len(later.anchor_human) == 0
    res = CliRunner().invoke(cli, ["index", "add", str(tmp_path / "later"), *(a for p in human for a in ("--known-human", p))])
    assert res.exit_code == 0, res.output
    assert "known human" in res.output
    assert np.array_equal(open_index(tmp_path / "later").anchor_human, at_build.anchor_human)
    _same_index(compact_index(tmp_path / "later"), at_build)
    res = CliRunner().invoke(cli, ["index", "add", str(tmp_path / "later")])
    assert res.exit_code == 2 and "give references (REFS) or --known-human" in res.output
