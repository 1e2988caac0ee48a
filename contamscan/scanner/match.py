"""Matching one batch of texts against an index: whole-document copies by LSH, passages by
runs of shared anchors, optionally re-checked on the exact shingle sets. The result is the
batch's rows of matches.parquet; :mod:`.shard` sums them up per shard."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import ScanOptions
from ..index import ReferenceIndex
from ..index.kernels import best_chain
from ..model import HISTOGRAM_BINS, MATCH_SCHEMA, SHARED_WITH_KNOWN_HUMAN, empty, flags
from ..sketch.minhash import INVALID_UTF8, Anchors, Hasher, char_spans

CLOSE = 0.9  # another label's evidence within this ratio of the best's makes a match ambiguous
HUMAN_SHARE = 0.5  # a whole-document match this much of whose anchors are known human text is one
DENSE = 0.4  # share of a document's anchors shared with one reference that flags it whatever their order
MORE_SOURCES = 3  # other sources looked for in a document besides its strongest match
OVERLAP = 0.5  # a source whose passage lies this much inside a stronger one's is the same passage
_DOC_SCHEMA = pa.schema([f for f in MATCH_SCHEMA if f.name not in ("shard", "row", "turn")])


def _containment(similarity, n_doc, n_ref):
    """Estimated share of the reference's shingles found in the document, from the
    Jaccard estimate J and the two shingle counts: |D ∩ R| = J (|D| + |R|) / (1 + J)."""
    inter = similarity * (n_doc + n_ref) / (1.0 + similarity)
    return np.minimum(1.0, inter / np.maximum(n_ref, 1))


@dataclass(frozen=True)
class ExactCheck:
    """Exact shingle-set comparison of flagged documents with their references."""

    keep: np.ndarray  # bool: still flagged on the exact sets
    whole: np.ndarray  # bool: exact Jaccard >= threshold
    similarity: np.ndarray  # exact Jaccard
    containment: np.ndarray  # exact |D ∩ R| / |R|
    byte_start: np.ndarray  # the best run of shared shingles in the document (-1: none)
    byte_stop: np.ndarray


def exact_check(index: ReferenceIndex, hasher: Hasher, texts: pa.Array, docs: np.ndarray, refs: np.ndarray,
                options: ScanOptions) -> ExactCheck:
    """Compare documents ``docs`` of ``texts`` with references ``refs`` on their exact shingle
    sets. The flag rules are the estimate's, on exact values: Jaccard >= threshold, or a
    co-linear chain of shared shingles (first occurrences; the same score as the anchors')
    worth ``min_anchors`` anchors (its score / 2**anchor_bits) over ``min_words`` words."""
    n = len(docs)
    doc_sh = hasher.shingles(texts.take(pa.array(docs)))
    uref, which = np.unique(refs, return_inverse=True)
    ref_sh = hasher.shingles(index.texts.take(pa.array(uref)))
    d_ptr = np.searchsorted(doc_sh.doc, np.arange(n + 1))
    r_ptr = np.searchsorted(ref_sh.doc, np.arange(len(uref) + 1))
    bits = index.params.anchor_bits
    out = ExactCheck(np.zeros(n, np.bool_), np.zeros(n, np.bool_), np.zeros(n), np.zeros(n),
                     np.full(n, -1, np.int64), np.full(n, -1, np.int64))
    for i in range(n):
        lo, hi = d_ptr[i], d_ptr[i + 1]
        r_lo, r_hi = r_ptr[which[i]], r_ptr[which[i] + 1]
        ref_keys, ref_first = np.unique(ref_sh.key[r_lo:r_hi], return_index=True)
        keys, first = np.unique(doc_sh.key[lo:hi], return_index=True)
        shared = np.isin(keys, ref_keys, assume_unique=True)
        inter = int(np.count_nonzero(shared))
        union = len(keys) + len(ref_keys) - inter
        out.similarity[i] = inter / union if union else 0.0
        out.containment[i] = inter / len(ref_keys) if len(ref_keys) else 0.0
        out.whole[i] = out.similarity[i] >= index.params.threshold
        # the shared shingles in document order, at their first positions in both texts
        order = np.argsort(first[shared])
        ords = first[shared][order].astype(np.int64)
        ref_at = ref_first[np.searchsorted(ref_keys, keys[shared][order])]
        doc_words = doc_sh.word[lo + ords].astype(np.int64)
        ref_words = ref_sh.word[r_lo + ref_at].astype(np.int64)
        m = len(ords)
        # every shingle is compared here: a chain that skips none is a verbatim run
        score, n_shared, f, last, tight = best_chain(ords, doc_words, ref_words, np.ones(m, np.bool_), 0, m,
                                                     options.miss_penalty, np.empty(m), np.empty(m, np.int64))
        partial = False
        if n_shared:
            f, last = lo + f, lo + last
            out.byte_start[i], out.byte_stop[i] = doc_sh.start[f], doc_sh.stop[last]
            words = doc_sh.word[last] - doc_sh.word[f] + hasher.ngram
            chain = score / 2**bits if bits else 0.0
            partial = (chain >= options.min_anchors or tight and chain >= options.min_tight_anchors) and \
                words >= options.min_words
        out.keep[i] = out.whole[i] or partial
    return out


def _passes(anchors: Anchors, score, first, last, tight, options: ScanOptions, ngram: int):
    """Whether chains (scores, first and last anchors, tightness; arrays or single values)
    pass the partial-match rules: ``min_anchors`` of score, or ``min_tight_anchors`` for a
    tight chain, over ``min_words`` words."""
    words = anchors.word[last] - anchors.word[first] + ngram
    enough = (score >= options.min_anchors) | (tight & (score >= options.min_tight_anchors))
    return enough & (words >= options.min_words)


def _min_hits(options: ScanOptions) -> int:
    """Shared anchors below which no chain can pass: the kernels skip such references."""
    return math.ceil(min(options.min_anchors, options.min_tight_anchors))


def _more_sources(part, anchors, hit, is_whole, byte_start, byte_stop, options: ScanOptions, ngram: int):
    """A document's other sources: the next references by chain score whose chains pass the
    rules on their own and lie elsewhere in the document than every stronger source (a
    chain mostly inside a stronger one's passage is that passage again: a near-duplicate
    reference, or the alternative of an ambiguous match). Returns (text, reference, shared
    anchors, byte start, byte stop, rank) arrays of the sources found, ranks from 2."""
    out = [], [], [], [], [], []
    for i in np.flatnonzero(part.more_ref[hit, 0] >= 0):
        d = hit[i]
        if is_whole[i] and byte_start[i] < 0:
            continue  # a whole-document copy with no passage of its own: the document is that copy
        spans = [(byte_start[i], byte_stop[i])] if byte_start[i] >= 0 else []
        rank = 1
        for k in range(part.more_ref.shape[1]):
            r, f, last = part.more_ref[d, k], part.more_first[d, k], part.more_last[d, k]
            if r < 0:
                break
            if not _passes(anchors, part.more_score[d, k], f, last, part.more_tight[d, k], options, ngram):
                continue
            s, e = int(anchors.start[f]), int(anchors.stop[last])
            if any(min(e, b) - max(s, a) > OVERLAP * min(e - s, b - a) for a, b in spans):
                continue
            spans.append((s, e))
            rank += 1
            for col, v in zip(out, (d, r, part.more_total[d, k], s, e, rank)):
                col.append(v)
    types = (np.int64, np.int64, np.int64, np.int64, np.int64, np.int32)
    return tuple(np.array(c, t) for c, t in zip(out, types))


def _through_known_human(index: ReferenceIndex, anchors: Anchors, hit, refs, is_whole, options: ScanOptions,
                         ngram: int) -> np.ndarray:
    """Which matches hold only through text known to be human-written: the document and the
    reference share a passage of a public-domain book or speech, say, which both quote. A
    match is genuine when its reference still passes the rules on the document's other
    anchors (those not in known human text); a whole-document match needs besides that at
    least HUMAN_SHARE of the document's anchors in known human text to be set aside."""
    human = index.known_human(anchors.key)
    out = np.zeros(len(hit), np.bool_)
    check = np.isin(hit, np.unique(anchors.doc[human]))
    if not check.any():
        return out
    n_docs = int(hit.max()) + 1
    share = np.bincount(anchors.doc[human], minlength=n_docs)[:n_docs] / \
        np.maximum(np.bincount(anchors.doc, minlength=n_docs)[:n_docs], 1)
    keep = ~human & np.isin(anchors.doc, hit[check])
    rest = Anchors(anchors.key[keep], anchors.doc[keep], anchors.word[keep], anchors.start[keep], anchors.stop[keep])
    part = index.partial(rest, n_docs, _min_hits(options), options.miss_penalty, MORE_SOURCES)
    for i in np.flatnonzero(check):
        d, r = hit[i], refs[i]
        chains = [(part.best_ref[d], part.seg_score[d], part.seg_first[d], part.seg_last[d], part.seg_tight[d])] + \
            [(part.more_ref[d, k], part.more_score[d, k], part.more_first[d, k], part.more_last[d, k],
              part.more_tight[d, k]) for k in range(part.more_ref.shape[1])]
        genuine = any(ref == r and _passes(rest, score, first, last, tight, options, ngram)
                      for ref, score, first, last, tight in chains if ref >= 0)
        out[i] = not genuine and (not is_whole[i] or share[d] >= HUMAN_SHARE)
    return out


def _renumber(hit: np.ndarray) -> np.ndarray:
    """Ranks 1, 2, ... within each run of equal ``hit`` (rows in text order, strongest first)."""
    n = len(hit)
    starts = np.flatnonzero(np.append(True, hit[1:] != hit[:-1])) if n else np.zeros(0, np.int64)
    return (np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n))) + 1).astype(np.int32)


@dataclass(frozen=True)
class BatchMatches:
    """What one batch of texts matched: the rows of matches.parquet (``table``, without the
    shard name and record numbers, which the caller knows: one per text and reference, the
    strongest first, ``rank`` 1), with, per match, the batch position of its text (``hit``,
    repeated for a text of several sources) and its reference (``refs``); and, for every
    text, whether it was valid UTF-8 and the histogram bin of its best LSH candidate."""

    table: pa.Table  # MATCH_SCHEMA's columns from doc_id to alt_label
    hit: np.ndarray  # int64: position of each match's text in the batch
    refs: np.ndarray  # int64: each match's reference (index row)
    invalid: np.ndarray  # bool per text
    histogram: np.ndarray  # int64 [HISTOGRAM_BINS]: texts with an LSH candidate, by its similarity

    def flags(self) -> np.ndarray:
        """Which matches flag their text (not those through known human text), from ``table``."""
        return flags(self.table)


def match_batch(texts: pa.Array, index: ReferenceIndex, hasher: Hasher, options: ScanOptions,
                ids: pa.Array | None = None) -> BatchMatches:
    """Match a batch of texts (an Arrow string array) against ``index``: a row per text that
    holds a copy of a reference, whole or in part, and one more per other reference whose
    passage it also holds (``ids``: the texts' ids, for ``doc_id``)."""
    sigs = hasher.signatures(texts)
    invalid = sigs.status == INVALID_UTF8
    # whole documents: LSH candidates verified by estimated Jaccard
    res = index.query(sigs.values, skip=invalid | (sigs.n_shingles == 0))
    had_candidate = res.n_candidates > 0
    bins = np.minimum((res.similarity[had_candidate] * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    histogram = np.bincount(bins, minlength=HISTOGRAM_BINS)
    whole = res.best_ref >= 0
    # partial: a dense run of anchors shared with one reference
    part = None
    partial = np.zeros(len(whole), np.bool_)
    if sigs.anchors is not None and index.has_anchors:
        part = index.partial(sigs.anchors, len(whole), _min_hits(options), options.miss_penalty, MORE_SOURCES)
        chained = np.zeros(len(whole), np.bool_)
        if len(sigs.anchors):  # (a document without a chain has -1 for its anchors: any will do)
            first, last = np.maximum(part.seg_first, 0), np.maximum(part.seg_last, 0)
            chained = _passes(sigs.anchors, part.seg_score, first, last, part.seg_tight, options, hasher.ngram)
        # most of the document's anchors shared with one reference, in whatever order: a copy
        # whose sentences or paragraphs were moved about (a sibling shares far fewer)
        n_anchors = np.bincount(sigs.anchors.doc, minlength=len(whole))[:len(whole)]
        dense = (part.total_hits >= options.min_anchors) & (part.total_hits >= DENSE * n_anchors)
        partial = (part.best_ref >= 0) & (chained | dense)
    hit = np.flatnonzero(whole | partial)
    none = BatchMatches(empty(_DOC_SCHEMA), np.zeros(0, np.int64), np.zeros(0, np.int64), invalid, histogram)
    if not len(hit):
        return none
    is_whole = whole[hit]
    # the reference: the Jaccard winner for whole-document matches, else the anchors'
    refs = np.where(is_whole, res.best_ref[hit], part.best_ref[hit] if part is not None else -1)
    P = index.params.num_perm
    sim = np.count_nonzero(sigs.values[hit] == index.signatures[refs], axis=1) / P
    containment = _containment(sim, sigs.n_shingles[hit], index.ref_shingles[refs])
    byte_start = np.full(len(hit), -1, np.int64)
    byte_stop = np.full(len(hit), -1, np.int64)
    alt = np.where(is_whole & (res.alt_similarity[hit] >= CLOSE * sim), res.alt_ref[hit], -1)
    if part is not None:
        same = part.best_ref[hit] == refs  # the anchors tell the span and containment of this reference
        n_anchors = index.ref_anchors[refs]
        use = same & (n_anchors > 0)
        containment = np.where(use, np.minimum(1.0, part.total_hits[hit] / np.maximum(n_anchors, 1)), containment)
        first, last = part.seg_first[hit][same], part.seg_last[hit][same]
        byte_start[same] = sigs.anchors.start[first]
        byte_stop[same] = sigs.anchors.stop[last]
        close = ~is_whole & (part.alt_ref[hit] >= 0) & (part.alt_score[hit] >= CLOSE * part.seg_score[hit])
        alt = np.where(close, part.alt_ref[hit], alt)
    rank = np.ones(len(hit), np.int32)
    if part is not None:
        more = _more_sources(part, sigs.anchors, hit, is_whole, byte_start, byte_stop, options, hasher.ngram)
        if len(more[0]):
            m_hit, m_ref, m_total, m_start, m_stop, m_rank = more
            m_sim = np.count_nonzero(sigs.values[m_hit] == index.signatures[m_ref], axis=1) / P
            m_cont = np.minimum(1.0, m_total / np.maximum(index.ref_anchors[m_ref], 1))
            order = np.lexsort((np.concatenate([rank, m_rank]), np.concatenate([hit, m_hit])))
            hit, refs, rank = (np.concatenate(p)[order] for p in ((hit, m_hit), (refs, m_ref), (rank, m_rank)))
            is_whole = np.concatenate([is_whole, np.zeros(len(m_hit), np.bool_)])[order]
            sim, containment = np.concatenate([sim, m_sim])[order], np.concatenate([containment, m_cont])[order]
            byte_start = np.concatenate([byte_start, m_start])[order]
            byte_stop = np.concatenate([byte_stop, m_stop])[order]
            alt = np.concatenate([alt, np.full(len(m_hit), -1, np.int64)])[order]
    through_human = np.zeros(len(hit), np.bool_)
    if part is not None and len(index.anchor_human):
        through_human = _through_known_human(index, sigs.anchors, hit, refs, is_whole, options, hasher.ngram)
    if options.verify == "exact":
        ex = exact_check(index, hasher, texts, hit, refs, options)
        k = ex.keep
        hit, refs, alt, is_whole, through_human = hit[k], refs[k], alt[k], ex.whole[k], through_human[k]
        sim, containment, byte_start, byte_stop = ex.similarity[k], ex.containment[k], ex.byte_start[k], ex.byte_stop[k]
        if not len(hit):
            return none
        rank = _renumber(hit)
    char_start, char_end = char_spans(texts, hit, byte_start, byte_stop, sigs.n_chars)
    no_span = pa.array(char_start < 0)
    labels = index.label_names[index.label_codes[refs]].tolist()
    has_alt = alt >= 0
    alt_ids = index.ref_ids.take(pa.array(np.where(has_alt, alt, 0))).cast(pa.string())
    alt_labels = pa.array(index.label_names[index.label_codes[np.where(has_alt, alt, 0)]].tolist(), pa.string())
    mask = pa.array(~has_alt)
    table = pa.table({
        "doc_id": ids.take(pa.array(hit)).cast(pa.string()) if ids is not None else pa.nulls(len(hit), pa.string()),
        "ref_id": index.ref_ids.take(pa.array(refs)).cast(pa.string()),
        "label": pa.array(labels, pa.string()),
        "similarity": pa.array(sim, pa.float64()),
        "containment": pa.array(containment, pa.float64()),
        "char_start": pc.if_else(no_span, pa.scalar(None, pa.int64()), pa.array(char_start)),
        "char_end": pc.if_else(no_span, pa.scalar(None, pa.int64()), pa.array(char_end)),
        "kind": pa.array(np.where(through_human, SHARED_WITH_KNOWN_HUMAN, np.where(is_whole, "whole", "partial")).tolist(),
                         pa.string()),
        "ambiguous": pa.array(has_alt),
        "alt_ref_id": pc.if_else(mask, pa.scalar(None, pa.string()), alt_ids),
        "alt_label": pc.if_else(mask, pa.scalar(None, pa.string()), alt_labels),
        "rank": pa.array(rank, pa.int32()),
    }, schema=_DOC_SCHEMA)
    return BatchMatches(table, hit, refs, invalid, histogram)


