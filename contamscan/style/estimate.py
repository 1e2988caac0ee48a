"""The style estimate of a shard: α (the share of AI-written documents) by maximum likelihood
with a bootstrap interval, which AI component the share resembles, and the words that give
it away; and the dataset's estimate combined from its shards'."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import ContamscanError
from .calibrate import ALPHA_SLACK, NOISE_Z, ai_margins, best_model, family_scores, fit_deficits, per_word_loglik, ranked, share_deficit
from .kernels import em, em_boundary
from .profile import AI, OBS_SCALE, Profile
from .tree import distances, nearest_component, share_rates

BOOTSTRAP = 200  # replicates for the 95% interval


BOOTSTRAP_DOCS = 10_000  # larger shards: replicates of this many documents (m-out-of-n bootstrap)


FINGERPRINT_WORDS = 20


SEED = 20240101  # fixed: the same shard gives the same interval


MIN_AI_DOCUMENTS = 5.0  # AI-assigned documents (sum of posteriors) below which nothing is attributed


def fit_mixture(ll: np.ndarray, weights=None, pi0=None, tol: float = 1e-7, max_iter: int = 5000) -> np.ndarray:
    """Maximum-likelihood mixture weights over the components for per-document
    log-likelihoods ``ll`` [n, G] (optionally weighted, e.g. bootstrap counts)."""
    n, G = ll.shape
    f = np.exp(ll.astype(np.float64) - ll.max(1, keepdims=True)) if n else np.zeros((0, G))
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    pi = np.full(G, 1.0 / G) if pi0 is None else np.array(pi0, np.float64)
    if n == 0 or w.sum() == 0:
        return pi
    em(f, w, pi, tol, max_iter)
    return pi


def estimate(ll: np.ndarray, human: np.ndarray, bootstrap: int = BOOTSTRAP, seed: int = SEED, on_replicate=None):
    """(alpha, ci95, AI component weights among themselves, bootstrap replicates of alpha, the
    fitted weights of every component). ``on_replicate(rows, counts, weights)``, if given, is
    called with each bootstrap replicate's documents, their multiplicities and its fit."""
    n, G = ll.shape
    if n == 0:
        return None, [0.0, 1.0], np.zeros(int((~human).sum())), np.zeros(0), np.zeros(G)
    f = np.exp(ll.astype(np.float64) - ll.max(1, keepdims=True))
    pi = np.full(G, 1.0 / G)
    em_boundary(f, np.ones(n), pi, 1e-8, 10000, 1e-4, G)
    alpha = float(pi[~human].sum())
    rng = np.random.default_rng(seed)
    reps = np.empty(bootstrap)
    m = min(n, BOOTSTRAP_DOCS)  # m-out-of-n above BOOTSTRAP_DOCS documents, rescaled below
    for r in range(bootstrap):
        rows, w = np.unique(rng.integers(0, n, m), return_counts=True)  # EM over the documents drawn
        p = np.where(pi > 0, pi, 1e-3)  # from the fit, with every component free to return
        p /= p.sum()
        em_boundary(f[rows], w.astype(np.float64), p, 1e-6, 2000, 1e-4, 1)  # one round: zeros, not KKT
        reps[r] = p[~human].sum()
        if on_replicate is not None:
            on_replicate(rows, w, p)
    if m < n:  # replicates of m documents spread sqrt(n / m) times more than the estimate does
        reps = np.clip(alpha + (reps - alpha) * np.sqrt(m / n), 0.0, 1.0)
    lo, hi = (np.quantile(reps, [0.025, 0.975]) if bootstrap else (alpha, alpha))
    ai = pi[~human]
    return alpha, [float(min(lo, alpha)), float(max(hi, alpha))], ai / ai.sum() if ai.sum() > 0 else ai, reps, pi


def debias(alpha, calibration: dict | None):
    """α (a float or an array) mapped from the scale a profile reads its own text on back to
    [0, 1]: its human documents read at ``human_alpha`` rather than 0 and its AI documents at
    ``ai_alpha`` rather than 1 (measured at the build, :mod:`.calibrate`), so
    ``(α − human_alpha) / (ai_alpha − human_alpha)``, clipped. Why: the maximum likelihood
    cannot go below 0, and a new human document fits some AI model a little better than the
    profile's own did, so α of a purely human shard read 0.004–0.01 with an interval excluding 0.
    A profile without the two levels (built before them), or whose levels are not at least
    half the scale apart, is left as it is.

    Example:
        >>> debias(0.5, {"human_alpha": 0.01, "ai_alpha": 0.99})
        0.5
        >>> debias(0.005, {"human_alpha": 0.01, "ai_alpha": 0.99})
        0.0
    """
    cal = calibration or {}
    lo, hi = cal.get("human_alpha"), cal.get("ai_alpha")
    if alpha is None or lo is None or hi is None or hi - lo < 0.5:
        return alpha
    out = np.clip((np.asarray(alpha, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def fingerprint(profile: Profile, obs: np.ndarray, nd: np.ndarray, k: int = FINGERPRINT_WORDS,
                min_windows: float = 10.0) -> list:
    """The words whose occurrence in the shard's windows most exceeds the human baseline's,
    at the same window lengths: [[word, observed / expected], ...], highest ratio first."""
    seen = obs.sum(0)
    expected = (nd[:, None] * profile.human_rate).sum(0)
    ratio = (seen + 0.5) / (expected + 0.5)
    ok = np.flatnonzero((seen >= min_windows) & (ratio > 1.0))
    top = ok[np.lexsort((ok, -ratio[ok]))][:k]
    return [[profile.words[v], round(float(ratio[v]), 2)] for v in top]


class Attribution:
    """Which profiled family and model a shard's AI share resembles, how sure, or "none of
    these" (module :mod:`.calibrate` for the method and its thresholds).

    Each document's evidence is its per-word log-likelihood under every AI model, weighted by
    its posterior probability of being AI-written under the fitted mixture; a family scores
    the weighted mean of its log-likelihood as an equal mixture of its models
    (:func:`.calibrate.family_scores`). ``confidence``
    is the share of the bootstrap replicates (documents resampled, the mixture refitted) in
    which the same family comes first by at least the profile's calibrated margin: the margin
    that outputs of a family the profile does not hold give the wrong family. "None of these"
    (``family: null``, with the reason): the AI-weighted documents fit the best family's best
    model worse than that model's own outputs do, by more than half the smallest deficit of a
    family left out at the build (plus NOISE_Z standard errors of the shard's mean)."""

    def __init__(self, profile: Profile, ll: np.ndarray, words: np.ndarray, fit: np.ndarray):
        self.profile = profile
        ai = ~profile.human_mask
        self.models = [c for c, k in zip(profile.components, profile.kinds) if k == AI]
        fams = profile.families
        self.family_names = sorted({fams.get(m, m) for m in self.models})
        self.family_index = np.array([self.family_names.index(fams.get(m, m)) for m in self.models], np.int64)
        self.f = np.exp(ll.astype(np.float64))  # (ll is minus each row's max)
        self.ai = ai
        self.llw = per_word_loglik(ll[:, ai].astype(np.float64), words)
        self.words, self.fit = words, fit  # (fit: each document's best log-likelihood per word: llw's level)
        cal = profile.calibration or {}
        self.margin_needed = float(cal.get("family_margin", 0.0))
        self.cal = cal
        self.replicates = []

    def _ai_posterior(self, f, pi) -> np.ndarray:
        """Each document's probability of being AI-written under the mixture ``pi``."""
        den = f @ pi
        return np.where(den > 0, (f[:, self.ai] @ pi[self.ai]) / np.where(den > 0, den, 1.0), 0.0)

    def _ranking(self, rows, counts, pi):
        """(family order best first, margin, best model of the best family, AI documents)."""
        weight = counts * self._ai_posterior(self.f[rows], pi)
        scores = family_scores(self.llw[rows], weight, self.family_index, len(self.family_names), self.words[rows])
        order, margin = ranked(scores)
        model = best_model(self.llw[rows], weight, self.family_index, int(order[0]))
        return order, margin, model, float(weight.sum()), bool(np.isfinite(scores[order[0]]))

    def _deficit(self, model: int, pi) -> tuple[float, float]:
        """How much worse the AI-weighted documents fit ``model`` than its own outputs do."""
        table = (self.cal.get("fit") or {}).get(self.models[model])
        if table is None or not len(self.fit):
            return float("nan"), 0.0
        lengths = np.array(self.profile.params.windows, np.int64)
        return share_deficit(_fit_row(table), lengths, self.llw[:, model] + self.fit, self.words,
                             self._ai_posterior(self.f, pi))

    def add_replicate(self, rows, counts, pi) -> None:
        order, margin, model, _, ok = self._ranking(rows, counts.astype(np.float64), pi)
        self.replicates.append((int(order[0]), margin, model) if ok else (-1, 0.0, -1))

    def result(self, alpha, pi) -> dict:
        n = self.f.shape[0]
        none = {"family": None, "model": None, "organisation": None, "confidence": 0.0, "runner_up": None,
                "margin": None, "margin_needed": round(self.margin_needed, 5), "deficit": None, "deficit_needed": None}
        if not alpha or n == 0 or not self.models:
            return {**none, "reason": "no AI share to attribute"}
        order, margin, model, ai_docs, ok = self._ranking(np.arange(n), np.ones(n), pi)
        if ai_docs < MIN_AI_DOCUMENTS or not ok:
            return {**none, "reason": f"too few AI-looking documents to attribute ({ai_docs:.1f})"}
        reps = self.replicates
        top = int(order[0])
        wins = [fam == top and m >= self.margin_needed for fam, m, _ in reps]
        # (B + 1) in the denominator: a share of replicates is never a bare certainty
        confidence = sum(wins) / (len(reps) + 1) if reps else 0.0
        runner = int(order[1]) if len(order) > 1 else None
        out = {
            "family": self.family_names[top],
            "model": self.models[model],
            "organisation": self.profile.manifest.get("organisations", {}).get(self.models[model]),
            "confidence": round(confidence, 3),
            "model_confidence": round(sum(mo == model for _, _, mo in reps) / (len(reps) + 1), 3) if reps else 0.0,
            "runner_up": None if runner is None else {
                "family": self.family_names[runner],
                "confidence": round(sum(fam == runner for fam, _, _ in reps) / (len(reps) + 1), 3) if reps else 0.0},
            "margin": round(margin, 5) if np.isfinite(margin) else None,
            "margin_needed": round(self.margin_needed, 5),
            "reason": None,
        }
        # "none of these": the share fits its nearest model worse than that model's own
        # outputs do, by more than an absent family's outputs did at the build (module doc)
        deficit, weighed = self._deficit(model, pi)
        out["deficit"] = None if not np.isfinite(deficit) else round(deficit, 5)
        out["deficit_needed"] = None
        limit = self.cal.get("none_deficit")
        if limit is not None and np.isfinite(deficit) and weighed > 0:
            limit += NOISE_Z * self.cal.get("ai_noise", 0.0) / np.sqrt(weighed)
            out["deficit_needed"] = round(limit, 5)
            if deficit > limit:
                out.update(family=None, model=None, organisation=None, confidence=0.0,
                           reason=f"fits no profiled model as its own outputs do: its nearest, "
                                  f"{self.models[model]} ({self.family_names[top]}), fits it {deficit:.4f} nats/word "
                                  f"worse than its own outputs, more than the {limit:.4f} that outputs of a family left "
                                  "out of the profile reach (none of these)")
        return out


def _fit_row(values: list) -> np.ndarray:
    """A component's row of the calibration's fit table, as floats (NaN: no documents)."""
    return np.array([np.nan if x is None else x for x in values], np.float64)


def coverage_warnings(profile: Profile, ll: np.ndarray, words: np.ndarray, fit: np.ndarray,
                      alpha: float | None = None) -> tuple:
    """(warnings, deficit): whether the shard's text is unlike the profile's (a genre, register
    or language the human baseline lacks; α is then unreliable), by either of two tests
    calibrated at the build (:mod:`.calibrate`):

    * its documents fit the profile differently from the profile's own held-out documents,
      by the calibrated ``fit_deficit``;
    * its AI share ``alpha`` is far more than its strongly AI-looking documents support
      (:func:`weak_share_warning`).
    """
    cal = profile.calibration or {}
    if "fit" not in cal or not len(ll):
        return [], None
    table = np.array([_fit_row(cal["fit"][c]) for c in profile.components])
    lengths = np.array(profile.params.windows, np.int64)
    # per word, with each row's own level back: ll is minus its max, fit is the max per word
    llw = per_word_loglik(ll.astype(np.float64), words) + fit[:, None]
    warnings = weak_share_warning(profile, llw[words > 0], alpha)
    d = fit_deficits(table, lengths, llw, words)
    if not np.isfinite(d).any():
        return warnings, None
    deficit = float(np.nanmean(d))
    limit = cal["fit_deficit"] + NOISE_Z * cal.get("fit_noise", 0.0) / np.sqrt(np.isfinite(d).sum())
    if abs(deficit) <= limit:
        return warnings, round(deficit, 5)
    how = "worse" if deficit > 0 else "differently (fewer of its words at all)"
    return [f"the shard's text fits the profile {how} than the profile's own held-out text ({abs(deficit):.3f} "
            f"nats/word; the threshold for this shard is {limit:.3f}): it is unlike the baseline (a genre, "
            "register or language the profile lacks), so α is unreliable", *warnings], round(deficit, 5)


def weak_share_warning(profile: Profile, llw: np.ndarray, alpha: float | None) -> list:
    """A warning when the shard's AI share is mostly documents that only just read as AI.

    Outputs of a model the profile lacks still read strongly as AI: at the build, a share
    ``strong_share`` of each absent model's outputs (spread ``strong_share_spread`` between
    models) beat the human side by ``strong_margin`` nats/word or more. Human text of a
    genre the baseline lacks crosses to the AI side by a little (as do, less often, outputs of a
    model line unlike every profiled one: α then goes wrong too). So a shard of n documents at
    α should hold about n·α·strong_share strong documents, give or take a binomial spread and
    the spread between models (n·α·spread); far fewer (``NOISE_Z`` standard deviations), with
    α more than ``ALPHA_SLACK`` above what they support, means α counts such human text.

    Args:
        profile: the profile the shard was scored with.
        llw: per-word log-likelihoods [documents, components] of the shard's scored documents.
        alpha: the shard's estimated AI share.

    Returns:
        [] or a list of one warning.
    """
    cal = profile.calibration or {}
    t, p, spread = cal.get("strong_margin"), cal.get("strong_share"), cal.get("strong_share_spread")
    if t is None or not p or not alpha or not len(llw):
        return []
    human = profile.human_mask
    margin = ai_margins(llw, ~human, human)
    n, strong = len(llw), int((margin > t).sum())
    expected = n * alpha * p
    sd = np.sqrt(expected * (1 - alpha * p) + (n * alpha * spread) ** 2)
    supported = strong / (n * p)
    if alpha - supported <= ALPHA_SLACK or strong >= expected - NOISE_Z * sd:
        return []
    return [f"only {strong} of the shard's {n} documents read as AI as clearly as outputs of models the profile "
            f"lacks do (about {expected:.0f} ± {sd:.0f} expected at α {alpha:.2f}): they support an AI share of "
            f"about {min(supported, 1.0):.2f}; the rest only just reads as AI, as human text unlike the baseline (a "
            "genre, register or language the profile lacks) does, or outputs of a model line unlike every profiled "
            "one, so α is unreliable"]


class StyleTally:
    """A shard's style evidence while its batches stream by (see scan.scan_batch)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.parts: list[np.ndarray] = []
        self.words: list[np.ndarray] = []
        self.fits: list[np.ndarray] = []
        self.unscored = 0
        self.obs = np.zeros((len(profile.params.windows), len(profile.words)))
        self.nd = np.zeros(len(profile.params.windows))

    def add(self, texts, hasher=None) -> None:
        t = self.profile.terms(texts, hasher=hasher)
        self.parts.append(t.ll)
        self.words.append(t.words)
        self.fits.append(t.fit)
        self.unscored += t.unscored
        self.obs += t.obs
        self.nd += t.nd

    def result(self) -> dict:
        """The shard's ``ai_share``: the report entry, and under ``_state`` what the totals
        need (bootstrap replicates, occurrence counts): JSON-serialisable, a few KB."""
        p = self.profile
        ll = np.concatenate(self.parts) if self.parts else np.zeros((0, len(p.components)), np.float32)
        words = np.concatenate(self.words) if self.words else np.zeros(0, np.int64)
        fit = np.concatenate(self.fits) if self.fits else np.zeros(0)
        att = Attribution(p, ll, words, fit)
        alpha, ci, ai_w, reps, pi = estimate(ll, p.human_mask, on_replicate=att.add_replicate)
        alpha, ci, reps = debias(alpha, p.calibration), [debias(x, p.calibration) for x in ci], debias(reps, p.calibration)
        attribution = att.result(alpha, pi)
        by_window = self.obs / OBS_SCALE
        attribution["distance"] = _attachment(p, by_window, self.nd, alpha)
        warnings, deficit = coverage_warnings(p, ll, words, fit, alpha)
        obs = by_window.sum(0)
        nz = np.flatnonzero(obs)
        by_label = _by_label(p.labels, list(ai_w))
        return {
            "alpha": alpha,
            "ci95": ci,
            "reliable": not warnings,
            "warnings": warnings,
            "attribution": attribution,
            "by_label": by_label,
            "by_family": _by_family(by_label, p.families),
            "fingerprint": fingerprint(p, by_window, self.nd),
            "fit_deficit": deficit,
            "documents": int(len(ll)),
            "unscored_documents": int(self.unscored),
            "_state": {"replicates": np.round(reps, 6).tolist(),
                       "nd": [float(x) for x in self.nd],
                       "obs_words": nz.tolist(),
                       "obs_by_window": np.round(by_window[:, nz], 3).tolist()},
        }


def _attachment(profile: Profile, obs_by_window, nd, alpha) -> dict | None:
    """Where the shard's AI share attaches in the profile (:func:`.tree.nearest_component`):
    the nearest model, its distance and the typical distance between two models of one
    family, to read it against; None without an AI share, or at a window length without data."""
    if not alpha:
        return None
    try:
        window = distances(profile).window
        a = nearest_component(profile, share_rates(profile, obs_by_window, nd, alpha, window=window),
                              profile.families, window=window)
    except ContamscanError:
        return None
    return {"component": a.component, "distance": round(a.distance, 5),
            "typical_within_family": None if a.typical_within_family is None else round(a.typical_within_family, 5),
            "relative": None if a.relative is None else round(a.relative, 3)}


def _by_family(by_label: dict, families: dict) -> dict:
    """Family weights as the sums of their models' (``by_label``), largest first."""
    sums = Counter()
    for label, w in by_label.items():
        sums[families.get(label, label)] += w
    return {f: round(w, 4) for f, w in sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))}


def _by_label(labels, weights) -> dict:
    """{label: weight}, largest first; {} when there is no AI share to divide."""
    if not sum(weights):
        return {}
    pairs = sorted(zip(labels, (float(w) for w in weights)), key=lambda kv: (-kv[1], kv[0]))
    return {label: round(w, 4) for label, w in pairs}


def public(ai_share: dict | None) -> dict | None:
    """The report entry: ``ai_share`` without its private state."""
    if ai_share is None:
        return None
    return {k: v for k, v in ai_share.items() if not k.startswith("_")}


def combine(profile: Profile | None, shares: list) -> dict | None:
    """The dataset's ``ai_share`` from its shards'. α is the document-weighted mean of the
    shards' α (the maximum-likelihood estimate when each shard has its own mix); its interval
    is a stratified bootstrap: replicate r of the total combines replicate r of every shard
    (each resampled its own documents); by_label weighs each shard's mix by its AI documents."""
    shares = [s for s in shares if s is not None and s.get("documents")]
    if not shares:
        return None if profile is None else {"alpha": None, "ci95": [0.0, 1.0], "reliable": True, "warnings": [],
                                             "attribution": _dataset_attribution([], np.zeros(0)), "by_label": {},
                                             "by_family": {}, "fingerprint": [], "documents": 0,
                                             "unscored_documents": 0}
    n = np.array([s["documents"] for s in shares], np.float64)
    alphas = np.array([s["alpha"] for s in shares])
    alpha = float((n * alphas).sum() / n.sum())
    reps = [np.asarray(s["_state"]["replicates"]) for s in shares]
    if reps and all(len(r) == len(reps[0]) and len(r) for r in reps):
        tot = (np.stack(reps) * n[:, None]).sum(0) / n.sum()
        lo, hi = np.quantile(tot, [0.025, 0.975])
        ci = [float(min(lo, alpha)), float(max(hi, alpha))]
    else:
        ci = [0.0, 1.0]
    by = Counter()
    for s, a, k in zip(shares, alphas, n):
        for label, w in s["by_label"].items():
            by[label] += w * a * k
    total_ai = sum(by.values())
    by_label = _by_label(list(by), [v / total_ai if total_ai else 0.0 for v in by.values()])
    families = profile.families if profile is not None else {}
    fp = []
    if profile is not None:
        B, V = len(profile.params.windows), len(profile.words)
        obs, nd = np.zeros((B, V)), np.zeros(B)
        for s in shares:
            st = s["_state"]
            nd += np.asarray(st["nd"])
            words = np.asarray(st["obs_words"], np.int64)
            if len(words):
                obs[:, words] += np.asarray(st["obs_by_window"])
        fp = fingerprint(profile, obs, nd)
    warned = [s for s in shares if s.get("warnings")]
    warnings = [f"{len(warned)} of {len(shares)} shards are unlike the profile's text (a genre, register or "
                "language its baseline lacks): their α is unreliable (see each shard's warnings)"] if warned else []
    return {"alpha": alpha, "ci95": ci, "reliable": not warned, "warnings": warnings,
            "attribution": _dataset_attribution(shares, alphas * n), "by_label": by_label,
            "by_family": _by_family(by_label, families), "fingerprint": fp,
            "documents": int(n.sum()), "unscored_documents": int(sum(s["unscored_documents"] for s in shares))}


def _dataset_attribution(shares: list, ai_docs: np.ndarray) -> dict:
    """The dataset's attribution from its shards': the family that the most AI-written
    documents are attributed to (shards weighted by their estimated AI documents), with the
    mean confidence of those shards; "none" when no shard's AI share was attributed."""
    votes, conf = Counter(), Counter()
    for s, k in zip(shares, ai_docs):
        a = s.get("attribution") or {}
        if a.get("family") is not None and k > 0:
            votes[a["family"]] += k
            conf[a["family"]] += k * a["confidence"]
    if not votes:
        return {"family": None, "confidence": 0.0, "shards": {},
                "reason": "no shard's AI share was attributed to a profiled family"}
    fam = max(votes, key=lambda f: (votes[f], f))
    total = sum(votes.values())
    return {"family": fam, "confidence": round(conf[fam] / votes[fam] * votes[fam] / total, 3),
            "shards": {f: sum(1 for s in shares if (s.get("attribution") or {}).get("family") == f) for f in votes},
            "reason": None}
