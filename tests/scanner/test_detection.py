"""Detection quality on real text: passages inside human documents, edited copies, repeated
stock phrases, ambiguous attribution, and the exact check against stored reference text."""

import random

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contamscan.config import IndexParams, ScanOptions
from contamscan.errors import ContamscanError
from contamscan.index import build_index
from contamscan import scan
from contamscan.sketch.text import words

from conftest import HUMAN


@pytest.fixture(scope="module")
def refs(ai_table):
    """60 indexed outputs (different prompts, several models), plus one text indexed twice
    under two labels: a reference that two models share."""
    rows = ai_table.select(["id", "model", "text"]).slice(0, 3000).to_pylist()[::50]
    twin = dict(rows[0], id="twin-of-" + rows[0]["id"], model="some/other-model")
    return rows + [twin]


@pytest.fixture(scope="module")
def human():
    t = pl.read_parquet([p for p in HUMAN if "essays" in p.name or "state_union" in p.name])
    return [x for x in t["text"].to_list() if len(x) > 4000]


@pytest.fixture(scope="module")
def index(tmp_path_factory, refs):
    root = tmp_path_factory.mktemp("detect")
    pq.write_table(pa.Table.from_pylist(refs), root / "refs.parquet")
    return build_index([str(root / "refs.parquet")], root / "index", store_text=True)


def _scan(tmp_path, docs, index, **opts):
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [d[0] for d in docs], "text": [d[1] for d in docs]}), data / "part.parquet")
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1, **opts))
    return {m["doc_id"]: m for m in report.matches().to_pylist()}


def _passage(text: str, chars: int, rng: random.Random) -> str:
    """About ``chars`` characters of ``text``, from one sentence start to a sentence end."""
    starts = [i + 2 for i in range(len(text) - 2) if text[i] in ".!?" and text[i + 1] == " "]
    start = rng.choice([s for s in starts if s < len(text) - chars] or [0])
    end = text.find(". ", start + chars)
    return text[start:end + 1 if end > 0 else start + chars]


def _edit(text: str, rate: float, rng: random.Random) -> str:
    w = text.split(" ")
    for i in rng.sample(range(len(w)), int(rate * len(w))):
        w[i] = rng.choice(["however", "indeed", "perhaps", "notably", "quite"])
    return " ".join(w)


def test_passage_inside_human_text_is_found_with_its_span(tmp_path, refs, human, index):
    rng = random.Random(4)
    docs, truth = [], {}
    for i, ref in enumerate(refs[1:21]):
        host = human[i % len(human)][:3000]
        cut = host.rfind("\n", 0, 1500) + 1 or 1500
        passage = _passage(ref["text"], 1200, rng)
        doc = host[:cut] + passage + "\n" + host[cut:]
        docs.append((f"d{i}", doc))
        truth[f"d{i}"] = (ref["id"], cut, cut + len(passage))
    found = _scan(tmp_path, docs, index)
    assert set(found) == set(truth)
    overlap = []
    for doc_id, (ref_id, start, end) in truth.items():
        m = found[doc_id]
        assert m["ref_id"] == ref_id and m["kind"] == "partial"
        assert m["similarity"] < 0.5  # a minority of the document: whole-document Jaccard misses it
        assert 0.03 < m["containment"] < 0.6  # a part of the reference
        inter = max(0, min(end, m["char_end"]) - max(start, m["char_start"]))
        overlap.append(inter / (max(end, m["char_end"]) - min(start, m["char_start"])))
    # the span runs from the first to the last shared anchor (about one in 16 shingles), so
    # it falls short of the passage's ends by some words: close, not exact
    assert min(overlap) > 0.4 and sum(overlap) / len(overlap) > 0.75


def test_edited_copies_and_human_text(tmp_path, refs, human, index):
    rng = random.Random(5)
    edited = {f"e{i}": (r["id"], _edit(r["text"], 0.10, rng)) for i, r in enumerate(refs[1:31])}
    docs = [(k, t) for k, (_, t) in edited.items()] + [(f"h{i}", t) for i, t in enumerate(human[:200])]
    found = _scan(tmp_path, docs, index)
    assert set(found) == set(edited)  # every edited copy; no human document
    assert all(found[k]["ref_id"] == ref_id for k, (ref_id, _) in edited.items())


def test_a_repeated_phrase_counts_once(tmp_path, refs, human, index):
    """Text that repeats a stretch of a reference many times (boilerplate, a looping
    generation) is not a copy of it: each shared anchor counts once."""
    rng = random.Random(6)
    docs = []
    for i, ref in enumerate(refs[1:11]):
        w = ref["text"].split()
        start = rng.randrange(0, len(w) - 20)
        stretch = " ".join(w[start:start + 20])  # ~2 anchors: too few once, and as few repeated
        docs.append((f"r{i}", human[i][:1500] + (" " + stretch) * 25))
    assert _scan(tmp_path, docs, index) == {}


def test_a_reference_two_models_share_is_ambiguous(tmp_path, refs, index):
    found = _scan(tmp_path, [("copy", refs[0]["text"]), ("other", refs[1]["text"])], index)
    m = found["copy"]
    assert m["ambiguous"] and {m["label"], m["alt_label"]} == {refs[0]["model"], "some/other-model"}
    assert not found["other"]["ambiguous"] and found["other"]["alt_label"] is None


def test_exact_check_against_stored_text(tmp_path, refs, human, index):
    rng = random.Random(7)
    ref = refs[3]
    passage = _passage(ref["text"], 1200, rng)
    host = human[0][:3000]
    docs = [("copy", ref["text"]), ("passage", host[:1500] + passage + host[1500:])]
    est = _scan(tmp_path / "a", docs, index)
    ex = _scan(tmp_path / "b", docs, index, verify="exact")
    assert set(ex) == set(est) == {"copy", "passage"}
    assert ex["copy"]["similarity"] == ex["copy"]["containment"] == 1.0
    text, start, end = ref["text"], ex["copy"]["char_start"], ex["copy"]["char_end"]
    # from the first word to the last: only markup and punctuation outside
    assert not any(c.isalnum() for c in text[:start] + text[end:]) and text[start].isalnum() and text[end - 1].isalnum()
    p = ex["passage"]
    shared = len(words(passage)) - 4  # 5-word shingles of the passage
    assert p["containment"] == pytest.approx(shared / (len(words(ref["text"])) - 4), rel=0.05)
    # the span of shared shingles: the passage, give or take the punctuation at its ends
    assert abs(p["char_start"] - 1500) <= 15 and abs(p["char_end"] - (1500 + len(passage))) <= 15


def test_exact_check_needs_stored_text(tmp_path, refs):
    pq.write_table(pa.Table.from_pylist(refs[:5]), tmp_path / "refs.parquet")
    ix = build_index([str(tmp_path / "refs.parquet")], tmp_path / "ix", params=IndexParams())
    with pytest.raises(ContamscanError, match="`store_text`"):  # the library names its own option
        _scan(tmp_path, [("x", "some text")], ix, verify="exact")
