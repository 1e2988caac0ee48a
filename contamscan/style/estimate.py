"""The style estimate of a shard: α (the share of AI-written documents) by maximum likelihood
with a bootstrap interval, which AI component the share resembles, and the words that give
it away; and the dataset's estimate combined from its shards'."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .kernels import em, em_boundary
from .profile import OBS_SCALE, Profile

BOOTSTRAP = 200  # replicates for the 95% interval


BOOTSTRAP_DOCS = 10_000  # larger shards: replicates of this many documents (m-out-of-n bootstrap)


FINGERPRINT_WORDS = 20


SEED = 20240101  # fixed: the same shard gives the same interval


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


def estimate(ll: np.ndarray, human: np.ndarray, bootstrap: int = BOOTSTRAP, seed: int = SEED):
    """(alpha, ci95, AI component weights among themselves, bootstrap replicates of alpha)."""
    n, G = ll.shape
    if n == 0:
        return None, [0.0, 1.0], np.zeros(int((~human).sum())), np.zeros(0)
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
    if m < n:  # replicates of m documents spread sqrt(n / m) times more than the estimate does
        reps = np.clip(alpha + (reps - alpha) * np.sqrt(m / n), 0.0, 1.0)
    lo, hi = (np.quantile(reps, [0.025, 0.975]) if bootstrap else (alpha, alpha))
    ai = pi[~human]
    return alpha, [float(min(lo, alpha)), float(max(hi, alpha))], ai / ai.sum() if ai.sum() > 0 else ai, reps


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


class StyleTally:
    """A shard's style evidence while its batches stream by (see scan.scan_batch)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.parts: list[np.ndarray] = []
        self.unscored = 0
        self.obs = np.zeros((len(profile.params.windows), len(profile.words)))
        self.nd = np.zeros(len(profile.params.windows))

    def add(self, texts, hasher=None) -> None:
        t = self.profile.terms(texts, hasher=hasher)
        self.parts.append(t.ll)
        self.unscored += t.unscored
        self.obs += t.obs
        self.nd += t.nd

    def result(self) -> dict:
        """The shard's ``ai_share``: the report entry, and under ``_state`` what the totals
        need (bootstrap replicates, occurrence counts): JSON-serialisable, a few KB."""
        p = self.profile
        ll = np.concatenate(self.parts) if self.parts else np.zeros((0, len(p.components)), np.float32)
        alpha, ci, ai_w, reps = estimate(ll, p.human_mask)
        by_window = self.obs / OBS_SCALE
        obs = by_window.sum(0)
        nz = np.flatnonzero(obs)
        return {
            "alpha": alpha,
            "ci95": ci,
            "by_label": _by_label(p.labels, list(ai_w)),
            "fingerprint": fingerprint(p, by_window, self.nd),
            "documents": int(len(ll)),
            "unscored_documents": int(self.unscored),
            "_state": {"replicates": np.round(reps, 6).tolist(),
                       "nd": [float(x) for x in self.nd],
                       "obs_words": nz.tolist(),
                       "obs_by_window": np.round(by_window[:, nz], 3).tolist()},
        }


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
        return None if profile is None else {"alpha": None, "ci95": [0.0, 1.0], "by_label": {}, "fingerprint": [],
                                             "documents": 0, "unscored_documents": 0}
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
    return {"alpha": alpha, "ci95": ci, "by_label": by_label, "fingerprint": fp,
            "documents": int(n.sum()), "unscored_documents": int(sum(s["unscored_documents"] for s in shares))}
