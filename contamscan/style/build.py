"""Building a style profile from human text and labelled AI text."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict

import numpy as np

from ..config import ProfileBuildOptions, ProfileParams, replace_options
from ..discover import discover
from ..errors import ContamscanError
from ..formats import check_fields, has_field, read_batches
from ..io import Location, artifact
from ..model import Fields
from ..sketch.minhash import INVALID_UTF8
from ..sketch.text import normalize
from ..sketch.words import word_hashes
from . import fallback
from .calibrate import calibrate
from .kernels import count_kernel, loglik_kernel
from .profile import (
    AI,
    FORMAT,
    FORMAT_VERSION,
    HUMAN,
    KIND,
    Profile,
    _probabilities,
    baseline_rate,
    family_of,
    normalization_name,
    open_profile,
    organisation_of,
    parse_family_rules,
    save_profile,
)


def _read_corpus(inputs, text_field: str, group_field: str | None, strict: bool, max_words: int, progress=None):
    """Word hashes of every document of ``inputs`` and its group (the ``group_field`` value
    when the file has it, else the file's path). Returns (hashes, offsets, groups, files)."""
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


def build_profile(human, ai, out, options: ProfileBuildOptions | None = None, *, params: ProfileParams | None = None,
                  progress=None, **fields) -> Profile:
    """Build a style profile from human text (``human``) and labelled AI text (``ai``).

    AI labels (``label_field``) are mapped to families by :func:`family_of` (``families``
    rules first, then ``family_by``); human documents are grouped by ``group_field`` where a
    file has it, else by file.

    Args:
        human: files, directories or globs (paths or URIs) of human text.
        ai: the same, of AI text with a label per record.
        out: the profile directory to write (a path or a URI); a profile there is replaced.
        options: how records are read and grouped (:class:`~contamscan.config.ProfileBuildOptions`);
            keyword arguments (``label_field="model"``) override its fields.
        params: how the profile is built (:class:`~contamscan.config.ProfileParams`).
        progress: called with each :class:`~contamscan.model.Batch` read.

    Returns:
        The new profile, opened.

    Raises:
        ContamscanError: no input files, a missing field, too little text.

    Example:
        >>> profile = build_profile(["human/"], ["outputs/"], "style.profile",
        ...                         families=("anthropic=claude-*",))  # doctest: +SKIP
    """
    o = replace_options(options or ProfileBuildOptions(), fields)
    params = params or ProfileParams()
    text_field, label_field, group_field, family_by, strict = o.text_field, o.label_field, o.group_field, \
        o.family_by, o.strict
    family_rules = parse_family_rules(o.families)
    t0 = time.time()
    out = Location.of(out)
    out.check_writable()  # before the work, not after it
    mw = params.max_words
    for s in discover(list(ai) if not isinstance(ai, (str, os.PathLike)) else [ai])[0]:
        check_fields(s, Fields(text=text_field, label=label_field))
    h_hash, h_off, h_groups, h_files, h_skip = _read_corpus(human, text_field, group_field, strict, mw, progress)
    a_hash, a_off, a_labels, a_files, a_skip = _read_corpus(ai, text_field, label_field, strict, mw, progress)
    if not len(h_groups) or not len(a_labels):
        raise ContamscanError("a profile needs human documents and AI documents with words")
    a_labels = [lb if lb is not None else "unknown" for lb in a_labels]
    # one AI component per model; families are sums of their models
    model_names = sorted(set(a_labels))
    family = {m: family_of(m, family_rules, family_by) for m in model_names}
    fam_names = sorted(set(family.values()))
    label_counts = Counter(a_labels)
    fam_members = {f: [m for m in model_names if family[m] == f] for f in fam_names}
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

    model_of = {m: i for i, m in enumerate(model_names)}
    a_model = np.array([model_of[lb] for lb in a_labels], np.int64)

    def counts(ids_h, ids_a, h_comp, n_h_comp, V):
        G = n_h_comp + len(model_names)
        df, nd = np.zeros((B, G, V)), np.zeros((B, G))
        stamp = np.zeros(V, np.int64)
        a_comp = n_h_comp + a_model
        tick = count_kernel(ids_h, h_off, np.arange(len(h_off) - 1), h_comp, lengths, params.max_windows, mw,
                             df, nd, stamp, 0)
        count_kernel(ids_a, a_off, np.arange(len(a_off) - 1), a_comp, lengths, params.max_windows, mw, df, nd,
                      stamp, tick)
        return df, nd

    # vocabulary: divergence at the longest window length, human groups vs AI models
    h_group = np.array([group_names.index(g) for g in h_groups], np.int64)
    Hg = len(group_names)
    df, nd = counts(ids_of(h_hash, cand), ids_of(a_hash, cand), h_group, Hg, len(cand))
    p, _, _ = _probabilities(df, nd, params.smoothing)
    rb = int(np.flatnonzero(nd.sum(1) > 0).max()) if nd.sum() else B - 1
    ph, pa_ = p[rb, :Hg].mean(0), p[rb, Hg:].mean(0)
    div = _jeffreys(pa_, ph)
    chosen = set(np.argsort(-div, kind="stable")[:params.vocab_size].tolist())
    F = len(model_names)
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
        loglik_kernel(ids_h, h_off, lengths, params.max_windows, mw, np.ascontiguousarray(logit[:, :H].transpose(0, 2, 1)),
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
    human_names = [names[c] for c in keep_h]
    words = _resolve_words(list(human) + list(ai) if not isinstance(human, (str, os.PathLike)) else [human, ai],
                           vocab, text_field, strict)
    # the broad human fallback (style.fallback): one more human component, counts without documents
    use_fallback = fallback.resolve(params.fallback)
    extra_df, extra_nd = np.zeros((B, 0, V)), np.zeros((B, 0))
    if use_fallback:
        Hk = len(keep_h)
        p_h, _, _ = _probabilities(df[:, :Hk], nd[:, :Hk], params.smoothing)
        human_rate = baseline_rate(p_h, nd[:, :Hk], np.ones(Hk, np.bool_))
        extra_df = (fallback.fallback_rates(words, lengths, human_rate) * fallback.PSEUDO_WINDOWS)[:, None, :]
        extra_nd = np.full((B, 1), fallback.PSEUDO_WINDOWS)
        human_names.append(fallback.NAME)
    Hn = len(human_names)
    df = np.concatenate([df[:, :len(keep_h)], extra_df, df[:, len(keep_h):]], 1)
    nd = np.concatenate([nd[:, :len(keep_h)], extra_nd, nd[:, len(keep_h):]], 1)
    components = human_names + model_names
    kinds = [HUMAN] * Hn + [AI] * F
    comp_h = np.searchsorted(np.array(keep_h), comp)  # each human document's component, renumbered
    calibration = calibrate(ids_h, h_off, comp_h, ids_a, a_off, Hn + a_model, components, kinds,
                            [g.split("#")[0] for g in components[:Hn]],
                            [family[m] for m in model_names], params,
                            fixed=(np.concatenate([np.zeros((B, len(keep_h), V)), extra_df, np.zeros((B, F, V))], 1),
                                   np.concatenate([np.zeros((B, len(keep_h))), extra_nd, np.zeros((B, F))], 1)))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.time() - t0, 3),
        "params": {**asdict(params), "windows": list(params.windows)},
        "normalization": normalization_name(),
        "word_hash": "xxh32-seed0-utf8",
        "text_field": text_field,
        "label_field": label_field,
        "group_field": group_field,
        "family_by": family_by,
        "family_rules": [[f, g] for f, g in family_rules],
        # every AI component's family and organisation, as the reports print them
        "families": {m: family[m] for m in model_names},
        "organisations": {m: organisation_of(m, family[m]) for m in model_names},
        "calibration": calibration,
        # human components made of counts without documents (style.fallback), and their source
        "fallback": {"components": [fallback.NAME], "source": fallback.version()} if use_fallback else None,
        "components": [{"name": c, "kind": k, "documents": int(nd[:, g].sum())}
                       for g, (c, k) in enumerate(zip(components, kinds))],
        "labels": {f: {lb: label_counts[lb] for lb in fam_members[f]} for f in fam_names},
        "documents": {"human": int(len(h_groups)), "ai": int(len(a_labels))},
        "human_groups": {g: int((h_group == i).sum()) for i, g in enumerate(group_names)},
        "skipped": {"human": h_skip, "ai": a_skip},
        "inputs": {"human": [s.relpath for s in h_files], "ai": [s.relpath for s in a_files]},
    }
    with artifact.building(out, KIND) as local:
        save_profile(local, manifest, words, vocab, div[sel], components, kinds, df, nd, params)
    return open_profile(out, verify=False)


def _resolve_words(inputs, vocab: np.ndarray, text_field: str, strict: bool) -> list:
    """The normalised spelling of each vocabulary hash: found in the inputs (one occurrence
    each; they are frequent, so the first batches usually suffice)."""
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
