"""Index and profile manifests (issue 15): the manifest checksummed, every opened file listed,
listed names plain, the index's parameters against its arrays, no pickled arrays."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HUMAN
from contamscan.errors import IndexFormatError, ProfileFormatError
from contamscan.index import build_index, open_index
from contamscan.io.artifact import MANIFEST_DIGEST, file_digest, manifest_self_digest
from contamscan.style.build import build_profile
from contamscan.style.profile import open_profile


@pytest.fixture(scope="module")
def built(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("artifact")
    pq.write_table(ai_table.slice(0, 120).select(["id", "model", "text"]), root / "refs.parquet")
    build_index([str(root / "refs.parquet")], root / "index", store_text=True)
    return root


def _copy(built, tmp_path):
    bad = tmp_path / "index"
    shutil.copytree(built / "index", bad)
    return bad


def _edit(path, change, resign=True):
    """Change the manifest; ``resign``: with a valid digest (as a contamscan would write it)."""
    m = json.loads((path / "manifest.json").read_text())
    change(m)
    if resign:
        m[MANIFEST_DIGEST] = manifest_self_digest(m)
    (path / "manifest.json").write_text(json.dumps(m, indent=1))


def _relist(path, name):
    """Record a replaced file's size and checksum in the manifest."""
    def change(m):
        m["files"][name] = {"bytes": (path / name).stat().st_size, "xxh3_128": file_digest(path / name)}
    _edit(path, change)


def test_a_new_manifest_carries_its_checksum_and_is_checked(built, tmp_path):
    m = json.loads((built / "index" / "manifest.json").read_text())
    assert m[MANIFEST_DIGEST] == manifest_self_digest(m)
    bad = _copy(built, tmp_path)
    _edit(bad, lambda m: m["counts"].update(refs=121), resign=False)  # one number, by hand
    with pytest.raises(IndexFormatError, match="manifest does not match its checksum.*rebuild the index"):
        open_index(bad)
    # re-laid out (indentation, key order) is the same manifest
    m = json.loads((built / "index" / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps(dict(reversed(list(m.items())))))
    assert len(open_index(bad)) == 120


def test_an_old_manifest_without_its_checksum_opens_when_the_rest_checks(built, tmp_path):
    bad = _copy(built, tmp_path)
    _edit(bad, lambda m: m.pop(MANIFEST_DIGEST), resign=False)
    assert len(open_index(bad)) == 120


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/passwd", "sub/x.npy", "..", "", ".hidden"])
def test_listed_names_must_be_plain(built, tmp_path, name):
    bad = _copy(built, tmp_path)
    (tmp_path / "outside.npy").write_bytes(b"secret")
    _edit(bad, lambda m: m["files"].update({name: {"bytes": 6, "xxh3_128": "0"}}))
    with pytest.raises(IndexFormatError) as err:
        open_index(bad)
    assert "not a plain name" in str(err.value) and "rebuild the index" in str(err.value)
    assert "outside" not in str(err.value) and "passwd" not in str(err.value)  # never described


@pytest.mark.parametrize("name", ["refs.parquet", "signatures.npy", "texts.arrow"])
def test_every_file_the_index_opens_is_listed(built, tmp_path, name):
    bad = _copy(built, tmp_path)
    _edit(bad, lambda m: m["files"].pop(name))
    with pytest.raises(IndexFormatError, match=f"{name} is not listed in its manifest; rebuild the index"):
        open_index(bad)


@pytest.mark.parametrize("what", ["num_perm", "bands", "refs", "signature rows", "band table"])
def test_parameters_are_checked_against_the_arrays(built, tmp_path, what):
    bad = _copy(built, tmp_path)
    if what == "num_perm":
        _edit(bad, lambda m: m["params"].update(num_perm=64))
    elif what == "bands":
        _edit(bad, lambda m: m["params"].update(bands=m["params"]["bands"] + 1))
    elif what == "refs":
        _edit(bad, lambda m: m["counts"].update(refs=119))
    elif what == "signature rows":
        np.save(bad / "signatures.npy", np.load(bad / "signatures.npy")[:100])
        _relist(bad, "signatures.npy")
    elif what == "band table":
        np.save(bad / "band_tags.npy", np.load(bad / "band_tags.npy")[:, :50])
        _relist(bad, "band_tags.npy")
    with pytest.raises(IndexFormatError, match="does not match its manifest.*rebuild the index"):
        open_index(bad)


def test_an_object_array_is_an_index_format_error(built, tmp_path):
    bad = _copy(built, tmp_path)
    np.save(bad / "anchor_stop.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    _relist(bad, "anchor_stop.npy")
    with pytest.raises(IndexFormatError, match="anchor_stop.npy is not an array of numbers.*rebuild the index"):
        open_index(bad)


@pytest.fixture(scope="module")
def profile(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("profile")
    pq.write_table(ai_table.slice(0, 300).select(["model", "text"]), root / "ai.parquet")
    pq.write_table(pq.read_table(HUMAN[0], columns=["text"]).slice(0, 300), root / "human.parquet")
    build_profile([str(root / "human.parquet")], [str(root / "ai.parquet")], root / "p", label_field="model")
    return root / "p"


def test_profile_manifest_checks(profile, tmp_path):
    m = json.loads((profile / "manifest.json").read_text())
    assert m[MANIFEST_DIGEST] == manifest_self_digest(m)
    for change, resign, message in (
            (lambda m: m["files"].pop("counts.parquet"), True, "counts.parquet is not listed in its manifest"),
            (lambda m: m["files"].update({"../x": {"bytes": 1, "xxh3_128": "0"}}), True, "not a plain name"),
            (lambda m: m["params"].update(seed=m["params"]["seed"] + 1), False, "does not match its checksum")):
        bad = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        shutil.copytree(profile, bad)
        _edit(bad, change, resign)
        with pytest.raises(ProfileFormatError, match=f"{message}.*rebuild the profile"):
            open_profile(bad)


def _rewrite(path, name, change):
    """Rewrite one of a profile's Parquet files through ``change`` (a dict of columns) and relist it."""
    t = pq.read_table(path / name).to_pydict()
    change(t)
    pq.write_table(pa.table(t, schema=pq.read_schema(path / name)), path / name)
    _relist(path, name)


@pytest.mark.parametrize("what", ["word id out of range", "unknown component", "unknown window", "negative count",
                                  "params unknown key", "component without a kind"])
def test_profile_tables_are_checked_against_the_manifest(profile, tmp_path, what):
    bad = tmp_path / "p"
    shutil.copytree(profile, bad)
    if what == "word id out of range":
        _rewrite(bad, "counts.parquet", lambda t: t["word_id"].__setitem__(0, 10**6))
    elif what == "unknown component":
        _rewrite(bad, "components.parquet", lambda t: t["component"].__setitem__(0, "nobody"))
    elif what == "unknown window":
        _rewrite(bad, "counts.parquet", lambda t: t["window"].__setitem__(0, 9999))
    elif what == "negative count":
        _rewrite(bad, "counts.parquet", lambda t: t["windows_with_word"].__setitem__(0, -5.0))
    elif what == "params unknown key":
        _edit(bad, lambda m: m["params"].update(bogus=1))
    elif what == "component without a kind":
        _edit(bad, lambda m: m["components"][0].pop("kind"))
    with pytest.raises(ProfileFormatError, match="rebuild the profile"):
        open_profile(bad)
