"""ReferenceIndex: build, save, open and query an index of reference signatures.

On disk (an open format, no pickle; arrays are ``.npy`` and memory-mapped on open, so
worker processes share one copy through the page cache):

``manifest.json``     format, version, parameters, counts, size and xxh3-128 of every file
``refs.parquet``      ref_id, label, source, n_shingles, n_chars, n_anchors
``texts.arrow``       the reference texts (with ``--store-text``): Arrow IPC, memory-mapped
``signatures.npy``    uint32 [refs, num_perm]
``band_tags.npy``     uint16 [bands, refs], per band the references' band keys sorted, each kept
                      as its tag: the 16 bits after the ``dir_bits`` top bits
``band_refs.npy``     int32  [bands, refs], the reference of each tag
``band_dir.npy``      int32  [bands, 2**dir_bits + 1], where each run of top bits starts
``anchor_tags.npy``   uint16 [pairs], the anchors (sampled shingles) of every reference, sorted by
                      their stored key (the top 32 bits of the 64-bit key), each kept as its low 16 bits
``anchor_refs.npy``   int32  [pairs], the reference of each anchor
``anchor_dir.npy``    int32  [2**dir_bits + 1], where each run of the stored keys' top bits
                      starts (dir_bits >= 16: directory and tag hold the whole key)
``anchor_stop.npy``   uint32 [keys], anchor keys dropped as stock phrases (kept for merges)

A lookup reads the directory entry for the key's top bits and compares the tag with the few
tags there, so its cost does not grow with the number of references; a reference is read
only when its tag matches. The tags are what every lookup reads, so they are small (2 bytes)
to keep that part of a large index in the CPU caches; a false tag match is an extra
candidate that verification drops (bands) or one stray shared anchor (anchors). The kernels
issue a chunk's reads in passes (all directory reads, then, for tables larger than the CPU
caches, all first tags, ...): the reads of a pass are independent, so the CPU overlaps their
cache misses.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from . import __version__, storage
from .config import IndexParams, ScanOptions
from .errors import ContamscanError, IndexFormatError
from .lsh import band_key, band_keys, optimal_bands
from .minhash import INVALID_UTF8, Hasher
from .readers import Fields, check_fields, discover, has_field, read_batches
from .text import NORMALIZATION, UNICODE_VERSION

FORMAT = "contamscan-index"
FORMAT_VERSION = 3
ARRAYS = ("signatures", "band_tags", "band_refs", "band_dir", "anchor_tags", "anchor_refs", "anchor_dir",
          "anchor_stop")
LOW32 = np.uint64(0xFFFFFFFF)
CHUNK = 64  # documents whose lookups are issued together: their cache lines fit in L2
TOUCH_ABOVE = 8 << 20  # bytes of tags from which the kernels touch a chunk's lines first
TEXTS_SCHEMA = pa.schema([("text", pa.large_string())])


@dataclass(frozen=True)
class IndexSummary:
    path: str
    refs: int
    labels: dict[str, int]
    params: dict
    bytes_on_disk: int
    skipped: dict[str, int] = field(default_factory=dict)
    anchors: int = 0
    common_anchors: int = 0  # stock phrases dropped from the anchors
    stored_text: bool = False


def file_digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def _dir_bits(n: int, per_bucket: int) -> int:
    """Directory bits for ``n`` keys, ~``per_bucket`` keys per bucket."""
    return max(0, math.ceil(math.log2(n / per_bucket))) if n > per_bucket else 0


def key_directory(sorted_keys: np.ndarray, bits: int, key_bits: int = 64) -> np.ndarray:
    """Where each run of ``bits`` top bits starts in ``sorted_keys`` (of ``key_bits`` bits),
    plus the end."""
    dtype = np.uint64 if key_bits == 64 else np.uint32
    starts = (np.arange(1 << bits, dtype=np.uint64) << np.uint64(key_bits - bits)).astype(dtype) if bits \
        else np.zeros(1, dtype)
    return np.append(np.searchsorted(sorted_keys, starts, side="left"), len(sorted_keys)).astype(np.int64)


def build_band_tables(sigs: np.ndarray, bands: int, rows: int):
    """The band tables of signatures (module doc): tags, references and directory."""
    n = sigs.shape[0]
    keys = band_keys(sigs, bands, rows).T.copy() if n else np.zeros((bands, 0), np.uint64)
    order = np.argsort(keys, axis=1, kind="stable")
    keys = np.take_along_axis(keys, order, axis=1)
    bits = _dir_bits(n, 8)  # 8 tags (16 bytes) per bucket
    directory = np.stack([key_directory(keys[b], bits) for b in range(bands)]).astype(np.int32)
    return band_tag(keys, bits).astype(np.uint16), order.astype(np.int32), directory


@numba.njit(inline="always")
def band_tag(key, bits):
    """A band key's tag: the 16 bits after its ``bits`` top bits, which the directory tells."""
    return (key << np.uint64(bits)) >> np.uint64(48)


def anchor_keys32(keys: np.ndarray) -> np.ndarray:
    """The stored form of anchor keys: their top 32 bits. The directory over a table's top
    bits is then a function of the stored keys alone, so tables merge and re-bucket freely;
    a false hit (probability ~ anchors / 2**32 per lookup) is one stray anchor, far from the
    dense run a match needs."""
    return (np.asarray(keys, np.uint64) >> np.uint64(32)).astype(np.uint32)


def build_anchor_table(keys: np.ndarray, refs: np.ndarray, max_refs: int, stop: np.ndarray | None = None):
    """The anchor table from anchors (``keys`` uint32 from :func:`anchor_keys32`): the
    distinct (key, reference) pairs sorted by key, without the keys shared by more than
    ``max_refs`` references or listed in ``stop`` (stock phrases: they say little about the
    source and cost lookups), as tags, references and directory (module doc).
    Returns (tags, refs, directory, stop keys) where the stop keys are all those dropped."""
    # key above reference: a plain sort orders by key then reference, equal pairs become neighbours
    pairs = (np.asarray(keys, np.uint64) << np.uint64(32)) | np.asarray(refs, np.uint64)
    pairs.sort()
    if len(pairs):
        pairs = pairs[np.append(True, pairs[1:] != pairs[:-1])]
    k = (pairs >> np.uint64(32)).astype(np.uint32)
    r = (pairs & LOW32).astype(np.int32)
    del pairs
    new_key = np.ones(len(k), np.bool_)
    new_key[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(new_key)
    count = np.diff(np.append(starts, len(k)))
    common = count > max_refs
    stop = np.union1d(k[starts[common]], stop if stop is not None else np.zeros(0, np.uint32)).astype(np.uint32)
    keep = ~np.isin(k, stop)
    k, r = k[keep], r[keep]
    directory = key_directory(k, anchor_dir_bits(len(k)), key_bits=32)
    directory = directory.astype(np.int32) if len(k) < 2**31 else directory
    return (k & np.uint32(0xFFFF)).astype(np.uint16), r, directory, stop


def anchor_dir_bits(n: int) -> int:
    """~16 tags (32 bytes) per bucket, and at least 16 bits, so that the directory's top bits
    and the tag's low 16 bits make the whole 32-bit key."""
    return max(16, _dir_bits(n, 16))


@numba.njit(inline="always")
def _append(arr, n, value):
    """arr[n] = value, growing ``arr``; returns the array."""
    if n == arr.shape[0]:
        bigger = np.empty(2 * n + 16, arr.dtype)
        bigger[:n] = arr[:n]
        arr = bigger
    arr[n] = value
    return arr


@numba.njit(cache=True, nogil=True)
def _query_kernel(sigs, skip, tags, refs, directory, bits, rows, ref_sigs, label_codes, min_equal, touch,
                  best_ref, best_equal, n_cand, alt_ref, alt_equal):
    """For each signature: the reference with most equal slots among the LSH candidates
    (best_ref = -1 if no candidate reaches ``min_equal`` slots), the candidate count, and
    the best candidate with another label (alt_ref = -1 if none). Candidates are exactly
    LSH's: a tag match whose band differs is dropped. Documents go in chunks, each chunk's
    reads in passes (module doc)."""
    bands = tags.shape[0]
    P = sigs.shape[1]
    shift = np.uint64(64 - bits)
    m = CHUNK * bands
    bucket, lo, hi, tag = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.uint16)
    last = max(tags.shape[1] - 1, 0)
    pos = np.empty(m, np.int64)  # the chunk's tag matches, document after document: band << 40 | position
    cand = np.empty(m, np.int64)
    cand_ptr = np.empty(CHUNK + 1, np.int64)
    eqs = np.empty(bands * 8, np.int64)
    touched = np.uint64(0)
    for c0 in range(0, sigs.shape[0], CHUNK):
        c1 = min(c0 + CHUNK, sigs.shape[0])
        for i in range(c0, c1):  # the band keys' buckets and tags
            for b in range(bands):
                k = band_key(sigs[i], b, rows)
                j = (i - c0) * bands + b
                bucket[j] = np.int64(k >> shift) if bits > 0 else np.int64(0)
                tag[j] = band_tag(k, bits)
        # the reads, in passes of few instructions each: many reads in flight at once
        for i in range(c1 - c0):  # directory
            for b in range(bands):
                j = i * bands + b
                lo[j] = directory[b, bucket[j]]
                hi[j] = directory[b, bucket[j] + 1]
        if touch:
            for i in range(c1 - c0):  # each bucket's first tag
                for b in range(bands):
                    touched ^= np.uint64(tags[b, min(lo[i * bands + b], last)])
        nc = 0
        for i in range(c0, c1):  # the comparisons
            cand_ptr[i - c0] = nc
            if skip[i]:
                continue
            for b in range(bands):
                j = (i - c0) * bands + b
                p = _first_tag(tags[b], lo[j], hi[j], tag[j])
                while p < hi[j] and tags[b, p] == tag[j]:
                    pos = _append(pos, nc, (np.int64(b) << 40) | p)
                    nc += 1
                    p += 1
        cand_ptr[c1 - c0] = nc
        if cand.shape[0] < nc:
            cand = np.empty(pos.shape[0], np.int64)
        for q in range(nc):  # the references of the matches
            cand[q] = refs[pos[q] >> 40, pos[q] & 0xFFFFFFFFFF]
        if touch:
            for q in range(nc):  # their signatures, every cache line of them
                for j in range(0, P, 16):
                    touched ^= np.uint64(ref_sigs[cand[q], j])
        for i in range(c0, c1):
            best_ref[i] = -1
            best_equal[i] = 0
            n_cand[i] = 0
            alt_ref[i] = -1
            alt_equal[i] = 0
            q0, q1 = cand_ptr[i - c0], cand_ptr[i - c0 + 1]
            if q0 == q1:
                continue
            c = np.sort(cand[q0:q1])
            nd = 0  # distinct candidates, now in c[:nd] with their equal slots in eqs[:nd]
            best = -1
            for q in range(q1 - q0):
                r = c[q]
                if q > 0 and r == c[q - 1]:
                    continue
                if not _shares_band(sigs[i], ref_sigs[r], bands, rows):
                    continue  # a tag collision, not an LSH candidate
                eq = 0
                for j in range(P):
                    if sigs[i, j] == ref_sigs[r, j]:
                        eq += 1
                c[nd] = r
                eqs = _append(eqs, nd, eq)
                if best < 0 or eq > eqs[best]:  # ties keep the lowest ref index: deterministic
                    best = nd
                nd += 1
            n_cand[i] = nd
            if nd == 0:
                continue
            best_equal[i] = eqs[best]
            if eqs[best] >= min_equal:
                best_ref[i] = c[best]
            alt = _best_other_label(c, eqs, nd, best, label_codes)
            if alt >= 0:
                alt_ref[i] = c[alt]
                alt_equal[i] = eqs[alt]
    return touched  # meaningless; returning it keeps the touching reads from being optimised away


@numba.njit(inline="always")
def _best_other_label(refs, scores, n, best, label_codes):
    """Among ``refs[:n]``, the one scoring most whose label is not ``refs[best]``'s (the first
    of equals); -1 if none."""
    alt = -1
    for q in range(n):
        if label_codes[refs[q]] != label_codes[refs[best]] and (alt < 0 or scores[q] > scores[alt]):
            alt = q
    return alt


@numba.njit(inline="always")
def _first_tag(tags, lo, hi, tag):
    """Where ``tag`` is or would be among ``tags[lo:hi]``: a bucket's tags are in order."""
    while lo < hi and tags[lo] < tag:
        lo += 1
    return lo


@numba.njit(inline="always")
def _shares_band(a, b, bands, rows):
    """Whether signatures ``a`` and ``b`` agree on every row of some band."""
    for band in range(bands):
        same = True
        for j in range(band * rows, (band + 1) * rows):
            if a[j] != b[j]:
                same = False
                break
        if same:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def best_run(positions, start, stop, miss_penalty):
    """The best run of shared items, given their sorted positions among all items (the low
    32 bits of ``positions[start:stop]``): the stretch scoring most with +1 per shared item
    and ``-miss_penalty`` per unshared one (a maximum-sum segment). Returns (score, shared
    items in it, first position, last position)."""
    cur = best = 0.0
    cur_n = best_n = 0
    cur_first = first = last = prev = -1
    for i in range(start, stop):
        o = positions[i] & 0xFFFFFFFF
        if prev >= 0:
            cur -= miss_penalty * (o - prev - 1)
        if prev < 0 or cur <= 0.0:  # the run so far does not pay for the misses: restart here
            cur = 0.0
            cur_n = 0
            cur_first = o
        cur += 1.0
        cur_n += 1
        if cur > best:
            best, best_n, first, last = cur, cur_n, cur_first, o
        prev = o
    return best, best_n, first, last


@numba.njit(cache=True, nogil=True)
def _drop_repeats(hits, nh, a_key, lo):
    """Keep the hits of each key's first occurrence in the document (``hits`` holds
    (reference << 32) | ordinal, ordinals counted from ``lo``). Returns the hits kept."""
    ords = np.unique(hits[:nh] & 0xFFFFFFFF)  # anchors with hits, in document order
    keys = a_key[lo + ords]
    order = np.argsort(keys, kind="mergesort")  # stable: a key's first occurrence comes first
    repeat = np.zeros(ords.shape[0], np.bool_)
    any_repeat = False
    for i in range(1, order.shape[0]):
        if keys[order[i]] == keys[order[i - 1]]:
            repeat[order[i]] = True
            any_repeat = True
    if not any_repeat:
        return nh
    kept = 0
    for i in range(nh):
        o = hits[i] & 0xFFFFFFFF
        if not repeat[np.searchsorted(ords, o)]:
            hits[kept] = hits[i]
            kept += 1
    return kept


@numba.njit(cache=True, nogil=True)
def _anchor_kernel(doc_ptr, a_key, tags, refs, directory, bits, label_codes, min_hits, miss_penalty, touch,
                   best_ref, seg_score, seg_hits, seg_first, seg_last, total_hits, alt_ref, alt_score):
    """Partial matches from anchors. Document ``d`` has anchors ``a_key[doc_ptr[d]:doc_ptr[d + 1]]``
    in word order. For each reference sharing anchors with it, the best run is the stretch
    of the document's anchors scoring most with +1 per shared anchor and ``-miss_penalty``
    per unshared one (a maximum-sum segment: copied text is dense in shared anchors, stock
    phrases are scattered). A key repeated in the document counts once, at its first
    occurrence: a phrase repeated many times is one piece of evidence. The document's best reference has the best-scoring run (then
    the most shared anchors in total, then the lowest index). Outputs per document: that
    reference (-1 if fewer than ``min_hits`` anchors are shared), its run's score, shared
    anchors and first/last anchor (global indices), its total shared anchors, and the
    best-scoring reference with another label (alt_ref, alt_score)."""
    shift = np.uint64(64 - bits)
    # every anchor's directory bucket first, in one pass: its iterations are independent,
    # so the CPU overlaps their cache misses (the lookups are random reads of the table)
    n_anchors = a_key.shape[0]
    p_lo = np.empty(n_anchors, np.int64)
    p_hi = np.empty(n_anchors, np.int64)
    for j in range(n_anchors):
        t = (a_key[j] >> shift) if bits > 0 else np.uint64(0)
        p_lo[j] = directory[t]
        p_hi[j] = directory[t + 1]
    hits = np.empty(256, np.int64)  # (reference << 32) | anchor ordinal in the document
    at = np.empty(256, np.int64)  # where in the table each of the document's tag matches is
    g_ref = np.empty(64, np.int64)  # per reference: its best run and total
    g_score = np.empty(64, np.float64)
    g_hits = np.empty(64, np.int64)
    g_first = np.empty(64, np.int64)
    g_last = np.empty(64, np.int64)
    g_tot = np.empty(64, np.int64)
    n_docs = doc_ptr.shape[0] - 1
    touched = np.uint64(0)
    for d in range(n_docs):
        if touch and d % CHUNK == 0:  # the next chunk's first tags, in one pass (module doc)
            for j in range(doc_ptr[d], doc_ptr[min(d + CHUNK, n_docs)]):
                if p_lo[j] < p_hi[j]:
                    touched ^= np.uint64(tags[p_lo[j]] ^ tags[p_hi[j] - 1])
        best_ref[d] = -1
        seg_score[d] = 0.0
        seg_hits[d] = 0
        seg_first[d] = -1
        seg_last[d] = -1
        total_hits[d] = 0
        alt_ref[d] = -1
        alt_score[d] = 0.0
        lo, hi = doc_ptr[d], doc_ptr[d + 1]
        if hi - lo < min_hits:
            continue
        nh = 0
        for j in range(lo, hi):
            if nh + p_hi[j] - p_lo[j] > hits.shape[0]:  # room for every key of the bucket
                n = 2 * hits.shape[0] + p_hi[j] - p_lo[j]
                bigger, bigger_at = np.empty(n, np.int64), np.empty(n, np.int64)
                bigger[:nh], bigger_at[:nh] = hits[:nh], at[:nh]
                hits, at = bigger, bigger_at
            tag = np.uint16((a_key[j] >> np.uint64(32)) & np.uint64(0xFFFF))  # the stored key's low bits
            p = _first_tag(tags, p_lo[j], p_hi[j], tag)
            while p < p_hi[j] and tags[p] == tag:
                at[nh] = p
                hits[nh] = j - lo
                nh += 1
                p += 1
        if nh < min_hits:
            continue
        for q in range(nh):  # the references, in a pass of their own (module doc)
            hits[q] |= np.int64(refs[at[q]]) << 32
        nh = _drop_repeats(hits, nh, a_key, lo)
        h = np.sort(hits[:nh])
        if nh > g_ref.shape[0]:  # room for a group per hit
            g_ref, g_hits, g_tot = np.empty(2 * nh, np.int64), np.empty(2 * nh, np.int64), np.empty(2 * nh, np.int64)
            g_first, g_last = np.empty(2 * nh, np.int64), np.empty(2 * nh, np.int64)
            g_score = np.empty(2 * nh, np.float64)
        ng = 0
        q = 0
        while q < nh:
            r = h[q] >> 32
            q0 = q
            while q < nh and (h[q] >> 32) == r:
                q += 1
            tot = q - q0
            if tot >= min_hits:
                best, best_hits, bf, bl = best_run(h, q0, q, miss_penalty)
                g_ref[ng], g_score[ng], g_hits[ng], g_tot[ng] = r, best, best_hits, tot
                g_first[ng], g_last[ng] = lo + bf, lo + bl
                ng += 1
        if ng == 0:
            continue
        b = 0
        for g in range(1, ng):  # in reference order: strict > keeps the lowest index
            if g_score[g] > g_score[b] or (g_score[g] == g_score[b] and g_tot[g] > g_tot[b]):
                b = g
        best_ref[d] = g_ref[b]
        seg_score[d] = g_score[b]
        seg_hits[d] = g_hits[b]
        seg_first[d] = g_first[b]
        seg_last[d] = g_last[b]
        total_hits[d] = g_tot[b]
        alt = _best_other_label(g_ref, g_score, ng, b, label_codes)
        if alt >= 0:
            alt_ref[d] = g_ref[alt]
            alt_score[d] = g_score[alt]
    return touched  # meaningless; returning it keeps the touching reads from being optimised away


@dataclass(frozen=True)
class QueryResult:
    best_ref: np.ndarray  # int64 [n], -1 where nothing reaches the threshold
    similarity: np.ndarray  # float64 [n], best verified candidate's estimated Jaccard (0 if none)
    n_candidates: np.ndarray  # int64 [n], distinct LSH candidates
    alt_ref: np.ndarray  # int64 [n], best candidate with another label than the best's (-1: none)
    alt_similarity: np.ndarray  # float64 [n]


@dataclass(frozen=True)
class PartialResult:
    """Per document, the reference with the best-scoring run of shared anchors (see _anchor_kernel)."""

    best_ref: np.ndarray  # int64 [n], -1 if none shares ``min_hits`` anchors
    seg_score: np.ndarray  # float64 [n], the run's score: shared anchors minus penalised unshared ones
    seg_hits: np.ndarray  # int64 [n], shared anchors in that run
    seg_first: np.ndarray  # int64 [n], the run's first and last anchor (indices into the batch's anchors)
    seg_last: np.ndarray
    total_hits: np.ndarray  # int64 [n], anchors the document shares with that reference
    alt_ref: np.ndarray  # int64 [n], the best reference with another label (-1: none)
    alt_score: np.ndarray  # float64 [n], its run's score


class ReferenceIndex:
    """An opened index: parameters, references, memory-mapped signatures and band tables."""

    def __init__(self, path: Path, manifest: dict, refs: pl.DataFrame, arrays: dict[str, np.ndarray],
                 texts: pa.ChunkedArray | None = None):
        self.path = Path(path)
        self.uri: str | None = None  # a remote index's URI; ``path`` is then its local copy
        self.texts = texts  # the reference texts, memory-mapped, when the index stores them
        self.manifest = manifest
        p = manifest["params"]
        self.params = IndexParams(threshold=p["threshold"], num_perm=p["num_perm"], ngram=p["ngram"], seed=p["seed"],
                                  anchor_bits=p["anchor_bits"], max_anchor_refs=p["max_anchor_refs"])
        self.bands, self.rows = p["bands"], p["rows"]
        self.refs = refs
        self.signatures = arrays["signatures"]
        self.band_tags = arrays["band_tags"]
        self.band_refs = arrays["band_refs"]
        self.band_dir = arrays["band_dir"]
        self.dir_bits = int(round(math.log2(self.band_dir.shape[1] - 1)))
        self.anchor_tags = arrays["anchor_tags"]
        self.anchor_refs = arrays["anchor_refs"]
        self.anchor_dir = arrays["anchor_dir"]
        self.anchor_dir_bits = int(round(math.log2(self.anchor_dir.shape[0] - 1)))
        self.anchor_stop = arrays["anchor_stop"]
        # per-reference columns as arrays, not Python objects: cheap to hold per worker
        self.ref_ids = refs["ref_id"].to_arrow()
        self.label_names, codes = np.unique(refs["label"].to_numpy().astype(str), return_inverse=True)
        self.label_codes = codes.astype(np.int32)
        self.ref_shingles = refs["n_shingles"].to_numpy()
        self.ref_anchors = refs["n_anchors"].to_numpy()
        # touch passes (module doc) pay off only when the tables do not fit in the CPU caches
        self._touch = self.band_tags.nbytes + self.anchor_tags.nbytes > TOUCH_ABOVE
        # slots that must agree for a flag: similarity = equal / num_perm >= threshold
        self.min_equal = math.ceil(self.params.threshold * self.params.num_perm - 1e-9)

    def __len__(self) -> int:
        return self.signatures.shape[0]

    @property
    def shown(self) -> str:
        """The index as named to people: its path, or a remote index's URI (without options)."""
        return storage.display(self.uri) if self.uri else str(self.path)

    def hasher(self) -> Hasher:
        p = self.params
        return Hasher(p.num_perm, p.seed, p.ngram, p.anchor_bits)

    def query(self, sigs: np.ndarray, skip: np.ndarray | None = None) -> QueryResult:
        """Whole-document matches: LSH candidates verified by their estimated Jaccard."""
        n = sigs.shape[0]
        skip = np.zeros(n, np.bool_) if skip is None else skip
        best_ref, best_equal, n_cand, alt_ref, alt_equal = (np.empty(n, np.int64) for _ in range(5))
        if len(self):
            _query_kernel(sigs, skip, self.band_tags, self.band_refs, self.band_dir, self.dir_bits,
                          self.rows, self.signatures, self.label_codes, self.min_equal, self._touch,
                          best_ref, best_equal, n_cand, alt_ref, alt_equal)
        else:
            best_ref[:], best_equal[:], n_cand[:], alt_ref[:], alt_equal[:] = -1, 0, 0, -1, 0
        P = self.params.num_perm
        return QueryResult(best_ref, best_equal / P, n_cand, alt_ref, alt_equal / P)

    def partial(self, anchors, n_docs: int, min_hits: int, miss_penalty: float) -> PartialResult:
        """Partial matches of a batch's documents from their anchors (``Signatures.anchors``)."""
        doc_ptr = np.searchsorted(anchors.doc, np.arange(n_docs + 1), side="left").astype(np.int64)
        out = [np.empty(n_docs, np.float64 if name.endswith("score") else np.int64)
               for name in PartialResult.__dataclass_fields__]
        _anchor_kernel(doc_ptr, anchors.key, self.anchor_tags, self.anchor_refs, self.anchor_dir,
                       self.anchor_dir_bits, self.label_codes, min_hits, float(miss_penalty), self._touch, *out)
        return PartialResult(*out)

    def candidates(self, sig: np.ndarray) -> set[int]:
        """LSH candidates of one signature (reference row numbers), before verification."""
        out = set()
        for b in range(self.bands):
            k = np.uint64(band_key(sig, b, self.rows))
            t = int(k >> np.uint64(64 - self.dir_bits)) if self.dir_bits else 0
            lo, hi = self.band_dir[b, t], self.band_dir[b, t + 1]
            same_tag = self.band_refs[b, lo:hi][self.band_tags[b, lo:hi] == band_tag(k, self.dir_bits)]
            out.update(int(r) for r in same_tag if band_key(self.signatures[r], b, self.rows) == k)
        return out

    def anchors(self) -> tuple[np.ndarray, np.ndarray]:
        """The anchor table as (stored keys uint32, references int64) arrays, in memory: each
        key is its directory bucket's top bits and its tag's low bits."""
        bits = self.anchor_dir_bits
        bucket = np.repeat(np.arange(len(self.anchor_dir) - 1, dtype=np.uint32), np.diff(self.anchor_dir))
        low = np.asarray(self.anchor_tags).astype(np.uint32) & np.uint32((1 << (32 - bits)) - 1)
        return (bucket << np.uint32(32 - bits)) | low, np.asarray(self.anchor_refs, np.int64)

    def summary(self) -> IndexSummary:
        m = self.manifest
        size = sum(f["bytes"] for f in m["files"].values()) + (self.path / "manifest.json").stat().st_size
        c = m["counts"]
        return IndexSummary(self.shown, c["refs"], c["labels"], m["params"], size, c.get("skipped", {}),
                            c["anchors"], c["common_anchors_dropped"], bool(m.get("stored_text")))


def params_dict(params: IndexParams) -> dict:
    bands, rows = optimal_bands(params.threshold, params.num_perm)
    return {
        "normalization": NORMALIZATION,
        "unicode_version": UNICODE_VERSION,
        "ngram": params.ngram,
        "shingle_hash": "xxh32-seed0",
        "scheme": "affine32",
        "num_perm": params.num_perm,
        "seed": params.seed,
        "threshold": params.threshold,
        "bands": bands,
        "rows": rows,
        "anchor_bits": params.anchor_bits,
        "anchor_key": "splitmix64(fmix32(xxh32-seed0) << 32 | xxh32-seed0x9E3779B1) >> 32",
        "max_anchor_refs": params.max_anchor_refs,
    }


def save_index(path: Path, params: IndexParams, refs: pl.DataFrame, sigs: np.ndarray,
               anchor_keys: np.ndarray | None = None, anchor_refs: np.ndarray | None = None,
               skipped: dict[str, int] | None = None, anchor_stop: np.ndarray | None = None) -> None:
    """Write an index directory from the references' table, signatures and anchors (keys in
    their stored form, :func:`anchor_keys32`, with their references; none: whole-document
    matches only; keys in ``anchor_stop`` are dropped). The manifest is
    written last: a directory without one (an interrupted build) is never mistaken for an index."""
    path = Path(path)
    dup = refs["ref_id"].is_duplicated()
    if dup.any():
        ex = refs.filter(dup)["ref_id"].unique().sort().head(3).to_list()
        raise ContamscanError(f"reference ids are not unique (e.g. {ex}); pass --id-field with a unique field")
    if anchor_keys is None:
        anchor_keys, anchor_refs = np.zeros(0, np.uint32), np.zeros(0, np.int64)
    path.mkdir(parents=True, exist_ok=True)
    manifest_path = path / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()
    for old in path.glob("*.npy"):  # arrays of an index of another format, built here before
        if old.stem not in ARRAYS:
            old.unlink()
    p = params_dict(params)
    tags, order, directory = build_band_tables(sigs, p["bands"], p["rows"])
    a_tags, a_refs, a_dir, a_stop = build_anchor_table(anchor_keys, anchor_refs, params.max_anchor_refs, anchor_stop)
    refs = refs.with_columns(pl.Series("n_anchors", np.bincount(a_refs, minlength=len(refs)), pl.Int64))
    names = ["refs.parquet", *(f"{a}.npy" for a in ARRAYS)]
    stored_text = "text" in refs.columns
    if stored_text:  # uncompressed Arrow, so that a scan reads any one text without loading the rest
        tmp = path / "texts.arrow.tmp"
        with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, TEXTS_SCHEMA) as w:
            w.write_table(pa.table({"text": refs["text"].to_arrow().cast(pa.large_string())}, schema=TEXTS_SCHEMA))
        os.replace(tmp, path / "texts.arrow")
        names.append("texts.arrow")
        refs = refs.drop("text")
    elif (path / "texts.arrow").exists():
        (path / "texts.arrow").unlink()
    tmp = path / "refs.parquet.tmp"
    pq.write_table(refs.to_arrow(), tmp, compression="zstd")
    os.replace(tmp, path / "refs.parquet")
    for name, arr in zip(ARRAYS, (sigs, tags, order, directory, a_tags, a_refs, a_dir, a_stop)):
        _atomic_save_npy(path / f"{name}.npy", np.ascontiguousarray(arr))
    files = {}
    for name in names:
        f = path / name
        files[name] = {"bytes": f.stat().st_size, "xxh3_128": file_digest(f)}
    labels = Counter(refs["label"].to_list())
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tool": {"name": "contamscan", "version": __version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": p,
        "counts": {"refs": int(sigs.shape[0]), "labels": dict(sorted(labels.items())),
                   "anchors": int(len(a_refs)), "common_anchors_dropped": int(len(a_stop)),
                   "skipped": dict(skipped or {})},
        "stored_text": stored_text,
        "files": files,
    }
    tmp = path / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, manifest_path)


def open_index(path, verify: bool = True) -> ReferenceIndex:
    """Open an index directory, checking its format and (by default) every file's checksum.
    A remote index (a URI, :mod:`contamscan.storage`) is opened from its local copy."""
    path = storage.localize(path)
    if storage.is_remote(path):
        return _open_remote(path, verify)
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise IndexFormatError(f"{path} is not a contamscan index (no manifest.json); build one with `contamscan index build`")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{mpath}: unreadable manifest ({e})") from e
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path}: not a contamscan index (format {manifest.get('format')!r})")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: index format version {manifest.get('version')} is not supported "
                               f"by this contamscan (reads version {FORMAT_VERSION}); rebuild the index")
    current = params_dict(IndexParams())
    for key in ("normalization", "shingle_hash", "scheme", "anchor_key"):
        if manifest["params"].get(key) != current[key]:
            raise IndexFormatError(f"{path}: the index was built with {key} {manifest['params'].get(key)!r}, and this "
                                   f"contamscan uses {current[key]!r}: their hashes would not match; rebuild the index")
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise IndexFormatError(f"{path}: missing file {name}")
        if f.stat().st_size != meta["bytes"]:
            raise IndexFormatError(f"{path}: {name} has {f.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or modified)")
        if verify and file_digest(f) != meta["xxh3_128"]:
            raise IndexFormatError(f"{path}: checksum mismatch for {name}: the file was modified or corrupted; rebuild the index")
    refs = pl.read_parquet(path / "refs.parquet")
    arrays = {a: np.load(path / f"{a}.npy", mmap_mode="r") for a in ARRAYS}
    texts = None
    if manifest.get("stored_text"):
        texts = pa.ipc.open_file(pa.memory_map(str(path / "texts.arrow"))).read_all().column("text")
    return ReferenceIndex(path, manifest, refs, arrays, texts)


def _open_remote(uri: str, verify: bool) -> ReferenceIndex:
    """A remote index, downloaded once into the local cache (``storage.fetch_dir``: every file's
    size and checksum verified as it arrives) and opened from there, memory-mapped like any
    index, so that workers share it. Opening it again while it is unchanged reuses the copy
    (checked as a local index is); a copy that fails its checks is downloaded again."""

    def check(manifest: dict) -> None:  # before downloading anything
        if manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{storage.display(uri)}: not a contamscan index (format {manifest.get('format')!r})")
        if manifest.get("version") != FORMAT_VERSION:
            raise IndexFormatError(f"{storage.display(uri)}: index format version {manifest.get('version')} is not "
                                   f"supported by this contamscan (reads version {FORMAT_VERSION}); rebuild the index")

    local, fetched = storage.fetch_dir(uri, "indexes", error=IndexFormatError, what="a contamscan index", check=check)
    try:
        index = open_index(local, verify=verify and not fetched)
    except IndexFormatError as e:
        if not fetched:  # the local copy was damaged: fetch it again
            import shutil

            shutil.rmtree(local, ignore_errors=True)
            return _open_remote(uri, verify)
        raise IndexFormatError(str(e).replace(str(local), storage.display(uri))) from None
    index.uri = uri
    return index


def _save_remote(uri: str, write) -> ReferenceIndex:
    """``write(directory)`` an index locally, beside the cache, upload it to ``uri`` (the
    manifest last: ``storage.upload_dir``) and keep the local copy as the cache entry of
    ``uri``; returns it opened."""
    import shutil

    local = storage.new_build_dir("indexes")
    try:
        write(local)
        files = json.loads((local / "manifest.json").read_text())["files"]
        storage.upload_dir(local, uri, list(files), stale=[n for n in ("texts.arrow",) if n not in files])
        entry = storage.adopt_dir(local, uri, "indexes")
    finally:
        shutil.rmtree(local, ignore_errors=True)
    index = open_index(entry, verify=False)
    index.uri = uri
    return index


def build_index(refs, out, *, text_field: str = "text", label_field: str = "model", id_field: str | None = "id",
                params: IndexParams = IndexParams(), store_text: bool = False, strict: bool = False,
                progress=None) -> ReferenceIndex:
    """Build an index from reference files, directories or globs (Parquet, JSON Lines, Arrow)
    and write it to ``out``. Returns the opened index.

    Each record needs a text and a label (the model that wrote it). Its id is taken from
    ``id_field`` when the field exists, else ``<file>:<row>``. References with no words are
    skipped and counted in the manifest.
    """
    out = storage.localize(out)
    if storage.is_remote(out):
        storage.check_writable(out)  # before the work, not after it
    shards, _ = discover(list(refs) if not isinstance(refs, (str, os.PathLike)) else [refs])
    if not shards:
        raise ContamscanError("no reference files found (expected .parquet, .jsonl, .json, .jsonl.gz, .jsonl.zst, .arrow)")
    hasher = Hasher(params.num_perm, params.seed, params.ngram, params.anchor_bits)
    parts = []  # per batch: an Arrow table of the kept references' columns
    sig_parts, key_parts, ref_parts = [], [], []
    n_refs = 0
    skipped = Counter()
    for shard in shards:
        check_fields(shard, Fields(text=text_field, label=label_field))
        # ids are optional: where the id field is absent, the id is FILE:ROW
        has_id = id_field is not None and has_field(shard, id_field)
        fields = Fields(text=text_field, label=label_field, id=id_field if has_id else None)
        for batch in read_batches(shard, fields, batch_bytes=ScanOptions().batch_bytes, strict=strict):
            skipped.update(b.reason for b in batch.bad)
            sigs = hasher.signatures(batch.texts)
            invalid = sigs.status == INVALID_UTF8
            keep = ~invalid & (sigs.n_shingles > 0)
            skipped["invalid_utf8"] += int(np.count_nonzero(invalid))
            skipped["no_words"] += int(np.count_nonzero(~invalid & (sigs.n_shingles == 0)))
            idx = pa.array(np.flatnonzero(keep))
            rows = pa.array(batch.rows).take(idx)
            fallback = pc.binary_join_element_wise(shard.relpath, rows.cast(pa.string()), ":")
            ids = fallback if batch.ids is None else pc.coalesce(batch.ids.take(idx).cast(pa.string()), fallback)
            cols = {
                "ref_id": ids,
                "label": pc.coalesce(batch.labels.take(idx).cast(pa.string()), pa.scalar("unknown")),
                "source": pa.array([shard.relpath] * len(idx), pa.string()),
                "n_shingles": pa.array(sigs.n_shingles[keep], pa.int64()),
                "n_chars": pa.array(sigs.n_chars[keep], pa.int64()),
            }
            if store_text:
                cols["text"] = batch.texts.take(idx).cast(pa.large_string())
            parts.append(pa.table(cols))
            sig_parts.append(sigs.values[keep])
            # anchors of kept references, numbered in index order (skipped ones have none)
            if sigs.anchors is not None:
                number = n_refs + np.cumsum(keep) - 1
                key_parts.append(anchor_keys32(sigs.anchors.key))  # kept in their stored form: half the memory
                ref_parts.append(number[sigs.anchors.doc].astype(np.int32))
            n_refs += len(idx)
            if progress:
                progress(batch)
            del batch  # not held while the next one is read
    table = pl.from_arrow(pa.concat_tables(parts)) if parts else pl.DataFrame(
        schema={"ref_id": pl.String, "label": pl.String, "source": pl.String, "n_shingles": pl.Int64, "n_chars": pl.Int64})
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, params.num_perm), np.uint32)
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, np.uint32)
    refs = np.concatenate(ref_parts) if ref_parts else np.zeros(0, np.int64)
    if storage.is_remote(out):  # built here, then uploaded
        return _save_remote(out, lambda path: save_index(path, params, table, sigs, keys, refs,
                                                         skipped={k: n for k, n in skipped.items() if n}))
    save_index(Path(out), params, table, sigs, keys, refs, skipped={k: n for k, n in skipped.items() if n})
    return open_index(out, verify=False)


def merge_indexes(indexes, out, *, replace: bool = False) -> ReferenceIndex:
    """Merge indexes built with the same parameters into one at ``out``; the result equals
    an index built from all their references at once (in this order). Reference texts are
    kept only when every index stores them. ``replace`` allows ``out`` to be one of the
    inputs: the merge is written beside it and swapped in when complete."""
    ixs = [ix if isinstance(ix, ReferenceIndex) else open_index(ix) for ix in indexes]
    if not ixs:
        raise ContamscanError("nothing to merge")
    first = ixs[0].manifest["params"]
    for ix in ixs[1:]:
        diff = sorted(k for k in set(first) | set(ix.manifest["params"]) if first.get(k) != ix.manifest["params"].get(k))
        if diff:
            raise ContamscanError(f"cannot merge {ixs[0].shown} and {ix.shown}: their parameters differ ("
                                  + ", ".join(f"{k}: {first.get(k)} vs {ix.manifest['params'].get(k)}" for k in diff)
                                  + "); rebuild one with the other's parameters")
    out = storage.localize(out)
    if storage.is_remote(out):
        storage.check_writable(out)
        if storage.key(out) in {storage.key(ix.uri) for ix in ixs if ix.uri} and not replace:
            raise ContamscanError(f"{storage.display(out)} is one of the indexes being merged; write the merge elsewhere")
    else:
        out = Path(out)
        inputs = {Path(ix.path).resolve() for ix in ixs}
        if out.resolve() in inputs and not replace:
            raise ContamscanError(f"{out} is one of the indexes being merged; write the merge elsewhere")
    offsets = np.cumsum([0] + [len(ix) for ix in ixs])
    table = pl.concat([ix.refs.drop("n_anchors") for ix in ixs])
    if all(ix.texts is not None for ix in ixs):
        table = table.with_columns(pl.Series("text", pa.chunked_array([c for ix in ixs for c in ix.texts.chunks],
                                                                     pa.large_string())))
    sigs = np.concatenate([np.asarray(ix.signatures) for ix in ixs])
    anchors = [ix.anchors() for ix in ixs]
    keys = np.concatenate([k for k, _ in anchors])
    refs = np.concatenate([r + off for (_, r), off in zip(anchors, offsets)])
    del anchors
    stop = np.unique(np.concatenate([np.asarray(ix.anchor_stop) for ix in ixs]))
    skipped = Counter()
    for ix in ixs:
        skipped.update(ix.manifest["counts"].get("skipped", {}))
    p = ixs[0].params
    if storage.is_remote(out):  # written here, then uploaded (into one of the inputs too: `index add`)
        return _save_remote(out, lambda path: save_index(path, p, table, sigs, keys, refs, skipped=dict(skipped),
                                                         anchor_stop=stop))
    # into one of the inputs (`index add`): written beside it, swapped in when complete
    target = out.with_name(f".{out.name}.merging-{os.getpid()}") if out.resolve() in inputs else out
    save_index(target, p, table, sigs, keys, refs, skipped=dict(skipped), anchor_stop=stop)
    if target != out:  # swap the complete index in
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(target, out)
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    return open_index(out, verify=False)


def add_to_index(index, refs, **build_options) -> ReferenceIndex:
    """Add references (files, directories, globs) to an index, in place: they are indexed
    with the index's parameters and merged in; the index is swapped only when complete."""
    import tempfile

    ix = index if isinstance(index, ReferenceIndex) else open_index(index)
    with tempfile.TemporaryDirectory(prefix=".contamscan-add-", dir=Path(ix.path).parent) as tmp:
        new = build_index(refs, Path(tmp) / "new", params=ix.params, store_text=ix.texts is not None, **build_options)
        return merge_indexes([ix, new], ix.uri or ix.path, replace=True)
