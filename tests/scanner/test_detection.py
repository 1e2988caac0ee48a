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
    return {m["doc_id"]: m for m in report.matches().to_pylist() if m["rank"] == 1}  # the strongest match


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


def test_heavily_edited_copies_are_found(tmp_path, refs, human, index):
    """A third of the words replaced still leaves the shared anchors on one diagonal."""
    rng = random.Random(8)
    edited = {f"e{i}": (r["id"], _edit(r["text"], rate, rng))
              for i, r in enumerate(refs[1:41]) for rate in [(0.2, 0.3)[i % 2]]}
    docs = [(k, t) for k, (_, t) in edited.items()] + [(f"h{i}", t) for i, t in enumerate(human[:100])]
    found = _scan(tmp_path, docs, index)
    assert not {k for k in found if k.startswith("h")}
    assert all(found[k]["ref_id"] == edited[k][0] for k in found)
    assert len(found) >= 0.9 * len(edited)


def test_short_passage_inside_a_long_human_document(tmp_path, refs, human, index):
    """300-600 characters (about 50-100 words) of a reference inside 5,000 characters of human text."""
    rng = random.Random(9)
    docs, truth = [], {}
    for i, ref in enumerate(refs[1:31]):
        host = (human[i % len(human)] * 2)[:5000]
        cut = host.rfind(" ", 0, rng.randrange(500, 4500)) + 1
        passage = _passage(ref["text"], rng.randrange(300, 600), rng)
        docs.append((f"d{i}", host[:cut] + passage + " " + host[cut:]))
        truth[f"d{i}"] = (ref["id"], cut, cut + len(passage))
    found = _scan(tmp_path, docs, index)
    assert len(found) >= 0.85 * len(truth)
    for doc_id, m in found.items():
        ref_id, start, end = truth[doc_id]
        assert m["ref_id"] == ref_id and start - 20 <= m["char_start"] < m["char_end"] <= end + 20


def test_every_source_of_a_document_is_reported(tmp_path, refs, human, index):
    """Passages of two references (two models) in one document, and three outputs joined:
    a row per source, strongest first; by_label counts the document once, by_label_any per model."""
    rng = random.Random(10)
    pairs = [(a, b) for a, b in zip(refs[1:21:2], refs[2:22:2]) if a["model"] != b["model"]][:6]
    docs, truth = [], {}
    for i, (a, b) in enumerate(pairs):
        host = human[i % len(human)][:4000]
        docs.append((f"two{i}", host[:1000] + _passage(a["text"], 900, rng) + "\n" + host[1000:3000]
                     + _passage(b["text"], 900, rng) + "\n" + host[3000:]))
        truth[f"two{i}"] = {a["id"], b["id"]}
    three = refs[30:33]
    docs.append(("three", "\n\n".join(r["text"] for r in three)))
    truth["three"] = {r["id"] for r in three}
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": [d[0] for d in docs], "text": [d[1] for d in docs]}), data / "part.parquet")
    report = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    rows = report.matches().to_pylist()
    got = {}
    for m in rows:
        got.setdefault(m["doc_id"], []).append(m)
    assert set(got) == set(truth)
    for doc_id, ms in got.items():
        assert [m["rank"] for m in ms] == list(range(1, len(ms) + 1))
        assert {m["ref_id"] for m in ms} == truth[doc_id], doc_id
    t = report.totals
    assert t["flagged_documents"] == len(truth) and sum(t["by_label"].values()) == len(truth)
    models = {r["id"]: r["model"] for r in refs}
    any_label = {}
    for doc_id, ids in truth.items():
        for model in {models[i] for i in ids}:
            any_label[model] = any_label.get(model, 0) + 1
    assert t["by_label_any"] == dict(sorted(any_label.items(), key=lambda kv: (-kv[1], kv[0])))


def test_a_quotation_of_known_human_text_flags_nothing(tmp_path, refs, human):
    """A model output that quotes a public-domain text (a Shakespeare scene) is indexed; a human
    document quoting the same scene is flagged without --known-human, and not with it: its
    match is kept as shared_with_known_human and counted nowhere. A copy of the output's own
    words is still flagged."""
    plays = [p for p in HUMAN if "shakespeare" in p.name]
    scenes = [x for x in pl.read_parquet(plays)["text"].to_list() if len(x) > 3000]
    rng = random.Random(11)
    quoting, docs = [], []
    for i, r in enumerate(refs[1:11]):
        scene = _passage(scenes[i], 1000, rng)
        cut = r["text"].find(". ", len(r["text"]) // 2) + 2
        quoting.append(dict(r, id=f"quoting-{i}", text=r["text"][:cut] + scene + " " + r["text"][cut:]))
        docs.append((f"quote{i}", human[i][:1500] + scene + " " + human[i][1500:3000]))
    docs.append(("copy", quoting[0]["text"]))  # the output itself, quotation and all
    root = tmp_path / "refs"
    root.mkdir()
    pq.write_table(pa.Table.from_pylist(quoting), root / "refs.parquet")
    plain = build_index([str(root / "refs.parquet")], tmp_path / "plain")
    knows = build_index([str(root / "refs.parquet")], tmp_path / "knows", known_human=[str(p) for p in plays])
    assert knows.summary().known_human_anchors > 0
    before = _scan(tmp_path / "a", docs, plain)
    assert {f"quote{i}" for i in range(10)} <= set(before)
    data = tmp_path / "b" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"id": [d[0] for d in docs], "text": [d[1] for d in docs]}), data / "part.parquet")
    report = scan([str(data)], knows, tmp_path / "b" / "out", ScanOptions(workers=1, write_clean=str(tmp_path / "clean")))
    kinds = {m["doc_id"]: m["kind"] for m in report.matches().to_pylist()}
    assert kinds.pop("copy") == "whole"
    assert set(kinds.values()) == {"shared_with_known_human"}
    assert report.totals["flagged_documents"] == 1 and report.totals["by_label"] == {quoting[0]["model"]: 1}
    assert pq.read_table(tmp_path / "clean" / "part.parquet").num_rows == len(docs) - 1
