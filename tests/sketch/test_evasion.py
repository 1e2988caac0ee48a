"""Evasions by invisible and look-alike characters (issue 16), on real model outputs: each
perturbed copy normalises to the original's shingles, and a scan finds it as a whole copy of
the right reference. An index or profile built with normalisation v1 is refused."""

import json
import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ESSAYS

from contamscan import scan
from contamscan.config import ScanOptions
from contamscan.errors import IndexFormatError, ProfileFormatError
from contamscan.index import build_index, open_index
from contamscan.io.artifact import manifest_self_digest
from contamscan.sketch.minhash import Hasher
from contamscan.sketch.text import NORMALIZATION, shingles
from contamscan.style import build_profile, open_profile

V1 = "nfkd-casefold-nomarks-v1"

# Latin letters and the Cyrillic / Greek letters an evasion puts in their place
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і", "j": "ј", "s": "ѕ",
              "d": "ԁ", "q": "ԛ", "w": "ԝ", "h": "һ", "v": "ν", "t": "τ", "k": "κ", "u": "υ",
              "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р", "T": "Т",
              "X": "Х", "I": "І", "Z": "Ζ", "c": "ϲ"}  # not Greek Ν for N: it folds as ν, to v
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202a", "\u2066", "\u180e", "\U000e0041"]


def _in_words(text: str, rng: random.Random, put, share: float = 1.0, min_len: int = 2) -> str:
    out = []
    for w in text.split(" "):
        out.append(put(w) if len(w) >= min_len and rng.random() < share else w)
    return " ".join(out)


def _inside(ch):
    def put(w):
        k = len(w) // 2
        return w[:k] + ch + w[k:]
    return put


def _soft_hyphens(w):  # a hyphenation point every 3 letters of a long word
    return "\u00ad".join(w[i:i + 3] for i in range(0, len(w), 3))


def _homoglyphs(w):
    return "".join(HOMOGLYPHS.get(c, c) for c in w)


def _random_invisible(rng):
    def put(w):
        k = rng.randrange(1, len(w))
        return w[:k] + rng.choice(INVISIBLE) + w[k:]
    return put


def perturbations(text: str, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        "zwsp_every_word": _in_words(text, rng, _inside("\u200b")),
        "soft_hyphens": _in_words(text, rng, _soft_hyphens, min_len=7),
        "word_joiner": _in_words(text, rng, _inside("\u2060")),
        "bom": _in_words(text, rng, _inside("\ufeff")),
        "any_invisible": _in_words(text, rng, _random_invisible(rng)),
        "homoglyphs_10pct": _in_words(text, rng, _homoglyphs, share=0.1, min_len=1),
        "homoglyphs_all": _in_words(text, rng, _homoglyphs, min_len=1),
        "all_together": _in_words(_in_words(_in_words(text, rng, _homoglyphs, min_len=1), rng, _soft_hyphens, min_len=7),
                                  rng, _inside("\u200b")),
    }


@pytest.fixture(scope="module")
def refs(ai_table):
    rows = ai_table.select(["id", "model", "text"]).to_pylist()[::150]
    return [r for r in rows if len(r["text"]) > 1500][:30]


@pytest.fixture(scope="module")
def index(tmp_path_factory, refs):
    root = tmp_path_factory.mktemp("evasion")
    pq.write_table(pa.Table.from_pylist(refs), root / "refs.parquet")
    return build_index([str(root / "refs.parquet")], root / "index", label_field="model")


def test_perturbed_copies_normalise_to_the_originals_shingles(refs):
    hasher = Hasher(num_perm=128)
    for i, r in enumerate(refs[:10]):
        want = shingles(r["text"])
        for kind, text in perturbations(r["text"], i).items():
            assert text != r["text"]
            assert shingles(text) == want, kind
        sig = hasher.signatures([r["text"], *perturbations(r["text"], i).values()]).values
        assert (sig == sig[0]).all(), "the kernel agrees with the reference normalisation"


def test_scan_finds_every_perturbed_copy_whole(tmp_path, refs, index):
    docs = [(f"{kind}/{r['id']}", text) for i, r in enumerate(refs) for kind, text in perturbations(r["text"], i).items()]
    human = pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()[:40]
    docs += [(f"human/{k}", t) for k, t in enumerate(human)]
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": [d for d, _ in docs], "text": [t for _, t in docs]}), data / "part.parquet")
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    found = {m["doc_id"]: m for m in report.matches().to_pylist()}
    models = {r["id"]: r["model"] for r in refs}
    missed = [d for d, _ in docs if not d.startswith("human/") and d not in found]
    assert not missed
    for doc_id, m in found.items():
        assert not doc_id.startswith("human/"), doc_id
        ref = doc_id.split("/", 1)[1]
        assert (m["ref_id"], m["label"], m["kind"]) == (ref, models[ref], "whole"), doc_id
        assert m["similarity"] == 1.0, doc_id


def _as_v1(src, dst, key: str):
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    if key == "params":
        manifest["params"]["normalization"] = V1
    else:
        manifest["normalization"] = f"{V1} (Unicode 14.0.0)"
    manifest["manifest_xxh3_128"] = manifest_self_digest(manifest)  # as that contamscan wrote it
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_index_of_the_old_normalisation_is_refused(tmp_path, index):
    old = _as_v1(index.path, tmp_path / "old.index", "params")
    with pytest.raises(IndexFormatError) as e:
        open_index(old)
    assert "rebuild the index" in str(e.value) and V1 in str(e.value) and NORMALIZATION in str(e.value)


def test_profile_of_the_old_normalisation_is_refused(tmp_path, ai_table):
    ai = ai_table.select(["id", "model", "text"]).slice(0, 300).to_pylist()
    pq.write_table(pa.Table.from_pylist(ai), tmp_path / "ai.parquet")
    profile = build_profile([str(ESSAYS)], [str(tmp_path / "ai.parquet")], tmp_path / "profile")
    assert profile.manifest["normalization"].startswith(NORMALIZATION + " (Unicode ")
    old = _as_v1(tmp_path / "profile", tmp_path / "old.profile", "manifest")
    with pytest.raises(ProfileFormatError) as e:
        open_profile(old)
    assert "rebuild the profile" in str(e.value) and V1 in str(e.value) and NORMALIZATION in str(e.value)
    assert np.isfinite(open_profile(tmp_path / "profile").counts).all()
