"""Style profiles: estimate the share of AI-written documents in a shard, and which model
family it resembles, from word occurrence alone (no language model, CPU only).

The method is the distributional estimator of Liang et al. (2024), "Monitoring AI-Modified
Content at Scale": every document is a set of word-presence events over a vocabulary, and a
shard is a mixture ``(1 - a) P + a Q`` of a human distribution ``P`` and an AI distribution
``Q``; ``a`` is found by maximum likelihood. What this module adds, each chosen by
measurement on ../shared/data (see benchmarks/bench_style.py and the README):

* **Fixed-length windows.** Whether a word occurs depends on how long the document is, so a
  document is never scored whole: it is cut into windows of exactly ``L`` words (the longest
  of ``windows`` that it holds, 64 by default; up to ``max_windows`` windows spread over its
  first ``max_windows * L`` words), and its log-likelihood under a component is the mean over
  its windows. The profile holds occurrence statistics per window length, computed the same
  way, so a 150-word news story and a 5,000-word speech are both compared with windows of
  their own length. Documents shorter than the shortest window (16 words) carry no evidence.
* **Mixtures on both sides.** Human text is not one distribution: news, stories, essays and
  plays use words differently, and a single product of Bernoullis fitted to all of them
  scores a story as "AI" more often than as "human" (19% of human documents on the
  benchmark). The human baseline is therefore several components: its groups (``--group-field``,
  else one per input file), each split into ``clusters`` sub-components refined by
  classification EM on the documents themselves. The AI side is one component per label
  (model family). ``a`` is the total weight of the AI components; the weights of the AI
  components among themselves say which family the AI share resembles.
* **Vocabulary by divergence.** The words whose window occurrence differs most between the
  human baseline and AI text (Jeffreys divergence of the two Bernoullis), plus for each AI
  label the words that most set it apart from the other labels; rates are smoothed toward the
  pooled rate with ``smoothing`` pseudo-windows.

A profile is a directory: ``manifest.json`` (format, parameters, components, checksums),
``words.parquet`` (the vocabulary: word, hash, divergence) and ``counts.parquet`` (per
component, window length and word: the number of documents' windows holding the word, each
document weighing 1 whatever its number of windows) with ``components.parquet`` (documents per
component and window length). Probabilities are derived from the counts when it is opened.

What α is, and is not: an estimate of the fraction of documents in a shard whose word
usage follows the AI profiles rather than the human baseline, with a bootstrap interval over
documents. It is a property of the shard, not a verdict on any document: per-document
likelihoods are far too confident (words are not independent) to label single documents,
and a human source unlike every human text in the profile can read as AI.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from . import storage
from .errors import ContamscanError
from .minhash import INVALID_UTF8, word_hashes
from .report import atomic_write_bytes, atomic_write_table

FORMAT = "contamscan-style-profile"
FORMAT_VERSION = 1
FILES = ("words.parquet", "counts.parquet", "components.parquet")
HUMAN, AI = "human", "ai"
NO_DATA = -1e30  # log-likelihood of a component with no documents at a window length
# a shard's occurrence counts add 1/W per window of a W-window document: kept as integer
# multiples of 1/OBS_SCALE (the lcm of 1..16), so that sums are exact whatever the batches
OBS_SCALE = 720720


@dataclass(frozen=True)
class ProfileParams:
    """How a profile is built (recorded in its manifest; scans use the profile's)."""

    windows: tuple = (16, 32, 64)  # window lengths in words; a document uses the longest it holds
    max_windows: int = 16  # windows per document, spread over its first max_windows * max(windows) words
    vocab_size: int = 4000  # words chosen for human-vs-AI divergence
    label_words: int = 100  # plus, per AI label, words that set it apart from the other labels
    min_docs: int = 10  # a candidate word occurs in at least this many profile documents
    smoothing: float = 10.0  # pseudo-windows of the pooled rate added to each component's counts
    clusters: int = 2  # human sub-components per group, refined by classification EM
    min_cluster_docs: int = 20  # a group is split only when each part would have this many documents
    cluster_iterations: int = 30
    seed: int = 0

    def __post_init__(self):
        w = tuple(int(x) for x in self.windows)
        if not w or list(w) != sorted(set(w)) or w[0] < 1:
            raise ContamscanError(f"windows must be increasing positive word counts, got {self.windows}")
        object.__setattr__(self, "windows", w)
        if not 1 <= self.max_windows <= 16:
            raise ContamscanError(f"max_windows must be between 1 and 16, got {self.max_windows}")
        if self.vocab_size < 1 or self.label_words < 0 or self.min_docs < 1:
            raise ContamscanError("vocab_size and min_docs must be positive, label_words >= 0")
        if self.smoothing <= 0:
            raise ContamscanError(f"smoothing must be positive, got {self.smoothing}")
        if self.clusters < 1:
            raise ContamscanError(f"--clusters must be at least 1, got {self.clusters}")

    @property
    def max_words(self) -> int:
        return self.max_windows * self.windows[-1]


# --------------------------------------------------------------------------- families


def family_of(label: str, rules=(), by: str = "org") -> str:
    """The family of a model label: the first rule whose glob matches (``rules`` is a list of
    ``(family, [glob, ...])``), else by ``by``: "label" keeps the label; "org" takes the
    organisation prefix (``openai/gpt-5-mini`` -> ``openai``) or, for a label without one, its
    first word (``claude-sonnet-4-5`` -> ``claude``)."""
    for fam, globs in rules:
        if any(fnmatch.fnmatchcase(label, g) for g in globs):
            return fam
    if by == "label":
        return label
    if by != "org":
        raise ContamscanError(f"--family-by must be 'org' or 'label', got {by!r}")
    if "/" in label:
        return label.split("/", 1)[0]
    return re.split(r"[-_ .:@]", label, maxsplit=1)[0] or label


def parse_family_rules(specs) -> list[tuple[str, list[str]]]:
    """``["anthropic=claude-*", "google=google/*,sam-paech/gemma-*"]`` -> rules for :func:`family_of`."""
    rules = []
    for spec in specs or ():
        name, sep, globs = spec.partition("=")
        if not sep or not name.strip() or not globs.strip():
            raise ContamscanError(f"--family takes NAME=GLOB[,GLOB...], got {spec!r}")
        rules.append((name.strip(), [g.strip() for g in globs.split(",") if g.strip()]))
    return rules


# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True, nogil=True)
def _layout(n, lengths, max_windows):
    """(window length index, number of windows) for a document of ``n`` words; (-1, 0) when
    it is shorter than every window."""
    b = -1
    for i in range(lengths.shape[0]):
        if lengths[i] <= n:
            b = i
    if b < 0:
        return -1, 0
    L = lengths[b]
    return b, min(max_windows, (n + L - 1) // L)


@numba.njit(inline="always")
def _window_start(n, L, W, j):
    """Windows spread evenly from the first word to the last (they overlap when W*L > n)."""
    if W == 1:
        return 0
    return (j * (n - L) + (W - 1) // 2) // (W - 1)


@numba.njit(cache=True, nogil=True)
def _count_kernel(ids, offsets, docs, comp, lengths, max_windows, max_words, df, nd, stamp, tick):
    """For each document ``docs[i]`` of component ``comp[i]``: nd[b, c] += 1 and, for every
    vocabulary word in each of its W windows, df[b, c, v] += 1 / W."""
    for i in range(docs.shape[0]):
        d = docs[i]
        lo = offsets[d]
        n = min(offsets[d + 1] - lo, max_words)
        b, W = _layout(n, lengths, max_windows)
        if b < 0:
            continue
        L = lengths[b]
        c = comp[i]
        nd[b, c] += 1.0
        w = 1.0 / W
        for j in range(W):
            s = lo + _window_start(n, L, W, j)
            tick += 1
            for k in range(s, s + L):
                v = ids[k]
                if v >= 0 and stamp[v] != tick:
                    stamp[v] = tick
                    df[b, c, v] += w
    return tick


@numba.njit(cache=True, nogil=True)
def _loglik_kernel(ids, offsets, lengths, max_windows, max_words, logit, const, out, bucket, obs, nd, stamp, tick):
    """out[d, g]: the mean over document d's windows of their log-likelihood under component
    g; bucket[d]: its window length index (-1: too short). obs[b, v] += OBS_SCALE / W for each
    window holding word v, nd[b] += 1 (the shard's own occurrence counts, for its fingerprint).
    ``logit`` is [windows, vocab, components]: a word's logits for all components are adjacent."""
    G = logit.shape[2]
    for d in range(offsets.shape[0] - 1):
        lo = offsets[d]
        n = min(offsets[d + 1] - lo, max_words)
        b, W = _layout(n, lengths, max_windows)
        bucket[d] = b
        for g in range(G):
            out[d, g] = 0.0
        if b < 0:
            continue
        L = lengths[b]
        nd[b] += 1.0
        w = 1.0 / W
        acc = np.zeros(G)
        for j in range(W):
            s = lo + _window_start(n, L, W, j)
            tick += 1
            for k in range(s, s + L):
                v = ids[k]
                if v >= 0 and stamp[v] != tick:
                    stamp[v] = tick
                    obs[b, v] += OBS_SCALE // W
                    for g in range(G):
                        acc[g] += logit[b, v, g]
        for g in range(G):
            out[d, g] = const[b, g] + acc[g] * w
    return tick


@numba.njit(inline="always")
def _density(f, i, pi):
    """Document ``i``'s likelihood under the mixture: sum_k pi_k f_ik."""
    den = 0.0
    for k in range(f.shape[1]):
        den += pi[k] * f[i, k]
    return den


@numba.njit(cache=True, nogil=True)
def _em_step(f, w, pi, out, total):
    """One EM update of the mixture weights: out_k = pi_k * mean_i(w_i f_ik / sum_j pi_j f_ij)."""
    n, G = f.shape
    for k in range(G):
        out[k] = 0.0
    for i in range(n):
        if w[i] == 0:
            continue
        den = _density(f, i, pi)
        if den <= 0.0:
            continue
        s = w[i] / den
        for k in range(G):
            out[k] += s * f[i, k]
    for k in range(G):
        out[k] *= pi[k] / total


@numba.njit(cache=True, nogil=True)
def _em(f, w, pi, tol, max_iter):
    """Mixture weights by EM: maximise sum_i w_i log(sum_k pi_k f_ik) over the simplex, from
    ``pi`` (updated in place), accelerated by SQUAREM (Varadhan & Roland 2008: an extrapolation
    from two EM steps, kept only when it stays on the simplex; then one EM step). Same fixed
    point as plain EM, several times fewer passes over the documents when components are
    alike. Stops when no weight moves by ``tol``; returns the number of EM steps."""
    n, G = f.shape
    total = 0.0
    for i in range(n):
        total += w[i]
    if total <= 0.0:
        return 0
    p1, p2, q = np.empty(G), np.empty(G), np.empty(G)
    steps = 0
    while steps < max_iter:
        _em_step(f, w, pi, p1, total)
        _em_step(f, w, p1, p2, total)
        steps += 2
        rr = vv = 0.0
        for k in range(G):
            r = p1[k] - pi[k]
            v = p2[k] - 2.0 * p1[k] + pi[k]
            rr += r * r
            vv += v * v
        if rr == 0.0 or vv == 0.0:
            a = -1.0
        else:
            a = min(-1.0, -np.sqrt(rr / vv))
        ok = True
        s = 0.0
        for k in range(G):
            r = p1[k] - pi[k]
            v = p2[k] - 2.0 * p1[k] + pi[k]
            q[k] = pi[k] - 2.0 * a * r + a * a * v
            if q[k] < 0.0:
                ok = False
            s += q[k]
        if not ok or s <= 0.0:
            for k in range(G):
                q[k] = p2[k]  # a = -1: plain EM
        else:
            for k in range(G):
                q[k] /= s
        _em_step(f, w, q, p1, total)  # stabilise: one EM step from the extrapolation
        steps += 1
        delta = 0.0
        for k in range(G):
            delta = max(delta, abs(p1[k] - pi[k]))
            pi[k] = p1[k]
        if delta < tol:
            break
    return steps


@numba.njit(cache=True, nogil=True)
def _em_boundary(f, w, pi, tol, max_iter, floor, rounds):
    """EM, then the boundary: multiplicative EM updates only approach a zero weight, so a
    component whose weight stays below ``floor`` is set to zero and the rest refitted; it comes
    back when the optimality (KKT) condition says it should, i.e. when
    sum_i w_i f_ik / sum_j pi_j f_ij > sum_i w_i. The maximum likelihood then has exact zeros,
    so a shard without AI text gets alpha = 0 (and intervals that can reach 0)."""
    n, G = f.shape
    _em(f, w, pi, tol, max_iter)
    total = 0.0
    for i in range(n):
        total += w[i]
    for _ in range(rounds):
        s = 0.0
        for k in range(G):
            if pi[k] < floor:
                pi[k] = 0.0
            s += pi[k]
        for k in range(G):
            pi[k] /= s
        _em(f, w, pi, tol, max_iter)
        grad = np.zeros(G)
        for i in range(n):
            if w[i] == 0:
                continue
            den = _density(f, i, pi)
            if den <= 0.0:
                continue
            for k in range(G):
                grad[k] += w[i] * f[i, k] / den
        worst, best = -1, 1.0 + 1e-6
        for k in range(G):
            if pi[k] == 0.0 and grad[k] / total > best:
                worst, best = k, grad[k] / total
        if worst < 0:
            return
        pi[worst] = floor  # it belongs in the mixture: let EM size it
        s = 0.0
        for k in range(G):
            s += pi[k]
        for k in range(G):
            pi[k] /= s
        _em(f, w, pi, tol, max_iter)


@numba.njit(cache=True, nogil=True)
def _slot(h, mask):
    return (np.uint64(h) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(32)) & mask


@numba.njit(cache=True, nogil=True)
def _fill(hashes, keys, ids, used):
    mask = np.uint64(keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        j = _slot(hashes[i], mask)
        while used[j] and keys[j] != hashes[i]:
            j = (j + np.uint64(1)) & mask
        if not used[j]:  # a repeated hash keeps its first id
            used[j] = True
            keys[j] = hashes[i]
            ids[j] = i


@numba.njit(cache=True, nogil=True)
def _lookup(hashes, keys, ids, out):
    """out[i] = the id of hashes[i] in the open-addressing table (keys, ids), -1 if absent."""
    mask = np.uint64(keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        h = hashes[i]
        j = _slot(h, mask)
        while True:
            v = ids[j]
            if v < 0:
                out[i] = -1
                break
            if keys[j] == h:
                out[i] = v
                break
            j = (j + np.uint64(1)) & mask


def _hash_table(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An open-addressing table (load <= 1/4) from word hash to vocabulary id."""
    size = 1 << max(4, int(4 * max(len(hashes), 1) - 1).bit_length())
    keys, ids = np.zeros(size, np.uint32), np.full(size, -1, np.int32)
    _fill(np.asarray(hashes, np.uint32), keys, ids, np.zeros(size, np.bool_))
    return keys, ids


# --------------------------------------------------------------------------- the profile


@dataclass
class Profile:
    """An opened profile: per window length and component, the log-probabilities of the
    vocabulary's words occurring in a window."""

    path: Path
    manifest: dict
    params: ProfileParams
    words: list  # vocabulary, by word id
    hashes: np.ndarray  # uint32, by word id
    components: list  # names, human components first
    kinds: list  # HUMAN | AI per component
    counts: np.ndarray  # float64 [windows, components, vocab]: windows holding the word
    documents: np.ndarray  # float64 [windows, components]
    logit: np.ndarray = field(init=False)  # float64 [windows, components, vocab]
    const: np.ndarray = field(init=False)  # float64 [windows, components]
    human_rate: np.ndarray = field(init=False)  # float64 [windows, vocab]: the human baseline's rate

    def __post_init__(self):
        p, self.logit, self.const = _probabilities(self.counts, self.documents, self.params.smoothing)
        human = np.array([k == HUMAN for k in self.kinds])
        n_h = self.documents[:, human]  # the baseline: human components weighted by their documents
        self.human_rate = (p[:, human, :] * n_h[:, :, None]).sum(1) / np.maximum(n_h.sum(1), 1e-12)[:, None]
        self._lengths = np.array(self.params.windows, np.int64)
        self._table_keys, self._table_ids = _hash_table(self.hashes)
        self._logit_by_word = np.ascontiguousarray(self.logit.transpose(0, 2, 1))
        self._stamp = np.zeros(len(self.words), np.int64)
        self._tick = 0

    @property
    def labels(self) -> list:
        """The AI components (model labels or families)."""
        return [c for c, k in zip(self.components, self.kinds) if k == AI]

    @property
    def human_mask(self) -> np.ndarray:
        return np.array([k == HUMAN for k in self.kinds])

    def word_ids(self, hashes: np.ndarray) -> np.ndarray:
        """Vocabulary id of each word hash, -1 for words outside the vocabulary."""
        out = np.empty(len(hashes), np.int32)
        _lookup(np.asarray(hashes, np.uint32), self._table_keys, self._table_ids, out)
        return out

    def terms(self, texts, hasher=None) -> "DocTerms":
        """Per-document log-likelihoods under every component (see :class:`DocTerms`)."""
        w = word_hashes(texts, max_words=self.params.max_words, hasher=hasher)
        return self.terms_of_words(w.hash, w.offsets, w.status)

    def terms_of_words(self, hashes, offsets, status=None) -> "DocTerms":
        ids = self.word_ids(hashes)
        n = len(offsets) - 1
        G, B, V = len(self.components), len(self.params.windows), len(self.words)
        out = np.zeros((n, G))
        bucket = np.zeros(n, np.int64)
        obs = np.zeros((B, V))
        nd = np.zeros(B)
        self._tick = _loglik_kernel(ids, offsets, self._lengths, self.params.max_windows, self.params.max_words,
                                    self._logit_by_word, self.const, out, bucket, obs, nd, self._stamp, self._tick)
        scored = bucket >= 0
        if status is not None:
            scored &= status != INVALID_UTF8
        ll = out[scored]
        ll -= ll.max(1, keepdims=True) if len(ll) else 0.0
        return DocTerms(ll.astype(np.float32), int(n - scored.sum()), obs, nd)

    def summary(self) -> dict:
        return {"path": str(self.path), "words": len(self.words), "windows": list(self.params.windows),
                "components": [{"name": c, "kind": k, "documents": int(self.documents[-1, g] if self.documents.size else 0)}
                               for g, (c, k) in enumerate(zip(self.components, self.kinds))],
                "labels": self.manifest.get("labels", {})}


def _probabilities(counts, documents, smoothing):
    """Smoothed rates p[b, g, v] = (counts + s * pooled) / (documents + s), their logits and
    the per-component constants sum_v log(1 - p). A component with no documents at a window
    length gets NO_DATA there (documents of that length are never assigned to it)."""
    pooled = (counts.sum(1) + 0.5) / (documents.sum(1)[:, None] + 1.0)
    p = (counts + smoothing * pooled[:, None, :]) / (documents[:, :, None] + smoothing)
    p = np.clip(p, 1e-9, 1 - 1e-9)
    logit = np.log(p) - np.log1p(-p)
    const = np.log1p(-p).sum(2)
    const = np.where(documents > 0, const, NO_DATA)
    return p, logit, const


@dataclass(frozen=True)
class DocTerms:
    """What a batch of documents contributes to a shard's style estimate."""

    ll: np.ndarray  # float32 [scored documents, components]: log-likelihoods minus each row's max
    unscored: int  # documents too short (or invalid) to score
    obs: np.ndarray  # float64 [windows, vocab]: windows holding each word, in units of 1/OBS_SCALE
    nd: np.ndarray  # float64 [windows]: scored documents per window length


# --------------------------------------------------------------------------- estimation

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
    _em(f, w, pi, tol, max_iter)
    return pi


def estimate(ll: np.ndarray, human: np.ndarray, bootstrap: int = BOOTSTRAP, seed: int = SEED):
    """(alpha, ci95, AI component weights among themselves, bootstrap replicates of alpha)."""
    n, G = ll.shape
    if n == 0:
        return None, [0.0, 1.0], np.zeros(int((~human).sum())), np.zeros(0)
    f = np.exp(ll.astype(np.float64) - ll.max(1, keepdims=True))
    pi = np.full(G, 1.0 / G)
    _em_boundary(f, np.ones(n), pi, 1e-8, 10000, 1e-4, G)
    alpha = float(pi[~human].sum())
    rng = np.random.default_rng(seed)
    reps = np.empty(bootstrap)
    m = min(n, BOOTSTRAP_DOCS)  # m-out-of-n above BOOTSTRAP_DOCS documents, rescaled below
    for r in range(bootstrap):
        rows, w = np.unique(rng.integers(0, n, m), return_counts=True)  # EM over the documents drawn
        p = np.where(pi > 0, pi, 1e-3)  # from the fit, with every component free to return
        p /= p.sum()
        _em_boundary(f[rows], w.astype(np.float64), p, 1e-6, 2000, 1e-4, 1)  # one round: zeros, not KKT
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


# --------------------------------------------------------------------------- build


def _read_corpus(inputs, text_field: str, group_field: str | None, strict: bool, max_words: int, progress=None):
    """Word hashes of every document of ``inputs`` and its group (the ``group_field`` value
    when the file has it, else the file's path). Returns (hashes, offsets, groups, files)."""
    from .readers import Fields, check_fields, discover, has_field, read_batches

    shards, _ = discover(list(inputs) if not isinstance(inputs, (str, os.PathLike)) else [inputs])
    if not shards:
        raise ContamscanError(f"no files found in {', '.join(map(str, inputs))} (expected .parquet, .jsonl, "
                              ".json, .jsonl.gz, .jsonl.zst, .arrow)")
    hashes, lens, groups, skipped = [], [], [], Counter()
    for shard in shards:
        use_group = group_field is not None and has_field(shard, group_field)
        fields = Fields(text=text_field, label=group_field if use_group else None)
        check_fields(shard, fields)
        for batch in read_batches(shard, fields, strict=strict):
            skipped.update(b.reason for b in batch.bad)
            w = word_hashes(batch.texts, max_words=max_words)
            ok = w.status != INVALID_UTF8
            skipped["invalid_utf8"] += int((~ok).sum())
            n_words = np.diff(w.offsets)
            keep = np.flatnonzero(ok & (n_words > 0))
            skipped["no_words"] += int((ok & (n_words == 0)).sum())
            for d in keep:
                hashes.append(w.hash[w.offsets[d]:w.offsets[d + 1]])
            lens.append(n_words[keep])
            if use_group:
                vals = batch.labels.to_pylist()
                groups += [vals[d] if vals[d] is not None else shard.relpath for d in keep]
            else:
                groups += [shard.relpath] * len(keep)
            if progress:
                progress(batch)
    lens = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint32)
    return flat, offsets, groups, shards, {k: v for k, v in skipped.items() if v}


def _doc_frequency(hashes, offsets) -> tuple[np.ndarray, np.ndarray]:
    """Distinct hashes and the number of documents holding each."""
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    pairs = np.unique((doc.astype(np.uint64) << np.uint64(32)) | hashes.astype(np.uint64))
    return np.unique((pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32), return_counts=True)


def _jeffreys(p, q):
    """Jeffreys divergence between Bernoulli(p) and Bernoulli(q), elementwise."""
    return (p - q) * ((np.log(p) - np.log1p(-p)) - (np.log(q) - np.log1p(-q)))


def build_profile(human, ai, out, *, text_field: str = "text", label_field: str = "model",
                  group_field: str | None = "source", family_rules=(), family_by: str = "org",
                  params: ProfileParams = ProfileParams(), strict: bool = False, progress=None) -> Profile:
    """Build a style profile from human text (``human``) and labelled AI text (``ai``): files,
    directories or globs of Parquet, JSON Lines or Arrow. AI labels (``label_field``) are
    mapped to families by :func:`family_of`; human documents are grouped by ``group_field``
    where a file has it, else by file. Writes the profile to ``out`` and returns it opened."""
    from .readers import Fields, check_fields, discover

    t0 = time.time()
    out = storage.localize(out)
    if storage.is_remote(out):
        storage.check_writable(out)  # before the work, not after it
    mw = params.max_words
    for s in discover(list(ai) if not isinstance(ai, (str, os.PathLike)) else [ai])[0]:
        check_fields(s, Fields(text=text_field, label=label_field))
    h_hash, h_off, h_groups, h_files, h_skip = _read_corpus(human, text_field, group_field, strict, mw, progress)
    a_hash, a_off, a_labels, a_files, a_skip = _read_corpus(ai, text_field, label_field, strict, mw, progress)
    if not len(h_groups) or not len(a_labels):
        raise ContamscanError("a profile needs human documents and AI documents with words")
    families = [family_of(lb if lb is not None else "unknown", family_rules, family_by) for lb in a_labels]
    fam_names = sorted(set(families))
    label_counts = Counter(a_labels)
    fam_members = {f: sorted({lb for lb, fam in zip(a_labels, families) if fam == f}) for f in fam_names}
    group_names = sorted(set(h_groups))
    lengths = np.array(params.windows, np.int64)
    B = len(lengths)

    # candidates: words in at least min_docs documents of the profile
    hu, hc = _doc_frequency(h_hash, h_off)
    au, ac = _doc_frequency(a_hash, a_off)
    allw = np.concatenate([hu, au])
    allc = np.concatenate([hc, ac])
    order = np.argsort(allw, kind="stable")
    u, start = np.unique(allw[order], return_index=True)
    cnt = np.add.reduceat(allc[order], start) if len(order) else np.zeros(0, np.int64)
    cand = u[cnt >= params.min_docs]
    if not len(cand):
        raise ContamscanError(f"no word occurs in {params.min_docs} profile documents: too little text")

    def ids_of(hashes, vocab):
        pos = np.minimum(np.searchsorted(vocab, hashes), len(vocab) - 1)
        return np.where(vocab[pos] == hashes, pos, -1).astype(np.int32)

    def counts(ids_h, ids_a, h_comp, n_h_comp, V):
        G = n_h_comp + len(fam_names)
        df, nd = np.zeros((B, G, V)), np.zeros((B, G))
        stamp = np.zeros(V, np.int64)
        a_comp = np.array([n_h_comp + fam_names.index(f) for f in families], np.int64)
        tick = _count_kernel(ids_h, h_off, np.arange(len(h_off) - 1), h_comp, lengths, params.max_windows, mw,
                             df, nd, stamp, 0)
        _count_kernel(ids_a, a_off, np.arange(len(a_off) - 1), a_comp, lengths, params.max_windows, mw, df, nd,
                      stamp, tick)
        return df, nd

    # vocabulary: divergence at the longest window length, human groups vs AI families
    h_group = np.array([group_names.index(g) for g in h_groups], np.int64)
    Hg = len(group_names)
    df, nd = counts(ids_of(h_hash, cand), ids_of(a_hash, cand), h_group, Hg, len(cand))
    p, _, _ = _probabilities(df, nd, params.smoothing)
    rb = int(np.flatnonzero(nd.sum(1) > 0).max()) if nd.sum() else B - 1
    ph, pa_ = p[rb, :Hg].mean(0), p[rb, Hg:].mean(0)
    div = _jeffreys(pa_, ph)
    chosen = set(np.argsort(-div, kind="stable")[:params.vocab_size].tolist())
    F = len(fam_names)
    if F > 1 and params.label_words:
        for k in range(F):
            rest = (p[rb, Hg:].sum(0) - p[rb, Hg + k]) / (F - 1)
            chosen |= set(np.argsort(-_jeffreys(p[rb, Hg + k], rest), kind="stable")[:params.label_words].tolist())
    sel = np.array(sorted(chosen), np.int64)
    vocab = cand[sel]
    ids_h, ids_a = ids_of(h_hash, vocab), ids_of(a_hash, vocab)
    V = len(vocab)

    # human components: groups split into sub-clusters, refined by classification EM
    rng = np.random.default_rng(params.seed)
    comp = np.empty(len(h_groups), np.int64)
    names = []
    for g, name in enumerate(group_names):
        members = np.flatnonzero(h_group == g)
        k = max(1, min(params.clusters, len(members) // params.min_cluster_docs))
        comp[members] = len(names) + rng.integers(0, k, len(members))
        names += [name] if k == 1 else [f"{name}#{j + 1}" for j in range(k)]
    H = len(names)
    lengths_h = np.arange(len(h_off) - 1)
    for _ in range(params.cluster_iterations if H > 1 else 0):
        df, nd = counts(ids_h, ids_a, comp, H, V)
        _, logit, const = _probabilities(df, nd, params.smoothing)
        ll = np.zeros((len(lengths_h), H + F))
        _loglik_kernel(ids_h, h_off, lengths, params.max_windows, mw, np.ascontiguousarray(logit[:, :H].transpose(0, 2, 1)),
                       const[:, :H].copy(),
                       ll[:, :H], np.zeros(len(lengths_h), np.int64), np.zeros((B, V)), np.zeros(B),
                       np.zeros(V, np.int64), 0)
        scored = ll[:, :H].any(1)
        new = np.where(scored, ll[:, :H].argmax(1), comp)
        moved = int((new != comp).sum())
        comp = new
        if moved == 0:
            break
    df, nd = counts(ids_h, ids_a, comp, H, V)
    keep_h = [c for c in range(H) if nd[:, c].sum() > 0]  # clusters that emptied are dropped
    keep = np.array(keep_h + list(range(H, H + F)), np.int64)
    df, nd = df[:, keep], nd[:, keep]
    components = [names[c] for c in keep_h] + fam_names
    kinds = [HUMAN] * len(keep_h) + [AI] * F

    words = _resolve_words(list(human) + list(ai) if not isinstance(human, (str, os.PathLike)) else [human, ai],
                           vocab, text_field, strict)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.time() - t0, 3),
        "params": {**asdict(params), "windows": list(params.windows)},
        "normalization": _normalization(),
        "word_hash": "xxh32-seed0-utf8",
        "text_field": text_field,
        "label_field": label_field,
        "group_field": group_field,
        "family_by": family_by,
        "family_rules": [[f, g] for f, g in family_rules],
        "components": [{"name": c, "kind": k, "documents": int(nd[:, g].sum())}
                       for g, (c, k) in enumerate(zip(components, kinds))],
        "labels": {f: {lb: label_counts[lb] for lb in fam_members[f]} for f in fam_names},
        "documents": {"human": int(len(h_groups)), "ai": int(len(a_labels))},
        "human_groups": {g: int((h_group == i).sum()) for i, g in enumerate(group_names)},
        "skipped": {"human": h_skip, "ai": a_skip},
        "inputs": {"human": [s.relpath for s in h_files], "ai": [s.relpath for s in a_files]},
    }
    if storage.is_remote(out):  # written here, uploaded (the manifest last), kept as the cache entry
        import shutil

        local = storage.new_build_dir("profiles")
        try:
            save_profile(local, manifest, words, vocab, div[sel], components, kinds, df, nd, params)
            storage.upload_dir(local, out, list(FILES))
            entry = storage.adopt_dir(local, out, "profiles")
        finally:
            shutil.rmtree(local, ignore_errors=True)
        profile = open_profile(entry, verify=False)
        profile.path = storage.display(out)
        return profile
    save_profile(Path(out), manifest, words, vocab, div[sel], components, kinds, df, nd, params)
    return open_profile(out)


def _normalization() -> str:
    from .text import NORMALIZATION, UNICODE_VERSION

    return f"{NORMALIZATION} (Unicode {UNICODE_VERSION})"


def _resolve_words(inputs, vocab: np.ndarray, text_field: str, strict: bool) -> list:
    """The normalised spelling of each vocabulary hash: found in the inputs (one occurrence
    each; they are frequent, so the first batches usually suffice)."""
    from .readers import Fields, discover, read_batches
    from .text import normalize

    want = {int(h): i for i, h in enumerate(vocab)}
    words = [None] * len(vocab)
    left = len(want)
    shards, _ = discover(inputs)
    for shard in shards:
        for batch in read_batches(shard, Fields(text=text_field), strict=strict):
            w = word_hashes(batch.texts, spans=True)
            ids = np.searchsorted(vocab, w.hash)
            ids = np.minimum(ids, len(vocab) - 1)
            hit = np.flatnonzero((vocab[ids] == w.hash))
            if not len(hit):
                continue
            first_ids, first = np.unique(ids[hit], return_index=True)
            doc = np.searchsorted(w.offsets, hit[first], side="right") - 1
            for v, k, d in zip(first_ids, hit[first], doc):
                if words[v] is None:
                    raw = batch.texts[int(d)].as_py().encode()[w.start[k]:w.stop[k]]
                    words[v] = normalize(raw.decode("utf-8", "replace"))
                    left -= 1
            if left == 0:
                return words
    return [x if x is not None else f"#{int(h):08x}" for x, h in zip(words, vocab)]


# --------------------------------------------------------------------------- files


def save_profile(out: Path, manifest: dict, words, vocab, divergence, components, kinds, counts, documents,
                 params: ProfileParams) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # the manifest is written last: no manifest, no profile
    B, G, V = counts.shape
    atomic_write_table(out / "words.parquet", pa.table({
        "word_id": pa.array(np.arange(V), pa.int32()),
        "word": pa.array(words, pa.string()),
        "hash": pa.array(vocab, pa.uint32()),
        "divergence": pa.array(divergence, pa.float64()),
    }))
    b, g, v = np.nonzero(counts)
    atomic_write_table(out / "counts.parquet", pa.table({
        "component": pa.array([components[i] for i in g], pa.string()),
        "window": pa.array(np.asarray(params.windows)[b], pa.int32()),
        "word_id": pa.array(v, pa.int32()),
        "windows_with_word": pa.array(counts[b, g, v], pa.float64()),
    }))
    bb, gg = np.meshgrid(np.arange(B), np.arange(G), indexing="ij")
    atomic_write_table(out / "components.parquet", pa.table({
        "component": pa.array([components[i] for i in gg.ravel()], pa.string()),
        "kind": pa.array([kinds[i] for i in gg.ravel()], pa.string()),
        "window": pa.array(np.asarray(params.windows)[bb.ravel()], pa.int32()),
        "documents": pa.array(documents.ravel(), pa.float64()),
    }))
    manifest = {**manifest, "files": {name: {"bytes": (out / name).stat().st_size,
                                             "xxh3_128": xxhash.xxh3_128_hexdigest((out / name).read_bytes())}
                                      for name in FILES}}
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())


def open_profile(path, verify: bool = True) -> Profile:
    """Open a profile directory (checks the manifest and, with ``verify``, every checksum). A
    remote profile (a URI) is downloaded once into the local cache, verified as it arrives."""
    path = storage.localize(path)
    if storage.is_remote(path):
        def check(manifest: dict) -> None:
            if manifest.get("format") != FORMAT:
                raise ContamscanError(f"{storage.display(path)} is not a style profile (format {manifest.get('format')!r})")

        local, fetched = storage.fetch_dir(path, "profiles", what="a style profile", check=check)
        profile = open_profile(local, verify=verify and not fetched)
        profile.path = storage.display(path)
        return profile
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise ContamscanError(f"{path} is not a style profile (no readable manifest.json: {e}); build one with "
                              "`contamscan profile build`") from None
    if manifest.get("format") != FORMAT:
        raise ContamscanError(f"{path} is not a style profile (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ContamscanError(f"{path}: profile format version {manifest.get('format_version')} is not supported "
                              f"(this contamscan reads version {FORMAT_VERSION}); rebuild it")
    for name in FILES:
        f = path / name
        if not f.exists():
            raise ContamscanError(f"{path}: {name} is missing")
        if verify and xxhash.xxh3_128_hexdigest(f.read_bytes()) != manifest["files"][name]["xxh3_128"]:
            raise ContamscanError(f"{path}: {name} does not match its checksum (corrupt or modified)")
    params = ProfileParams(**{k: tuple(v) if k == "windows" else v for k, v in manifest["params"].items()})
    words = pq.read_table(path / "words.parquet").sort_by("word_id")
    comps = pq.read_table(path / "components.parquet").to_pydict()
    counts = pq.read_table(path / "counts.parquet").to_pydict()
    components = [c["name"] for c in manifest["components"]]
    kinds = [c["kind"] for c in manifest["components"]]
    gi = {c: i for i, c in enumerate(components)}
    wi = {w: i for i, w in enumerate(params.windows)}
    B, G, V = len(params.windows), len(components), words.num_rows
    documents = np.zeros((B, G))
    for c, w, n in zip(comps["component"], comps["window"], comps["documents"]):
        documents[wi[w], gi[c]] = n
    cnt = np.zeros((B, G, V))
    if counts["component"]:
        b = np.array([wi[w] for w in counts["window"]])
        g = np.array([gi[c] for c in counts["component"]])
        cnt[b, g, np.asarray(counts["word_id"])] = counts["windows_with_word"]
    return Profile(path=path, manifest=manifest, params=params, words=words.column("word").to_pylist(),
                   hashes=words.column("hash").to_numpy().astype(np.uint32), components=components, kinds=kinds,
                   counts=cnt, documents=documents)


_CACHE: dict = {}


def open_cached(path) -> Profile:
    """One opened profile per path and process (scans open it once; forked workers inherit it)."""
    key = storage.key(path) if storage.is_remote(path) else str(Path(path).resolve())
    if key not in _CACHE:
        _CACHE[key] = open_profile(path)
    return _CACHE[key]


def manifest_digest(path) -> str:
    if storage.is_remote(path):
        return xxhash.xxh3_128_hexdigest(storage.read_bytes(storage.join(path, "manifest.json")))
    return xxhash.xxh3_128_hexdigest((Path(path) / "manifest.json").read_bytes())


__all__ = ["ProfileParams", "Profile", "build_profile", "open_profile", "open_cached", "family_of",
           "parse_family_rules", "estimate", "fit_mixture", "fingerprint", "combine", "public", "StyleTally",
           "DocTerms"]
