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
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import ProfileParams
from ..errors import ContamscanError, ProfileFormatError
from ..io import Location, artifact
from ..sketch.minhash import INVALID_UTF8
from ..sketch.text import NORMALIZATION, UNICODE_VERSION
from ..sketch.words import word_hashes
from .kernels import NO_DATA, OBS_SCALE, hash_table, loglik_kernel, lookup  # noqa: F401 (OBS_SCALE: public)

FORMAT = "contamscan-style-profile"
FORMAT_VERSION = 2  # 2: one component per model, families and calibration in the manifest
KIND = artifact.Kind(FORMAT, FORMAT_VERSION, "format_version", "profiles", "a style profile", ProfileFormatError,
                     "build one with `contamscan profile build`", "profile")
FILES = ("words.parquet", "counts.parquet", "components.parquet")
HUMAN, AI = "human", "ai"


# --------------------------------------------------------------------------- families


# lineage families by default: one family per model line, whoever serves it (chatgpt-4o and
# openai/o3 are both "gpt"; a fine-tune named after its base model, sam-paech/gemma-3-27b-it-antislop,
# is "gemma"), with the organisation that made the line; checked in order, on the label's last
# path part, lower-cased (then on the whole label)
LINEAGES = (
    ("claude", "anthropic", ("claude*", "anthropic/*")),
    ("gpt", "openai", ("gpt*", "chatgpt*", "o1", "o1-*", "o3", "o3-*", "o4-*", "davinci*", "text-davinci*",
                       "openai/*")),
    ("gemma", "google", ("gemma*", "*-gemma-*", "codegemma*")),
    ("gemini", "google", ("gemini*", "bard*", "palm*")),
    ("llama", "meta", ("llama*", "*-llama-*", "meta-llama/*", "codellama*")),
    ("qwen", "alibaba", ("qwen*", "qwq*", "qwen/*")),
    ("deepseek", "deepseek", ("deepseek*",)),
    ("mistral", "mistral", ("mistral*", "mixtral*", "ministral*", "magistral*", "codestral*", "devstral*",
                            "pixtral*", "mistralai/*")),
    ("kimi", "moonshot", ("kimi*", "moonshot*", "moonshotai/*")),
    ("glm", "zhipu", ("glm*", "chatglm*", "z-ai/*", "zai-org/*", "thudm/*")),
    ("grok", "xai", ("grok*", "x-ai/*")),
    ("phi", "microsoft", ("phi-*", "phi[0-9]*")),
    ("command", "cohere", ("command*", "c4ai-*", "aya*", "cohere/*")),
    ("ling", "inclusionai", ("ling-*", "ring-*", "inclusionai/*")),
    ("minimax", "minimax", ("minimax*", "abab*")),
    ("yi", "01-ai", ("yi-*", "01-ai/*")),
    ("ernie", "baidu", ("ernie*",)),
    ("nova", "amazon", ("nova-*", "amazon/*")),
    ("olmo", "ai2", ("olmo*", "tulu*", "allenai/*")),
    ("falcon", "tii", ("falcon*", "tiiuae/*")),
    ("hermes", "nous", ("hermes*", "nousresearch/*")),
)
FAMILY_BY = ("lineage", "org", "label")


def _org_prefix(label: str) -> str:
    if "/" in label:
        return label.split("/", 1)[0]
    return re.split(r"[-_ .:@]", label, maxsplit=1)[0] or label


def family_of(label: str, rules=(), by: str = "lineage") -> str:
    """The family of a model label: the first rule whose glob matches (``rules`` is a list of
    ``(family, [glob, ...])``), else by ``by``: "lineage" finds the model line in
    :data:`LINEAGES` (``chatgpt-4o-latest`` -> ``gpt``, ``sam-paech/gemma-3-27b-it-antislop`` ->
    ``gemma``; a label of no known line falls back to "org"); "org" takes the organisation
    prefix (``openai/gpt-5-mini`` -> ``openai``) or, for a label without one, its first word
    (``claude-sonnet-4-5`` -> ``claude``); "label" keeps the label.

    Example:
        >>> family_of("openai/o3"), family_of("chatgpt-4o-latest"), family_of("openai/o3", by="org")
        ('gpt', 'gpt', 'openai')
    """
    for fam, globs in rules:
        if any(fnmatch.fnmatchcase(label, g) for g in globs):
            return fam
    if by not in FAMILY_BY:
        raise ContamscanError(f"`family_by` must be one of {', '.join(FAMILY_BY)}, got {by!r}")
    if by == "label":
        return label
    if by == "lineage":
        line = _lineage(label)
        if line is not None:
            return line[0]
    return _org_prefix(label)


def organisation_of(label: str, family: str) -> str:
    """The organisation behind a model: its lineage's (:data:`LINEAGES`), else the family's
    when that is a lineage name, else the label's organisation prefix.

    Example:
        >>> organisation_of("sam-paech/gemma-3-27b-it-antislop", "gemma")
        'google'
    """
    line = _lineage(label) or next((x for x in LINEAGES if x[0] == family), None)
    return line[1] if line is not None else _org_prefix(label)


def _lineage(label: str):
    low = label.lower()
    name = low.rsplit("/", 1)[-1]
    for line in LINEAGES:
        if any(fnmatch.fnmatchcase(name, g) for g in line[2] if "/" not in g):
            return line
    for line in LINEAGES:
        if any(fnmatch.fnmatchcase(low, g) for g in line[2]):
            return line
    return None


def parse_family_rules(specs) -> list[tuple[str, list[str]]]:
    """``["anthropic=claude-*", "google=google/*,sam-paech/gemma-*"]`` -> rules for :func:`family_of`."""
    rules = []
    for spec in specs or ():
        name, sep, globs = spec.partition("=")
        if not sep or not name.strip() or not globs.strip():
            raise ContamscanError(f"each of `families` takes NAME=GLOB[,GLOB...], got {spec!r}")
        rules.append((name.strip(), [g.strip() for g in globs.split(",") if g.strip()]))
    return rules


# --------------------------------------------------------------------------- the profile


@dataclass
class Profile:
    """An opened profile: per window length and component, the log-probabilities of the
    vocabulary's words occurring in a window. Open one with :func:`open_profile`.

    Example:
        >>> profile = open_profile("style.profile")  # doctest: +SKIP
        >>> profile.components[:2], profile.labels[:2]  # doctest: +SKIP
    """

    path: str  # as shown to people (a remote profile's URI)
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
        # a fallback component (style.fallback) has no documents of its own: it is left out of the
        # pooled rate the others are smoothed toward and of the human baseline's rate
        fallback = set((self.manifest.get("fallback") or {}).get("components", ()))
        built = np.array([c not in fallback for c in self.components])
        p, self.logit, self.const = _probabilities(self.counts, self.documents, self.params.smoothing, built)
        human = built & np.array([k == HUMAN for k in self.kinds])
        self.human_rate = baseline_rate(p, self.documents, human)
        self._lengths = np.array(self.params.windows, np.int64)
        self._table_keys, self._table_ids = hash_table(self.hashes)
        self._logit_by_word = np.ascontiguousarray(self.logit.transpose(0, 2, 1))
        self._stamp = np.zeros(len(self.words), np.int64)
        self._tick = 0

    @property
    def labels(self) -> list:
        """The AI components (model labels or families)."""
        return [c for c, k in zip(self.components, self.kinds) if k == AI]

    @property
    def families(self) -> dict:
        """{AI component: family}: the manifest's mapping (profiles of format 1 had one
        component per family, each its own)."""
        return dict(self.manifest.get("families") or {c: c for c in self.labels})

    @property
    def calibration(self) -> dict | None:
        """What the build measured on the profile's own documents (style.calibrate); None
        for a profile built before it."""
        return self.manifest.get("calibration")

    @property
    def human_mask(self) -> np.ndarray:
        return np.array([k == HUMAN for k in self.kinds])

    def word_ids(self, hashes: np.ndarray) -> np.ndarray:
        """Vocabulary id of each word hash, -1 for words outside the vocabulary."""
        out = np.empty(len(hashes), np.int32)
        lookup(np.asarray(hashes, np.uint32), self._table_keys, self._table_ids, out)
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
        self._tick = loglik_kernel(ids, offsets, self._lengths, self.params.max_windows, self.params.max_words,
                                    self._logit_by_word, self.const, out, bucket, obs, nd, self._stamp, self._tick)
        scored = bucket >= 0
        if status is not None:
            scored &= status != INVALID_UTF8
        ll = out[scored]
        best = ll.max(1) if len(ll) else np.zeros(0)
        ll -= best[:, None]
        return DocTerms(ll.astype(np.float32), int(n - scored.sum()), obs, nd, self._lengths[bucket[scored]],
                        best / np.maximum(self._lengths[bucket[scored]], 1))

    def summary(self) -> dict:
        return {"path": str(self.path), "words": len(self.words), "windows": list(self.params.windows),
                "components": [{"name": c, "kind": k, "documents": int(self.documents[-1, g] if self.documents.size else 0)}
                               for g, (c, k) in enumerate(zip(self.components, self.kinds))],
                "labels": self.manifest.get("labels", {})}


def _probabilities(counts, documents, smoothing, pooled_from=None):
    """Smoothed rates p[b, g, v] = (counts + s * pooled) / (documents + s), their logits and
    the per-component constants sum_v log(1 - p); ``pooled`` is over the components
    ``pooled_from`` selects (all by default). A component with no documents at a window
    length gets NO_DATA there (documents of that length are never assigned to it)."""
    sel = slice(None) if pooled_from is None else np.asarray(pooled_from, np.bool_)
    pooled = (counts[:, sel].sum(1) + 0.5) / (documents[:, sel].sum(1)[:, None] + 1.0)
    p = (counts + smoothing * pooled[:, None, :]) / (documents[:, :, None] + smoothing)
    p = np.clip(p, 1e-9, 1 - 1e-9)
    logit = np.log(p) - np.log1p(-p)
    const = np.log1p(-p).sum(2)
    const = np.where(documents > 0, const, NO_DATA)
    return p, logit, const


def baseline_rate(p: np.ndarray, documents: np.ndarray, human: np.ndarray) -> np.ndarray:
    """The human baseline's rate [windows, vocab]: the rates ``p`` of the ``human`` components,
    weighted by their documents."""
    n_h = documents[:, human]
    return (p[:, human, :] * n_h[:, :, None]).sum(1) / np.maximum(n_h.sum(1), 1e-12)[:, None]


@dataclass(frozen=True)
class DocTerms:
    """What a batch of documents contributes to a shard's style estimate."""

    ll: np.ndarray  # float32 [scored documents, components]: log-likelihoods minus each row's max
    unscored: int  # documents too short (or invalid) to score
    obs: np.ndarray  # float64 [windows, vocab]: windows holding each word, in units of 1/OBS_SCALE
    nd: np.ndarray  # float64 [windows]: scored documents per window length
    words: np.ndarray  # int64 [scored documents]: words per window (the length each was scored at)
    fit: np.ndarray  # float64 [scored documents]: log-likelihood per word under the best component


# --------------------------------------------------------------------------- files


def save_profile(out: Path, manifest: dict, words, vocab, divergence, components, kinds, counts, documents,
                 params: ProfileParams) -> None:
    """Write the files of a profile into the local directory ``out`` (from
    :func:`contamscan.io.artifact.building`), the manifest last."""
    B, G, V = counts.shape
    pq.write_table(pa.table({
        "word_id": pa.array(np.arange(V), pa.int32()),
        "word": pa.array(words, pa.string()),
        "hash": pa.array(vocab, pa.uint32()),
        "divergence": pa.array(divergence, pa.float64()),
    }), out / "words.parquet", compression="zstd")
    b, g, v = np.nonzero(counts)
    pq.write_table(pa.table({
        "component": pa.array([components[i] for i in g], pa.string()),
        "window": pa.array(np.asarray(params.windows)[b], pa.int32()),
        "word_id": pa.array(v, pa.int32()),
        "windows_with_word": pa.array(counts[b, g, v], pa.float64()),
    }), out / "counts.parquet", compression="zstd")
    bb, gg = np.meshgrid(np.arange(B), np.arange(G), indexing="ij")
    pq.write_table(pa.table({
        "component": pa.array([components[i] for i in gg.ravel()], pa.string()),
        "kind": pa.array([kinds[i] for i in gg.ravel()], pa.string()),
        "window": pa.array(np.asarray(params.windows)[bb.ravel()], pa.int32()),
        "documents": pa.array(documents.ravel(), pa.float64()),
    }), out / "components.parquet", compression="zstd")
    artifact.write_manifest(out, manifest, FILES)


def open_profile(path, verify: bool = True) -> Profile:
    """Open a profile directory (a local path or a URI), checking its manifest and, with
    ``verify``, every checksum. A remote profile is opened from its local copy in the cache.

    Args:
        path: the profile directory.
        verify: check every file's checksum (sizes are always checked).

    Returns:
        The :class:`Profile`.

    Raises:
        ProfileFormatError: not a profile, a damaged one, of another format version, or
            built with another text normalisation (its word hashes would not match).

    Example:
        >>> profile = open_profile("style.profile")  # doctest: +SKIP
        >>> profile.labels  # doctest: +SKIP
        ['claude', 'gemini', 'openai']
    """
    opened = artifact.open_dir(path, KIND, verify)
    manifest = opened.manifest
    built_with = str(manifest.get("normalization", "")).split(" (Unicode ")[0]
    if built_with != NORMALIZATION:
        raise ProfileFormatError(f"{opened.location.shown}: the profile was built with normalization {built_with!r}, and "
                                 f"this contamscan uses {NORMALIZATION!r}: its word hashes would not match; rebuild the "
                                 "profile (contamscan profile build)")
    words_file, counts_file, components_file = (opened.file(name) for name in FILES)  # listed, so checked
    try:
        params = ProfileParams(**{k: tuple(v) if k == "windows" else v for k, v in manifest["params"].items()})
        components = [c["name"] for c in manifest["components"]]
        kinds = [c["kind"] for c in manifest["components"]]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProfileFormatError(f"{opened.location.shown}/manifest.json: unreadable parameters or components "
                                 f"({type(e).__name__}: {e}); rebuild the profile") from e
    words = pq.read_table(words_file).sort_by("word_id")
    comps = pq.read_table(components_file).to_pydict()
    counts = pq.read_table(counts_file).to_pydict()
    _check_tables(opened.location.shown, params, components, kinds, words, comps, counts)
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
    return Profile(path=opened.location.shown, manifest=manifest, params=params,
                   words=words.column("word").to_pylist(), hashes=words.column("hash").to_numpy().astype(np.uint32),
                   components=components, kinds=kinds, counts=cnt, documents=documents)


def _check_tables(shown: str, params: ProfileParams, components: list, kinds: list, words: pa.Table, comps: dict,
                  counts: dict) -> None:
    """The tables against the manifest: every component, window and word id they name is one
    the manifest declares; a mismatch is a damaged or hand-edited profile, never an index out
    of bounds or a KeyError."""
    problems = []
    V = words.num_rows
    if words.column("word_id").to_pylist() != list(range(V)):
        problems.append(f"word ids are not 0..{V - 1}")
    if words.column("hash").null_count or words.column("word").null_count:
        problems.append("words.parquet has missing words or hashes")
    if len(set(components)) != len(components) or any(k not in (HUMAN, AI) for k in kinds):
        problems.append("components are repeated or of an unknown kind")
    if not params.windows or len(set(params.windows)) != len(params.windows) or min(params.windows) <= 0:
        problems.append(f"window lengths {list(params.windows)} are not distinct positive numbers")
    known_c, known_w = set(components), set(params.windows)
    for name, table in (("components.parquet", comps), ("counts.parquet", counts)):
        if not set(table["component"]) <= known_c or not set(table["window"]) <= known_w:
            problems.append(f"{name} names components or windows the manifest does not list")
    ids = np.asarray(counts["word_id"], np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= V):
        problems.append(f"counts.parquet names word ids outside 0..{V - 1}")
    values = np.asarray(counts["windows_with_word"] + comps["documents"], np.float64)
    if len(values) and not (np.isfinite(values).all() and values.min() >= 0):
        problems.append("counts are negative or not finite")
    if problems:
        raise ProfileFormatError(f"{shown}: the profile does not match its manifest ({'; '.join(problems)}); "
                                 "rebuild the profile")


def normalization_name() -> str:
    """What a profile's manifest records as its ``normalization``: the name and Unicode version."""
    return f"{NORMALIZATION} (Unicode {UNICODE_VERSION})"


_CACHE: dict = {}


def open_cached(path) -> Profile:
    """One opened profile per profile and process (scans open it once; forked workers inherit
    it), keyed on the path and its manifest's digest: a profile rebuilt at the same path is
    opened anew."""
    try:
        key = (Location.of(path).key, manifest_digest(path))
    except (OSError, ContamscanError):
        return open_profile(path)  # no readable manifest: open_profile says what is wrong
    if key not in _CACHE:
        for old in [k for k in _CACHE if k[0] == key[0]]:  # what was at that path before
            del _CACHE[old]
        _CACHE[key] = open_profile(path)
    return _CACHE[key]


def manifest_digest(path) -> str:
    return artifact.manifest_digest(path)
