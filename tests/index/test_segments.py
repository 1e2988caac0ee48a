"""Indexes at scale (issue 19): built out of core, grown by segments (`index add` rewrites
nothing), checked on open by sizes and headers; every query answers as one build would."""

import dataclasses
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import HUMAN
from contamscan.cli import cli
from contamscan.config import IndexParams
from contamscan.errors import IndexFormatError
from contamscan.index import add_to_index, build_index, compact_index, merge_indexes, open_index
from contamscan.index import format as fmt
from contamscan.index.format import ARRAYS, anchor_keys32, save_index
from contamscan.io import artifact
from contamscan.scanner.matcher import Matcher

TINY = 1 << 14  # bytes: every spill, every key range, partitioned again and again


@pytest.fixture(scope="module")
def refs(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("segments")
    t = ai_table.select(["id", "model", "text"]).slice(0, 900)
    for i in range(3):
        pq.write_table(t.slice(300 * i, 300), root / f"refs-{i}.parquet")
    # a low cap: anchors are dropped as common within a part and only across parts
    params = IndexParams(max_anchor_refs=3)
    full = build_index([str(root / f"refs-{i}.parquet") for i in range(3)], root / "full", params=params,
                       store_text=True, known_human=[str(HUMAN[0])])
    probe = pa.array(t["text"].to_pylist()[::4] + [t["text"][5].as_py()[: 600] + " and then something else",
                                                   "a text about nothing in particular"], pa.large_string())
    return root, params, full, probe


def _same_answers(a, b, probe):
    """Every query of a scan gives the same answers from the two indexes."""
    h = a.hasher()
    s = h.signatures(probe)
    qa, qb = a.query(s.values), b.query(s.values)
    for f in qa.__dataclass_fields__:
        assert np.array_equal(getattr(qa, f), getattr(qb, f)), f
    pa_, pb = a.partial(s.anchors, len(probe), 3, 0.5, more=3), b.partial(s.anchors, len(probe), 3, 0.5, more=3)
    for f in pa_.__dataclass_fields__:
        assert np.array_equal(getattr(pa_, f), getattr(pb, f)), f
    assert np.array_equal(a.known_human(s.anchors.key), b.known_human(s.anchors.key))
    assert np.array_equal(a.ref_anchors, b.ref_anchors)
    assert np.array_equal(np.asarray(a.signatures), np.asarray(b.signatures))
    assert np.array_equal(np.asarray(a.anchor_stop), np.asarray(b.anchor_stop))
    assert np.array_equal(np.asarray(a.anchor_human), np.asarray(b.anchor_human))
    assert a.refs.drop("n_anchors").equals(b.refs.drop("n_anchors"))
    assert a.texts.to_pylist() == b.texts.to_pylist()
    ka, kb = a.anchors(), b.anchors()
    oa, ob = np.lexsort((ka[1], ka[0])), np.lexsort((kb[1], kb[0]))
    for x, y in zip(ka, kb):
        assert np.array_equal(x[oa], y[ob])
    for k in ("refs", "labels", "anchors", "common_anchors_dropped", "known_human_anchors"):
        assert a.manifest["counts"][k] == b.manifest["counts"][k], k
    ma, mb = Matcher(a).match(probe), Matcher(b).match(probe)
    assert ma.equals(mb)
    assert len(ma) > 0


def _same_files(a, b):
    for name in ARRAYS:
        assert (a / f"{name}.npy").read_bytes() == (b / f"{name}.npy").read_bytes(), name
    assert pl.read_parquet(a / "refs.parquet").drop("source").equals(pl.read_parquet(b / "refs.parquet").drop("source"))


def test_out_of_core_build_is_the_in_memory_one(refs, tmp_path):
    """A build whose memory budget forces many spills and key ranges partitioned again writes
    the arrays save_index writes from everything in memory, byte for byte."""
    root, params, full, _ = refs
    paths = [str(root / f"refs-{i}.parquet") for i in range(3)]
    tiny = build_index(paths, tmp_path / "tiny", params=params, store_text=True, known_human=[str(HUMAN[0])],
                       memory=TINY)
    _same_files(tiny.path, full.path)
    # the in-memory writer, from the same signatures and anchors
    h = full.hasher()
    t = pl.concat([pl.read_parquet(p) for p in paths])
    s = h.signatures(pa.array(t["text"].to_list(), pa.large_string()))
    table = pl.DataFrame({"ref_id": t["id"].cast(pl.String), "label": t["model"], "source": [""] * len(t),
                          "n_shingles": s.n_shingles, "n_chars": s.n_chars, "text": t["text"]})
    from contamscan.index.build import BuildOptions, known_human_keys
    human = known_human_keys([str(HUMAN[0])], BuildOptions(), h)
    save_index(tmp_path / "mem", params, table, s.values, anchor_keys32(s.anchors.key), s.anchors.doc,
               s.anchors.word, human_keys=human)
    _same_files(tmp_path / "mem", full.path)


def test_lookups_for_tables_beyond_the_caches_answer_the_same(refs):
    """A table larger than the CPU caches is read another way (each chunk's band and anchor
    lookups touched first): the answers are the same."""
    _, _, full, probe = refs
    assert not full._touch  # a small index: the plain lookups
    big = open_index(full.path)
    big._touch = True
    _same_answers(big, full, probe)


def test_add_writes_a_segment_and_answers_as_one_build(refs, tmp_path):
    root, params, full, probe = refs
    ix = build_index([str(root / "refs-0.parquet")], tmp_path / "ix", params=params, store_text=True)
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns, f.read_bytes()) for f in ix.path.iterdir()}
    r = CliRunner().invoke(cli, ["index", "add", str(ix.path), str(root / "refs-1.parquet"),
                                 "--known-human", str(HUMAN[0])])
    assert r.exit_code == 0, r.output
    assert "2 segments" in r.output
    after = {f.name: f for f in ix.path.iterdir()}
    for name, (ino, mtime, data) in before.items():  # nothing there before is rewritten but the manifest
        if name != "manifest.json":
            assert (after[name].stat().st_ino, after[name].stat().st_mtime_ns) == (ino, mtime), name
            assert after[name].read_bytes() == data
    assert sorted(set(after) - set(before)) == sorted(["s1.refs.parquet", "s1.texts.arrow", "s1.anchor_drop.npy",
                                                       *(f"s1.{a}.npy" for a in ARRAYS)])
    # known human text covers the references there when it is given: again for the new ones
    grown = add_to_index(ix.path, [str(root / "refs-2.parquet")], memory=TINY, known_human=[str(HUMAN[0])])
    assert len(grown.segments) == 3
    _same_answers(grown, full, probe)
    assert not [p for p in ix.path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    # the checksums of the new files are in the manifest
    open_index(ix.path, verify="all")
    # compact: one segment, the files of one build
    r = CliRunner().invoke(cli, ["index", "compact", str(ix.path)])
    assert r.exit_code == 0, r.output
    one = open_index(ix.path)
    assert len(one.segments) == 1 and one.manifest["segments"] == [{"prefix": "", "refs": 900}]
    _same_files(one.path, full.path)
    assert sorted(p.name for p in one.path.iterdir()) == sorted(
        ["manifest.json", "refs.parquet", "texts.arrow", *(f"{a}.npy" for a in ARRAYS)])


def test_merge_of_segmented_indexes(refs, tmp_path):
    root, params, full, probe = refs
    a = build_index([str(root / "refs-0.parquet")], tmp_path / "a", params=params, store_text=True)
    a = add_to_index(a, [str(root / "refs-1.parquet")])
    b = build_index([str(root / "refs-2.parquet")], tmp_path / "b", params=params, store_text=True,
                    known_human=[str(HUMAN[0])])
    a = add_to_index(a, [], known_human=[str(HUMAN[0])])  # a segment of known human keys only
    assert len(a.segments) == 3 and a.segments[2].n == 0
    m = merge_indexes([a, b], tmp_path / "m", memory=TINY)
    assert len(m.segments) == 1
    _same_answers(m, full, probe)


def test_a_version_4_index_opens(refs, tmp_path):
    """A version 4 index (one directory, no segment list) opens as one segment."""
    root, params, full, probe = refs
    ix = build_index([str(root / "refs-0.parquet")], tmp_path / "v4", params=params, store_text=True)
    m = json.loads((ix.path / "manifest.json").read_text())
    m["version"] = 4
    del m["segments"]
    m[artifact.MANIFEST_DIGEST] = artifact.manifest_self_digest(m)
    (ix.path / "manifest.json").write_text(json.dumps(m))
    old = open_index(ix.path)
    assert len(old.segments) == 1 and len(old) == 300
    grown = add_to_index(old, [str(root / "refs-1.parquet"), str(root / "refs-2.parquet")])
    assert grown.manifest["version"] == fmt.FORMAT_VERSION
    assert len(grown.segments) == 2


def test_open_checks_sizes_headers_and_small_files(refs, tmp_path, monkeypatch):
    root, params, full, _ = refs
    ix = build_index([str(root / "refs-0.parquet")], tmp_path / "ix", params=params)
    add_to_index(ix, [str(root / "refs-1.parquet")])
    # a truncated array of a segment: refused by its size, whatever the verification
    p = ix.path / "s1.anchor_tags.npy"
    data = p.read_bytes()
    p.write_bytes(data[:-2])
    for verify in (True, False):
        with pytest.raises(IndexFormatError, match=r"s1.anchor_tags.npy has .* bytes.*truncated"):
            open_index(ix.path, verify=verify)
    p.write_bytes(data)
    # a byte changed inside: a small file's checksum is checked on open; above LAZY_ABOVE
    # only by verify="all" (`index info --verify`)
    sig = ix.path / "s1.signatures.npy"
    good = sig.read_bytes()
    bad = bytearray(good)
    bad[-1] ^= 1
    sig.write_bytes(bytes(bad))
    with pytest.raises(IndexFormatError, match="checksum mismatch for s1.signatures.npy"):
        open_index(ix.path)
    monkeypatch.setattr(fmt, "KIND", dataclasses.replace(fmt.KIND, lazy_above=1000))
    open_index(ix.path)  # the arrays are large now: sizes and headers only
    with pytest.raises(IndexFormatError, match="checksum mismatch for s1.signatures.npy"):
        open_index(ix.path, verify="all")
    r = CliRunner().invoke(cli, ["index", "info", str(ix.path), "--verify"])
    assert r.exit_code == 1 and "checksum mismatch" in r.output
    sig.write_bytes(good)
    # an array of the right size and another shape: the header says so
    tags = np.load(ix.path / "s1.band_tags.npy")
    np.save(ix.path / "s1.band_tags.npy", tags.reshape(tags.shape[1], tags.shape[0]))
    with pytest.raises(IndexFormatError, match="band_tags has shape.*rebuild the index"):
        open_index(ix.path, verify=False)


def test_an_interrupted_add_leaves_the_index_as_it_was(refs, tmp_path, monkeypatch):
    root, params, full, probe = refs
    ix = build_index([str(root / "refs-0.parquet")], tmp_path / "ix", params=params, store_text=True)
    manifest = (ix.path / "manifest.json").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        add_to_index(ix, [str(root / "refs-1.parquet")])
    monkeypatch.undo()
    assert (ix.path / "manifest.json").read_bytes() == manifest
    assert len(open_index(ix.path)) == 300  # the files written are not listed: not read
    grown = add_to_index(ix.path, [str(root / "refs-1.parquet"), str(root / "refs-2.parquet")])  # same prefix again
    assert len(grown) == 900
