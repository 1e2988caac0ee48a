"""Interop: contamscan signatures and LSH candidates equal datasketch's on real texts."""

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from contamscan.index import open_index
from contamscan.index.format import build_band_tables, save_index
from contamscan.config import IndexParams
from contamscan.sketch.lsh import band_keys, optimal_bands
from contamscan.sketch.interop import from_datasketch, to_datasketch
from contamscan.sketch.minhash import Hasher, char_spans, jaccard, permutations
from contamscan.sketch.text import shingle_hash, shingles


def datasketch_minhash(text, num_perm=128, seed=1, ngram=5):
    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=shingle_hash)
    m.update_batch(shingles(text, ngram))
    return m


def test_permutations_equal_datasketch():
    for num_perm, seed in ((128, 1), (64, 42), (256, 7)):
        a, b = permutations(num_perm, seed)
        m = MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
        assert np.array_equal(a, m.permutations[0]) and np.array_equal(b, m.permutations[1])


@pytest.mark.parametrize("num_perm,seed,ngram", [(128, 1, 5), (64, 42, 3)])
def test_signatures_bit_identical_on_real_texts(ai_texts, num_perm, seed, ngram):
    texts = ai_texts[:150]
    sigs = Hasher(num_perm, seed, ngram).signatures(texts)
    for i, t in enumerate(texts):
        m = datasketch_minhash(t, num_perm, seed, ngram)
        assert np.array_equal(sigs.values[i], m.hashvalues), i
        assert sigs.values.dtype == m.hashvalues.dtype == np.uint32


def test_export_import_datasketch(ai_texts):
    sig = Hasher().signature(ai_texts[0])
    lean = to_datasketch(sig)
    assert isinstance(lean, LeanMinHash)
    assert np.array_equal(from_datasketch(lean), sig)
    other = datasketch_minhash(ai_texts[1])
    assert lean.jaccard(other) == pytest.approx(jaccard(sig, from_datasketch(other)))


def test_optimal_bands_are_datasketch_choice():
    for t in (0.3, 0.5, 0.7, 0.9):
        lsh = MinHashLSH(threshold=t, num_perm=128)
        assert optimal_bands(t, 128) == (lsh.b, lsh.r)


def test_lsh_candidates_equal_datasketch(ai_table, tmp_path):
    """Index half of the real outputs; query with edited copies and unrelated texts: the
    candidate sets equal those of a datasketch MinHashLSH built from the same signatures."""
    texts = ai_table["text"].to_pylist()[:1200]
    refs, queries = texts[:600], texts[600:800]
    rng = np.random.default_rng(0)
    edited = []
    for t in refs[:200]:  # copies with ~15% of words replaced: partly similar
        w = t.split()
        for i in rng.choice(len(w), size=max(1, len(w) * 15 // 100), replace=False):
            w[i] = "zzz"
        edited.append(" ".join(w))
    queries = queries + edited + [r[: len(r) // 2] for r in refs[200:300]] + refs[300:350]
    hasher = Hasher()
    ref_sigs = hasher.signatures(refs).values
    q_sigs = hasher.signatures(queries).values

    import polars as pl

    for threshold in (0.5, 0.8):
        params = IndexParams(threshold=threshold)
        table = pl.DataFrame({"ref_id": [f"r{i}" for i in range(len(refs))], "label": ["m"] * len(refs),
                              "source": ["x"] * len(refs), "n_shingles": [1] * len(refs), "n_chars": [1] * len(refs)})
        save_index(tmp_path / f"ix{threshold}", params, table, ref_sigs)
        index = open_index(tmp_path / f"ix{threshold}")
        lsh = MinHashLSH(threshold=threshold, num_perm=128)
        for i, s in enumerate(ref_sigs):
            lsh.insert(i, MinHash(num_perm=128, seed=1, scheme="affine32", hashvalues=s))
        n_nonempty = 0
        for s in q_sigs:
            expected = set(lsh.query(MinHash(num_perm=128, seed=1, scheme="affine32", hashvalues=s)))
            assert index.candidates(s) == expected
            n_nonempty += bool(expected)
        assert n_nonempty > 50  # real hits beyond the 50 exact copies, not only empty sets
        # the compiled query agrees: best verified candidate among datasketch's candidates
        res = index.query(q_sigs)
        for i, s in enumerate(q_sigs):
            cands = index.candidates(s)
            assert res.n_candidates[i] == len(cands)
            if res.best_ref[i] >= 0:
                assert res.best_ref[i] in cands
                assert res.similarity[i] == pytest.approx(jaccard(s, ref_sigs[res.best_ref[i]]))
                assert res.similarity[i] >= threshold
            elif cands:
                assert max(jaccard(s, ref_sigs[c]) for c in cands) < threshold


def test_tag_collisions_are_not_candidates(tmp_path):
    """Band tables keep 16-bit tags of the keys: random signatures whose band key shares a
    reference's tag (and bucket) but not its band must not become candidates."""
    import polars as pl

    rng = np.random.default_rng(7)
    ref_sigs = rng.integers(0, 2**32, size=(8, 128), dtype=np.uint32)  # 8 refs: one bucket per band
    table = pl.DataFrame({"ref_id": [f"r{i}" for i in range(8)], "label": ["m"] * 8, "source": ["x"] * 8,
                          "n_shingles": [1] * 8, "n_chars": [1] * 8})
    save_index(tmp_path / "ix", IndexParams(), table, ref_sigs)
    index = open_index(tmp_path / "ix")
    assert index.dir_bits == 0
    ref_tags = {(b, int(k >> np.uint64(48))) for b in range(index.bands) for k in band_keys(ref_sigs, 25, 5)[:, b]}
    queries = rng.integers(0, 2**32, size=(20000, 128), dtype=np.uint32)
    q_keys = band_keys(queries, 25, 5)
    colliding = [i for i in range(len(queries))
                 if any((b, int(q_keys[i, b] >> np.uint64(48))) in ref_tags for b in range(index.bands))]
    assert len(colliding) >= 3  # ~20000 * 25 * 8 / 65536 expected
    res = index.query(queries[colliding])
    assert (res.n_candidates == 0).all() and (res.best_ref == -1).all()
    assert all(index.candidates(queries[i]) == set() for i in colliding)
    # and a reference itself is still its own candidate
    assert (index.query(ref_sigs).best_ref == np.arange(8)).all()


def test_band_tables_find_every_reference_in_its_bucket():
    sigs = np.random.default_rng(1).integers(0, 2**32, size=(5000, 128), dtype=np.uint32)
    tags, refs, directory = build_band_tables(sigs, 25, 5)
    bits = int(np.log2(directory.shape[1] - 1))
    assert directory[:, 0].tolist() == [0] * 25 and directory[:, -1].tolist() == [5000] * 25
    assert (np.diff(directory, axis=1) >= 0).all()
    keys = band_keys(sigs, 25, 5)
    for b in (0, 7, 24):
        assert sorted(refs[b].tolist()) == list(range(5000))  # every reference once per band
        # each reference sits in its key's top-bits bucket, tagged with the key's next 16 bits
        bucket = np.repeat(np.arange(directory.shape[1] - 1), np.diff(directory[b]))
        k = keys[refs[b], b]
        assert (k >> np.uint64(64 - bits) == bucket.astype(np.uint64)).all()
        assert (tags[b] == (k << np.uint64(bits)) >> np.uint64(48)).all()


def test_char_spans_skip_counting_in_ascii_texts_and_agree(ai_texts):
    """Character offsets of anchor spans: an ASCII text's are its byte offsets (no counting),
    and with or without that shortcut they are those Python's decoder gives."""
    texts = ai_texts[:30] + ["naïve café — “quoted” text with ünïcödé words, " * 20]
    s = Hasher(64, anchor_bits=2).signatures(texts)
    ascii_doc = [len(t.encode()) == len(t) for t in texts]
    assert any(ascii_doc) and not all(ascii_doc)  # both ways are taken
    a = s.anchors
    counted = char_spans(texts, a.doc, a.start, a.stop)
    known = char_spans(texts, a.doc, a.start, a.stop, s.n_chars)
    assert np.array_equal(counted[0], known[0]) and np.array_equal(counted[1], known[1])
    for i in range(0, len(a), 7):
        raw = texts[a.doc[i]].encode()
        assert known[0][i] == len(raw[:a.start[i]].decode()) and known[1][i] == len(raw[:a.stop[i]].decode())
