"""The compiled query kernels of a ReferenceIndex: LSH candidates of whole documents, and
co-linear chains of shared anchors for passages and edited copies.

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

import numpy as np

from ..native import jit, kernel
from ..sketch.lsh import band_key

CHUNK = 64  # documents whose lookups are issued together: their cache lines fit in L2
TOUCH_ABOVE = 8 << 20  # bytes of tags from which the kernels touch a chunk's lines first
GROUP_ANCHORS = 256  # anchors whose table reads the anchor kernel issues in one pass (see anchor_kernel)


@jit(inline="always")
def band_tag(key, bits):
    """A band key's tag: the 16 bits after its ``bits`` top bits, which the directory tells."""
    return (key << np.uint64(bits)) >> np.uint64(48)


@kernel(
    "uint64(uint32[:, ::1], boolean[::1], uint16[:, ::1], int32[:, ::1], int32[:, ::1], int64, int64, uin"
    "t32[:, ::1], int32[::1], int64, boolean, int64[::1], int64[::1], int64[::1], int64[::1], int64[::1])"
)
def query_kernel(sigs, skip, tags, refs, directory, bits, rows, ref_sigs, label_codes, min_equal, touch,
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
        # room for every entry of every bucket, before the loops (an array that may be
        # replaced inside a loop is reloaded at every use: see anchor_kernel)
        room = 0
        for j in range((c1 - c0) * bands):
            room += hi[j] - lo[j]
        if room > pos.shape[0]:
            pos, cand = np.empty(2 * room, np.int64), np.empty(2 * room, np.int64)
        nc = 0
        for i in range(c0, c1):  # the comparisons
            cand_ptr[i - c0] = nc
            if skip[i]:
                continue
            for b in range(bands):
                j = (i - c0) * bands + b
                p = _first_tag(tags[b], lo[j], hi[j], tag[j])
                while p < hi[j] and tags[b, p] == tag[j]:
                    pos[nc] = (np.int64(b) << 40) | p
                    nc += 1
                    p += 1
        cand_ptr[c1 - c0] = nc
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
            if q1 - q0 > eqs.shape[0]:
                eqs = np.empty(2 * (q1 - q0), np.int64)
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
                eqs[nd] = eq
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


@jit(inline="always")
def _best_other_label(refs, scores, n, best, label_codes):
    """Among ``refs[:n]``, the one scoring most whose label is not ``refs[best]``'s (the first
    of equals); -1 if none."""
    alt = -1
    for q in range(n):
        if label_codes[refs[q]] != label_codes[refs[best]] and (alt < 0 or scores[q] > scores[alt]):
            alt = q
    return alt


@jit(inline="always")
def _first_tag(tags, lo, hi, tag):
    """Where ``tag`` is or would be among ``tags[lo:hi]``: a bucket's tags are in order."""
    while lo < hi and tags[lo] < tag:
        lo += 1
    return lo


@jit(inline="always")
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


LOOKBACK = 24  # earlier hits a chain step may come from: enough to bridge stray hits in between
DRIFT_WORDS = 4.0  # a chain step may shift the diagonal by this many words, plus
DRIFT_SHARE = 0.25  # this share of the step's length (edits insert and delete words)


@kernel(
    "Tuple((float64, int64, int64, int64, boolean))(int64[::1], int64[::1], int64[::1], boolean[::1], int"
    "64, int64, float64, float64[::1], int64[::1])"
)
def best_chain(ords, doc_words, ref_words, own, start, stop, miss_penalty, score, back):
    """The best co-linear chain of one reference's hits ``start:stop`` (in document order:
    ``ords`` the document anchor ordinals, ``doc_words`` / ``ref_words`` the word positions of
    each hit in the document and the reference, the latter modulo 2**16, ``own`` whether the
    hit's key is in this reference only).

    A chain is a sequence of hits that advance in both texts by steps of about the same length:
    a copy, even with a third of its words edited, keeps its shared anchors on one diagonal
    (the step's two lengths differ by the words inserted minus those deleted), whereas text
    that merely shares stock phrases with the reference shares them at unrelated places. A
    chain scores +1 per hit, ``-miss_penalty`` per document anchor it skips (a copy is dense
    in shared anchors) and ``-drift / limit`` for a step whose lengths differ by ``drift``
    words, within ``limit = DRIFT_WORDS + DRIFT_SHARE * step``. ``score`` and ``back`` are
    scratch arrays of at least ``stop - start``. Returns (score, hits, first ordinal, last
    ordinal, tight): a chain is tight when it skips no document anchor and every hit is the
    reference's own (a verbatim passage: the evidence a short one can give)."""
    best = 0.0
    best_end = -1
    for i in range(start, stop):
        k = i - start
        s_i = 1.0
        b_i = -1
        for j in range(i - 1, max(start, i - LOOKBACK) - 1, -1):  # nearest first
            gd = doc_words[i] - doc_words[j]
            gr = (ref_words[i] - ref_words[j]) & 0xFFFF
            if gd <= 0 or gr == 0 or gr >= 0x8000:  # not forward in both texts
                continue
            drift = abs(gd - gr)
            limit = DRIFT_WORDS + DRIFT_SHARE * max(gd, gr)
            if drift > limit:
                continue
            s = score[j - start] + 1.0 - miss_penalty * (ords[i] - ords[j] - 1) - drift / limit
            if s > s_i:
                s_i, b_i = s, j - start
            if drift == 0 and ords[i] - ords[j] == 1:  # the next anchor, in step: an exact copy needs no more
                break
        score[k], back[k] = s_i, b_i
        if s_i > best:
            best, best_end = s_i, k
    if best_end < 0:
        return 0.0, 0, -1, -1, False
    n = 1
    first = best_end
    tight = own[start + first]
    while back[first] >= 0:
        first = back[first]
        n += 1
        tight &= own[start + first]
    tight &= ords[start + best_end] - ords[start + first] + 1 == n
    return best, n, ords[start + first], ords[start + best_end], tight


@kernel(
    "uint64(int64[::1], uint64[::1], int32[::1], uint16[::1], int32[::1], uint16[::1], int32[::1], int64,"
    " int32[::1], int64, float64, boolean, int64[::1], float64[::1], int64[::1], int64[::1], int64[::1], "
    "boolean[::1], int64[::1], int64[::1], float64[::1], int64[:, ::1], float64[:, ::1], int64[:, ::1], i"
    "nt64[:, ::1], boolean[:, ::1], int64[:, ::1])"
)
def anchor_kernel(doc_ptr, a_key, a_word, tags, refs, ref_pos, directory, bits, label_codes, min_hits, miss_penalty,
                  touch, best_ref, seg_score, seg_hits, seg_first, seg_last, seg_tight, total_hits, alt_ref, alt_score,
                  more_ref, more_score, more_first, more_last, more_tight, more_total):
    """Partial matches from anchors. Document ``d`` has anchors ``a_key[doc_ptr[d]:doc_ptr[d + 1]]``
    in word order, at words ``a_word``; the table gives each (anchor, reference) pair the
    anchor's word position in the reference (``ref_pos``, modulo 2**16). For each reference
    sharing anchors with the document, its run is the best co-linear chain of shared anchors
    (:func:`best_chain`). A key repeated in the document counts once, at its first
    occurrence: a phrase repeated many times is one piece of evidence. The document's best
    reference has the best-scoring chain (then the most shared anchors in total, then the
    lowest index). Outputs per document: that reference (-1 if fewer than ``min_hits``
    anchors are shared), its chain's score, shared anchors and first/last anchor (global
    indices), its total shared anchors, and the best-scoring reference with another label
    (alt_ref, alt_score); and in ``more_*`` (columns of [n, k] arrays) the next ``k``
    references by chain score, any label: the other sources a document may hold."""
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
    n_docs = doc_ptr.shape[0] - 1
    # the keys with hits seen in the document so far: an open-addressing set, its slots
    # stamped with the document (never cleared), as large as the longest document needs
    longest = 0
    for d in range(n_docs):
        longest = max(longest, doc_ptr[d + 1] - doc_ptr[d])
    set_size = 16
    while set_size < 2 * longest:
        set_size *= 2
    set_key = np.empty(set_size, np.uint64)
    set_doc = np.full(set_size, -1, np.int64)
    mask = np.uint64(set_size - 1)
    at = np.empty(1024, np.int64)  # a group's tag matches: where in the table each is,
    ords = np.empty(1024, np.int64)  # its anchor's ordinal in the document,
    own = np.empty(1024, np.bool_)  # whether its key is in the table for its reference only,
    h_ref = np.empty(1024, np.int64)  # and its reference and word position there (mod 2**16)
    pos = np.empty(1024, np.int64)
    h_ptr = np.empty(n_docs + 1, np.int64)  # each document's tag matches in those arrays
    hits = np.empty(1024, np.int64)  # a document's (reference << 32) | tag match, to sort
    c_ord = np.empty(256, np.int64)  # one reference's hits, sorted: ordinals, word positions
    c_dw = np.empty(256, np.int64)
    c_rw = np.empty(256, np.int64)
    c_own = np.empty(256, np.bool_)
    c_score = np.empty(256, np.float64)
    c_back = np.empty(256, np.int64)
    g_ref = np.empty(64, np.int64)  # per reference: its best run and total
    g_score = np.empty(64, np.float64)
    g_hits = np.empty(64, np.int64)
    g_first = np.empty(64, np.int64)
    g_last = np.empty(64, np.int64)
    g_tight = np.empty(64, np.bool_)
    g_tot = np.empty(64, np.int64)
    touched = np.uint64(0)
    d0 = 0
    while d0 < n_docs:
        # the next documents, about GROUP_ANCHORS anchors: each pass below reads the table for
        # all of them (independent reads, whose misses the CPU overlaps: module doc), and the
        # lines and pages a pass touched are still cached for the next one. Against 2 GB of
        # tags (10M references) this is 12% faster than touching 64 documents' tags at once
        # and reading each document's references in turn; the same against a small table
        d1 = d0 + 1
        while d1 < n_docs and doc_ptr[d1 + 1] - doc_ptr[d0] <= GROUP_ANCHORS:
            d1 += 1
        a0, a1 = doc_ptr[d0], doc_ptr[d1]
        room = 0
        for j in range(a0, a1):
            room += p_hi[j] - p_lo[j]
            if touch and p_lo[j] < p_hi[j]:
                touched ^= np.uint64(tags[p_lo[j]] ^ tags[p_hi[j] - 1])
        if room > at.shape[0]:  # room for every key of every bucket, before the loops: an array
            n = 2 * room  # that may be replaced inside a loop is reloaded at every use (numba 0.68)
            at, ords, own = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.bool_)
            h_ref, pos, hits = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
        nh = 0
        for d in range(d0, d1):  # tag matches, a key repeated in a document at its first occurrence only
            h_ptr[d] = nh
            lo, hi = doc_ptr[d], doc_ptr[d + 1]
            if hi - lo < min_hits:
                continue
            for j in range(lo, hi):
                b0, b1 = p_lo[j], p_hi[j]
                tag = np.uint16((a_key[j] >> np.uint64(32)) & np.uint64(0xFFFF))  # the stored key's low bits
                p = b0  # _first_tag, written out: measured 10-13% faster here than the call (numba 0.68)
                while p < b1 and tags[p] < tag:
                    p += 1
                n0 = nh
                while p < b1 and tags[p] == tag:
                    at[nh] = p
                    ords[nh] = j - lo
                    nh += 1
                    p += 1
                if nh == n0:
                    continue
                key = a_key[j]
                s = key & mask
                while set_doc[s] == d and set_key[s] != key:
                    s = (s + np.uint64(1)) & mask
                if set_doc[s] == d:
                    nh = n0
                    continue
                set_doc[s], set_key[s] = d, key
                for q in range(n0, nh):  # (another key with the same bucket and tag makes it shared: rare, and safe)
                    own[q] = nh - n0 == 1
            if nh - h_ptr[d] < min_hits:
                nh = h_ptr[d]
        h_ptr[d1] = nh
        for q in range(nh):  # the references, in a pass of their own
            h_ref[q] = refs[at[q]]
            pos[q] = ref_pos[at[q]]
        for d in range(d0, d1):
            best_ref[d] = -1
            seg_score[d] = 0.0
            seg_hits[d] = 0
            seg_first[d] = -1
            seg_last[d] = -1
            seg_tight[d] = False
            total_hits[d] = 0
            alt_ref[d] = -1
            alt_score[d] = 0.0
            for k in range(more_ref.shape[1]):
                more_ref[d, k] = -1
                more_score[d, k] = 0.0
                more_first[d, k] = more_last[d, k] = more_total[d, k] = -1
                more_tight[d, k] = False
            first, nd = h_ptr[d], h_ptr[d + 1] - h_ptr[d]
            if nd == 0:
                continue
            lo = doc_ptr[d]
            for q in range(nd):
                hits[q] = (h_ref[first + q] << 32) | (first + q)
            h = hits[:nd]
            h.sort()  # by reference, then slot (that is, document order)
            if nd > c_ord.shape[0]:
                c_ord, c_dw, c_rw = np.empty(nd, np.int64), np.empty(nd, np.int64), np.empty(nd, np.int64)
                c_score, c_back, c_own = np.empty(nd, np.float64), np.empty(nd, np.int64), np.empty(nd, np.bool_)
            if nd > g_ref.shape[0]:  # room for a group per hit
                g_ref, g_hits, g_tot = np.empty(2 * nd, np.int64), np.empty(2 * nd, np.int64), np.empty(2 * nd, np.int64)
                g_first, g_last = np.empty(2 * nd, np.int64), np.empty(2 * nd, np.int64)
                g_score, g_tight = np.empty(2 * nd, np.float64), np.empty(2 * nd, np.bool_)
            ng = 0
            q = 0
            while q < nd:
                r = h[q] >> 32
                q0 = q
                while q < nd and (h[q] >> 32) == r:
                    q += 1
                tot = q - q0
                if tot >= min_hits:
                    for t in range(q0, q):
                        slot = h[t] & 0xFFFFFFFF
                        o = ords[slot]
                        c_ord[t - q0], c_dw[t - q0], c_rw[t - q0], c_own[t - q0] = o, a_word[lo + o], pos[slot], own[slot]
                    best, best_hits, bf, bl, tight = best_chain(c_ord, c_dw, c_rw, c_own, 0, tot, miss_penalty, c_score,
                                                                c_back)
                    g_ref[ng], g_score[ng], g_hits[ng], g_tot[ng], g_tight[ng] = r, best, best_hits, tot, tight
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
            seg_tight[d] = g_tight[b]
            total_hits[d] = g_tot[b]
            alt = _best_other_label(g_ref, g_score, ng, b, label_codes)
            if alt >= 0:
                alt_ref[d] = g_ref[alt]
                alt_score[d] = g_score[alt]
            for k in range(more_ref.shape[1]):  # the next groups by score (k is small: a selection)
                nxt = -1
                for g in range(ng):
                    if g == b:
                        continue
                    taken = False
                    for j in range(k):
                        taken |= more_ref[d, j] == g_ref[g]
                    if not taken and (nxt < 0 or g_score[g] > g_score[nxt]):
                        nxt = g
                if nxt < 0:
                    break
                more_ref[d, k], more_score[d, k], more_total[d, k] = g_ref[nxt], g_score[nxt], g_tot[nxt]
                more_first[d, k], more_last[d, k], more_tight[d, k] = g_first[nxt], g_last[nxt], g_tight[nxt]
        d0 = d1
    return touched  # meaningless; returning it keeps the touching reads from being optimised away


@kernel("Tuple((int64[:], int64[:], uint16[:]))(uint32[::1], uint16[::1], int32[::1], uint16[::1], int32[::1], int64)")
def anchor_lookup(keys, tags, refs, ref_pos, directory, bits):
    """The table entries of each stored key (uint32, any order) of ``keys``: the anchor table
    ``tags``/``refs``/``ref_pos`` with its ``directory`` of ``bits`` top bits (module doc).
    Returns (which key int64, reference int64, position uint16) per entry found, in the order
    of ``keys`` and, for one key, of the table (by reference). Used where the tables of
    several segments answer one query (:meth:`ReferenceIndex.partial`) and where ``index
    add`` asks the segments already there about the new references' keys."""
    shift = np.uint32(32 - bits)
    n = 0
    out_key = np.empty(max(16, keys.shape[0]), np.int64)
    out_ref = np.empty(out_key.shape[0], np.int64)
    out_pos = np.empty(out_key.shape[0], np.uint16)
    for i in range(keys.shape[0]):
        k = np.uint32(keys[i])
        t = np.int64(k >> shift) if bits > 0 else np.int64(0)
        lo, hi = directory[t], directory[t + 1]
        tag = np.uint16(k & np.uint32(0xFFFF))
        p = _first_tag(tags, lo, hi, tag)
        while p < hi and tags[p] == tag:
            if n == out_key.shape[0]:
                m = 2 * n + 16
                a, b, c = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.uint16)
                a[:n], b[:n], c[:n] = out_key[:n], out_ref[:n], out_pos[:n]
                out_key, out_ref, out_pos = a, b, c
            out_key[n] = i
            out_ref[n] = refs[p]
            out_pos[n] = ref_pos[p]
            n += 1
            p += 1
    return out_key[:n], out_ref[:n], out_pos[:n]
