"""Style profiles and the AI-written share (scan --profile), on real model outputs and human text."""

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.scanner.checkpoint import Checkpoints
from contamscan.cli import cli
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError
from contamscan.index import build_index
from contamscan.sketch.words import word_hashes
from contamscan.config import ProfileParams
from contamscan.style import (StyleTally, build_profile, family_of, fit_mixture, open_cached, open_profile,
                                parse_family_rules)
from contamscan.style.estimate import debias, estimate
from contamscan.style.profile import organisation_of
from contamscan import scan
from contamscan.sketch.text import shingle_hash, words
from conftest import HUMAN

AI_POLISHED = ("TOEFL_gpt4polished", "HewlettStudentEssay_GPTsimplif")


@pytest.fixture(scope="module")
def split(ai_table):
    """Profile and test halves: AI outputs split by prompt, human text split per source."""
    rng = random.Random(7)
    ai = [r for r in ai_table.select(["id", "model", "prompt_index", "text"]).to_pylist() if r["text"]]
    human = []
    for p in HUMAN:
        human += [r for r in pq.read_table(p, columns=["id", "source", "text"]).to_pylist()
                  if r["text"] and not r["source"].startswith(AI_POLISHED)]
    rng.shuffle(human)
    prof_prompts = set(rng.sample(range(300), 150))
    a_prof = [r for r in ai if r["prompt_index"] in prof_prompts]
    a_test = [r for r in ai if r["prompt_index"] not in prof_prompts]
    rng.shuffle(a_prof)
    rng.shuffle(a_test)
    return {"h_prof": human[::2], "h_test": human[1::2], "a_prof": a_prof[:900], "a_test": a_test}


@pytest.fixture(scope="module")
def built(tmp_path_factory, split):
    root = tmp_path_factory.mktemp("profile")
    pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("id", "source", "text")} for r in split["h_prof"]]),
                   root / "human.parquet")
    pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "model": r["model"], "text": r["text"]}
                                         for r in split["a_prof"]]), root / "ai.parquet")
    profile = build_profile([str(root / "human.parquet")], [str(root / "ai.parquet")], root / "profile")
    return root, profile


def test_word_hashes_match_the_reference_words(ai_texts):
    texts = ai_texts[:20] + ["", "Héllo <b>wörld</b> &amp; 東京 x-ray", "one"]
    w = word_hashes(texts, spans=True)
    for d, t in enumerate(texts):
        ref = [shingle_hash(x.encode()) for x in words(t)]
        assert w.hash[w.offsets[d]:w.offsets[d + 1]].tolist() == ref
        b = t.encode()
        for k in range(w.offsets[d], min(w.offsets[d] + 30, w.offsets[d + 1])):
            assert words(b[w.start[k]:w.stop[k]].decode()) == [words(t)[k - w.offsets[d]]]
    capped = word_hashes(texts, max_words=7)
    assert np.diff(capped.offsets).max() == 7
    assert word_hashes([b"\xff\xfe".decode("latin-1").encode("latin-1").decode("utf-8", "replace")]).status[0] == 0


def test_family_rules():
    # lineage by default: one family per model line whoever serves it, fine-tunes with their base
    assert family_of("openai/gpt-5-mini") == family_of("openai/chatgpt-4o-latest") == family_of("openai/o3") == "gpt"
    assert family_of("sam-paech/gemma-3-27b-it-antislop") == family_of("google/gemma-3-4b-it") == "gemma"
    assert family_of("google/gemini-2.5-flash") == "gemini"
    assert family_of("claude-sonnet-4-5") == family_of("anthropic/claude-3.7-sonnet") == "claude"
    assert organisation_of("google/gemma-3-4b-it", "gemma") == organisation_of("google/gemini-2.5-flash", "gemini") \
        == "google"
    assert family_of("acme/unheard-of-7b") == "acme"  # no known line: the organisation prefix
    assert family_of("openai/gpt-5-mini", by="org") == "openai"
    assert family_of("claude-sonnet-4-5", by="label") == "claude-sonnet-4-5"
    rules = parse_family_rules(["anthropic=claude-*", "google=google/*,sam-paech/gemma-*"])
    assert family_of("claude-sonnet-4-20250514", rules) == "anthropic"
    assert family_of("sam-paech/gemma-3-27b-it-antislop", rules) == "google"
    with pytest.raises(ContamscanError):
        parse_family_rules(["no-equals-sign"])


def test_profile_round_trip(built):
    root, profile = built
    again = open_profile(root / "profile")
    assert again.words == profile.words and again.components == profile.components
    assert np.array_equal(again.counts, profile.counts) and np.array_equal(again.documents, profile.documents)
    assert np.array_equal(again.logit, profile.logit)
    m = json.loads((root / "profile" / "manifest.json").read_text())
    assert m["format"] == "contamscan-style-profile" and m["documents"]["ai"] == 900
    models = pq.read_table(root / "ai.parquet")["model"].to_pylist()
    assert set(profile.labels) == set(models)  # one component per model
    assert profile.families == {m: family_of(m) for m in set(models)}
    assert m["organisations"]["openai/o3"] == "openai" and m["calibration"]["family_margin"] > 0
    assert 1000 < len(profile.words) <= ProfileParams().vocab_size + 100 * len(profile.labels)
    assert all(isinstance(w, str) and w and not w.startswith("#") for w in profile.words)
    # open formats: plain Parquet tables
    counts = pq.read_table(root / "profile" / "counts.parquet")
    assert counts.column_names == ["component", "window", "word_id", "windows_with_word"]
    # a modified file is refused
    bad = root / "bad-profile"
    bad.mkdir()
    for f in (root / "profile").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    t = pq.read_table(bad / "words.parquet")
    pq.write_table(t.slice(1), bad / "words.parquet")
    with pytest.raises(ContamscanError, match="checksum|truncated or modified"):
        open_profile(bad)
    with pytest.raises(ContamscanError, match="not a style profile"):
        open_profile(root)


def _shard(split, n_human, n_ai, seed=0):
    rng = random.Random(seed)
    docs = [r["text"] for r in rng.sample(split["h_test"], n_human)] + \
           [r["text"] for r in rng.sample(split["a_test"], n_ai)]
    rng.shuffle(docs)
    return docs


@pytest.mark.parametrize("seed", [0, 1])
def test_human_only_shard(built, split, seed):
    """No AI text: α̂ is near 0 and its interval covers 0. Unseen human documents read a
    little above 0 (they fit some AI model better than the profile's own did); the build
    measures that level on its own text and the scan rescales α from it (estimate.debias)."""
    _, profile = built
    cal = profile.calibration
    assert 0 < cal["human_alpha"] < 0.05 and 0.95 < cal["ai_alpha"] <= 1
    tally = StyleTally(profile)
    tally.add(_shard(split, 600, 0, seed=seed))
    share = tally.result()
    assert share["alpha"] <= 0.01 and share["ci95"][0] == 0.0
    raw = estimate(np.concatenate(tally.parts), profile.human_mask, bootstrap=0)[0]
    assert share["alpha"] == debias(raw, cal) <= raw


@pytest.mark.parametrize("n_ai", [30, 60, 150])
def test_alpha_close_to_truth_and_ci_covers_it(built, split, n_ai):
    _, profile = built
    tally = StyleTally(profile)
    docs = _shard(split, 600 - n_ai, n_ai, seed=n_ai)
    tally.add(docs[:250])
    tally.add(docs[250:])  # batches: the same as one
    share = tally.result()
    truth = n_ai / 600
    assert abs(share["alpha"] - truth) <= 0.03, share["alpha"]
    assert share["ci95"][0] <= truth <= share["ci95"][1]
    assert share["reliable"], share["warnings"]  # in domain: no coverage warning
    assert share["documents"] + share["unscored_documents"] == 600
    one = StyleTally(profile)
    one.add(docs)
    assert one.result() == share  # deterministic, and independent of batch boundaries


def test_family_is_found(built, split):
    _, profile = built
    fam = "gemma"
    pool = [r["text"] for r in split["a_test"] if family_of(r["model"]) == fam]
    docs = [r["text"] for r in split["h_test"][:300]] + pool[:100]
    tally = StyleTally(profile)
    tally.add(docs)
    share = tally.result()
    assert max(share["by_family"], key=share["by_family"].get) == fam
    a = share["attribution"]
    assert a["family"] == fam and a["organisation"] == "google" and profile.families[a["model"]] == fam
    assert 0 <= a["confidence"] < 1 and a["runner_up"]["family"] != fam and a["reason"] is None
    # confidence: the replicates won by the calibrated margin; a smaller margin is not confident
    assert a["margin"] >= a["margin_needed"] or a["confidence"] < 0.5
    assert a["deficit"] <= a["deficit_needed"]  # it fits its model as the model's own outputs do
    # where the share attaches: a model of that family, read against the distance between siblings
    d = a["distance"]
    assert profile.families[d["component"]] == fam and d["distance"] > 0 and d["typical_within_family"] > 0
    assert abs(sum(w for m, w in share["by_label"].items() if profile.families[m] == fam) - share["by_family"][fam]) < 1e-3
    assert abs(share["alpha"] - 0.25) <= 0.03
    assert share["fingerprint"] and all(r > 1 for _, r in share["fingerprint"])


def test_mixture_fit_recovers_weights():
    rng = np.random.default_rng(0)
    # three well-separated components, 70/20/10
    comp = rng.choice(3, 5000, p=[0.7, 0.2, 0.1])
    ll = np.full((5000, 3), -50.0)
    ll[np.arange(5000), comp] = 0.0
    pi = fit_mixture(ll)
    assert np.allclose(pi, np.bincount(comp) / 5000, atol=1e-4)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, built, split):
    root, _ = built
    work = tmp_path_factory.mktemp("style-scan")
    data = work / "data"
    data.mkdir()
    for i, n_ai in enumerate((0, 30, 90)):
        docs = _shard(split, 300 - n_ai, n_ai, seed=100 + i)
        pq.write_table(pa.table({"id": [str(k) for k in range(len(docs))], "text": docs}), data / f"s{i}.parquet",
                       row_group_size=64)
    build_index([str(root / "ai.parquet")], work / "index")
    opts = ScanOptions(workers=1, profile=str(root / "profile"), batch_bytes=1 << 16)
    report = scan([str(data)], work / "index", work / "out", opts)
    return work, root, report


def test_report_has_ai_share(scanned):
    work, root, report = scanned
    data = json.loads((work / "out" / "report.json").read_text())
    for s in data["shards"] + [data["totals"]]:
        share = s["ai_share"]
        assert set(share) == {"alpha", "ci95", "reliable", "warnings", "attribution", "by_label", "by_family",
                              "fingerprint", "documents", "unscored_documents"} | ({"fit_deficit"} if s is not
                                                                                 data["totals"] else set())
        assert 0 <= share["ci95"][0] <= share["alpha"] <= share["ci95"][1] <= 1
        assert all(isinstance(w, str) and r > 1 for w, r in share["fingerprint"])
        assert not share["by_label"] or abs(sum(share["by_label"].values()) - 1) < 1e-3
    truths = [0.0, 0.1, 0.3]
    for s, truth in zip(data["shards"], truths):
        assert abs(s["ai_share"]["alpha"] - truth) <= 0.04
    t = data["totals"]["ai_share"]
    n = [s["ai_share"]["documents"] for s in data["shards"]]
    assert t["alpha"] == pytest.approx(sum(k * s["ai_share"]["alpha"] for k, s in zip(n, data["shards"])) / sum(n))
    assert data["style"]["profile"] == str(root / "profile") and "not about any document" in data["style"]["claim"]
    md = (work / "out" / "report.md").read_text()
    assert "## AI-written share (style estimate)" in md and "near-duplicate rate" in md
    html = (work / "out" / "report.html").read_text()
    assert 'id="ai-share"' in html


def test_same_report_with_two_workers_and_after_resume(scanned, tmp_path):
    work, root, report = scanned
    opts = ScanOptions(workers=2, profile=str(root / "profile"))
    again = scan([str(work / "data")], work / "index", tmp_path / "out", opts)
    assert [s["ai_share"] for s in again.shards] == [s["ai_share"] for s in report.shards]
    assert again.totals["ai_share"] == report.totals["ai_share"]
    # checkpoints keep ai_share (JSON) and load it back
    from contamscan.scanner.shard import scan_shard
    from contamscan.discover import discover

    shard = discover([str(work / "data" / "s1.parquet")])[0][0]
    from contamscan.index import open_index

    result = scan_shard(shard, open_index(work / "index"), opts)
    cp = Checkpoints(tmp_path / "cp", {"x": 1}, resume=False)
    cp.save(0, result)
    loaded = Checkpoints(tmp_path / "cp", {"x": 1}, resume=True).done[0]
    assert loaded.ai_share == json.loads(json.dumps(result.ai_share))
    assert loaded.ai_share["alpha"] == result.ai_share["alpha"]


def test_scan_without_profile_has_no_ai_share(scanned, tmp_path):
    work, _, _ = scanned
    report = scan([str(work / "data")], work / "index", tmp_path / "out", ScanOptions(workers=1))
    assert "style" not in report.data and all("ai_share" not in s for s in report.shards)
    assert "ai_share" not in report.totals


def test_bad_profile_fails_before_any_work(scanned, tmp_path):
    work, _, _ = scanned
    with pytest.raises(ContamscanError, match="not a style profile"):
        scan([str(work / "data")], work / "index", tmp_path / "out", ScanOptions(workers=1, profile=str(tmp_path)))


def test_cli_profile_build_info_and_scan(built, scanned, tmp_path):
    root, _ = built
    work, _, _ = scanned
    runner = CliRunner()
    r = runner.invoke(cli, ["profile", "build", "--human", str(root / "human.parquet"), "--ai", str(root / "ai.parquet"),
                            "-o", str(tmp_path / "p"), "--family", "anthropic=claude-*", "--clusters", "1"])
    assert r.exit_code == 0, r.output
    assert "family anthropic" in r.output and "claude-sonnet-4-5" in r.output and "calibration" in r.output
    r = runner.invoke(cli, ["profile", "info", str(tmp_path / "p")])
    assert r.exit_code == 0 and "components" in r.output
    r = runner.invoke(cli, ["scan", str(work / "data"), "--index", str(work / "index"), "-o", str(tmp_path / "out"),
                            "--profile", str(tmp_path / "p"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "AI share" in r.output
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "claude-sonnet-4-5" in data["style"]["labels"] and "claude-sonnet-4-5" in data["style"]["families"]["anthropic"]
    r = runner.invoke(cli, ["profile", "build", "--human", str(tmp_path / "nothing"), "--ai", str(root / "ai.parquet"),
                            "-o", str(tmp_path / "q")])
    assert r.exit_code == 1 and "error" in r.output


def test_documents_too_short_to_score(built):
    from contamscan.style import combine

    _, profile = built
    tally = StyleTally(profile)
    tally.add(["a short line", "", "fifteen words are fewer than the shortest window of sixteen words, so no"])
    share = tally.result()
    assert share["alpha"] is None and share["documents"] == 0 and share["unscored_documents"] == 3
    json.dumps(share)  # JSON-serialisable for checkpoints
    assert combine(profile, [share])["alpha"] is None


def _profile_without(root, split, name, drop):
    """A profile of the same human half and the AI half without the models ``drop`` selects."""
    ai = [r for r in split["a_prof"] if not drop(r["model"])]
    pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "model": r["model"], "text": r["text"]} for r in ai]),
                   root / f"ai-{name}.parquet")
    return build_profile([str(root / "human.parquet")], [str(root / f"ai-{name}.parquet")], root / name)


def test_a_family_the_profile_lacks_is_none_of_these(built, split):
    """Outputs of a model line the profile does not hold: "none of these" (or not confident),
    never a confident wrong family."""
    root, _ = built
    profile = _profile_without(root, split, "no-claude", lambda m: family_of(m) == "claude")
    docs = [r["text"] for r in split["h_test"][:150]] + \
        [r["text"] for r in split["a_test"] if family_of(r["model"]) == "claude"][:150]
    tally = StyleTally(profile)
    tally.add(docs)
    a = tally.result()["attribution"]
    assert a["family"] is None or a["confidence"] < 0.5, a
    if a["family"] is None:
        assert "none of these" in a["reason"] and a["deficit"] > a["deficit_needed"]


def _inputs_without(root, split, left_out) -> tuple[list, list]:
    """The profile halves as Parquet files under ``root``, without the human ``left_out`` sources:
    (human files, AI files) for build_profile."""
    human = [r for r in split["h_prof"] if r["source"] not in left_out]
    pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("id", "source", "text")} for r in human]),
                   root / "human.parquet")
    pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "model": r["model"], "text": r["text"]}
                                         for r in split["a_prof"]]), root / "ai.parquet")
    return [str(root / "human.parquet")], [str(root / "ai.parquet")]


def test_a_genre_the_baseline_lacks_is_warned(tmp_path, split):
    """Human text of a kind the profile's baseline never saw (short stories, or Shakespeare's
    plays, left out of the profile): where α goes wrong the shard carries a warning and is
    marked unreliable; text like the baseline's is not warned."""
    left_out = ("writing", "tinyshakespeare")
    profile = build_profile(*_inputs_without(tmp_path, split, left_out), tmp_path / "p")
    for source in left_out:
        tally = StyleTally(profile)
        tally.add([r["text"] for r in split["h_test"] if r["source"] == source][:200])
        share = tally.result()
        assert share["alpha"] <= 0.05 or (share["warnings"] and not share["reliable"]), (source, share["alpha"])
        if share["warnings"]:
            assert "unreliable" in share["warnings"][0]
    tally = StyleTally(profile)
    tally.add([r["text"] for r in split["h_test"] if r["source"] not in left_out][:300])
    share = tally.result()
    assert share["reliable"] and not share["warnings"] and share["alpha"] <= 0.05


def test_a_small_shard_of_a_missing_genre_read_as_ai_is_warned(tmp_path, split):
    """Some thirty college essays, a genre left out of the baseline, read as mostly AI; few
    of them read as AI as clearly as outputs of models the profile lacks do, so the
    strong-document test warns (whatever the mean-fit test says of so few documents). The
    same profile's in-domain shards of human text and of AI outputs are not warned by it."""
    source = "CollegeEssay_real_70"
    profile = build_profile(*_inputs_without(tmp_path, split, (source,)), tmp_path / "p")
    cal = profile.calibration
    assert set(cal["strong_share_by_model"]) <= set(profile.labels) and cal["strong_margin"] > 0
    shares = list(cal["strong_share_by_model"].values())
    assert 0 < min(shares) and cal["strong_share"] == pytest.approx(np.mean(shares), abs=1e-3)
    assert cal["strong_share_spread"] == pytest.approx(np.std(shares), abs=1e-3)
    essays = [r["text"] for r in split["h_test"] if r["source"] == source]
    assert 20 <= len(essays) <= 80
    tally = StyleTally(profile)
    tally.add(essays)
    share = tally.result()
    assert share["alpha"] > 0.3 and not share["reliable"], share["alpha"]
    assert any("as clearly as outputs of models the profile lacks" in w for w in share["warnings"]), share["warnings"]
    others = [r["text"] for r in split["h_test"] if r["source"] != source]
    for docs in (others[:300], others[:150] + [r["text"] for r in split["a_test"][:150]]):
        tally = StyleTally(profile)
        tally.add(docs)
        assert not any("as clearly" in w for w in tally.result()["warnings"])


def test_weak_share_warning_counts_the_strong_documents():
    """The strong-document test alone: n·α·strong_share strong documents expected, give or
    take the binomial and the between-model spread; α within ALPHA_SLACK is never warned."""
    from types import SimpleNamespace

    from contamscan.style.estimate import weak_share_warning

    profile = SimpleNamespace(human_mask=np.array([True, True, False, False]),
                              calibration={"strong_margin": 0.1, "strong_share": 0.8, "strong_share_spread": 0.1})

    def shard(n_strong, n_weak, n_human):  # per-word log-likelihoods: human columns first
        rows = [[-1.0, -1.1, -0.8, -0.9]] * n_strong + [[-1.0, -1.2, -0.97, -1.1]] * n_weak + \
            [[-0.8, -0.9, -1.0, -1.2]] * n_human
        return np.array(rows)

    assert weak_share_warning(profile, shard(80, 20, 100), 0.5) == []  # as AI outputs read
    warned = weak_share_warning(profile, shard(10, 90, 100), 0.5)  # mostly marginal AI-side documents
    assert len(warned) == 1 and "10 of the shard's 200" in warned[0] and "unreliable" in warned[0]
    assert weak_share_warning(profile, shard(0, 4, 96), 0.04) == []  # within ALPHA_SLACK
    assert weak_share_warning(profile, shard(0, 3, 2), 0.6) != []  # small, but none strong at all
    assert weak_share_warning(profile, shard(10, 90, 100), None) == []
    profile.calibration = {}  # a profile built before the test: nothing to compare with
    assert weak_share_warning(profile, shard(10, 90, 100), 0.5) == []


def test_cache_sees_a_profile_rebuilt_at_the_same_path(built, split):
    root, _ = built
    path = root / "rebuilt"
    first = _profile_without(root, split, "rebuilt", lambda m: family_of(m) == "gemma")
    assert open_cached(path).labels == first.labels
    second = _profile_without(root, split, "rebuilt", lambda m: family_of(m) == "claude")
    assert open_cached(path).labels == second.labels != first.labels


def test_fallback_gives_a_missing_human_genre_a_home(tmp_path, split):
    """The wordfreq fallback component (style.fallback): with encyclopaedia articles and news
    summaries left out of the baseline, their human text reads as far less AI than without the
    fallback; the component is recorded in the manifest and kept out of the baseline rate."""
    pytest.importorskip("wordfreq")
    left_out = ("wikitext-2", "xsum")
    args = _inputs_without(tmp_path, split, left_out)
    with_fb = build_profile(*args, tmp_path / "with", params=ProfileParams(fallback="wordfreq"))
    without = build_profile(*args, tmp_path / "without", params=ProfileParams(fallback="none"))
    assert "wordfreq:en" in with_fb.components and "wordfreq:en" not in without.components
    assert with_fb.manifest["fallback"]["components"] == ["wordfreq:en"] and without.manifest["fallback"] is None
    assert with_fb.kinds[with_fb.components.index("wordfreq:en")] == "human"
    # the other components, their smoothing and the baseline rate are those of a profile without it
    assert np.allclose(with_fb.human_rate, without.human_rate)
    others = [with_fb.components.index(c) for c in without.components]
    assert np.allclose(with_fb.logit[:, others], without.logit)
    texts = [r["text"] for r in split["h_test"] if r["source"] in left_out][:300]
    alphas = []
    for profile in (with_fb, without):
        tally = StyleTally(profile)
        tally.add(texts)
        alphas.append(tally.result()["alpha"])
    assert alphas[0] <= 0.05 < alphas[1], alphas
    assert "wordfreq" in json.loads((tmp_path / "with" / "manifest.json").read_text())["fallback"]["source"]


def test_fallback_wordfreq_without_the_package_says_how_to_install(monkeypatch):
    from contamscan.style import fallback

    monkeypatch.setattr(fallback, "available", lambda: False)
    assert fallback.resolve("auto") is None and fallback.resolve("none") is None
    with pytest.raises(ContamscanError, match=r"contamscan\[style\]"):
        fallback.resolve("wordfreq")
