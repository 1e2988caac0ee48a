"""MinHash signatures, bit-identical to datasketch's ``affine32`` scheme.

For each shingle hash ``h`` (see :func:`contamscan.text.shingle_hash`) datasketch 2.x
computes ``x = fmix32(h)`` (the MurmurHash3 finaliser) and, for permutation ``j``,
``a[j] * x + b[j] mod 2**32``; the signature is the minimum over shingles. The
parameters come from ``np.random.RandomState(seed)``: ``a`` odd, ``b`` any 32-bit value.

The kernel here runs the whole text step as well (UTF-8 decoding, normalisation from the
table of :func:`contamscan.text.fold_table`, word splitting, xxh32 of each shingle), so a
batch of documents becomes a batch of signatures without a Python call per document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..native import jit, kernel
from .lsh import mix64
from .text import MAX_TAG_BYTES, fold_table

EMPTY = np.uint32(0xFFFFFFFF)  # value of every slot of an empty signature

# status codes per document
OK, INVALID_UTF8 = 0, 1


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The affine32 parameters ``(a, b)`` datasketch derives from ``seed``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def jaccard(sig1: np.ndarray, sig2: np.ndarray) -> float:
    """Estimated Jaccard similarity: the fraction of equal slots."""
    return float(np.count_nonzero(sig1 == sig2)) / len(sig1)


# --------------------------------------------------------------------------- kernel
#
# Throughput notes (measured on mostly-ASCII model outputs):
# * Hash arithmetic is written as uint32 values truncated after every step, so LLVM
#   emits 32-bit mul/rol instead of 64-bit ops plus masks, and the MinHash update over
#   the permutations vectorises to 32-bit lanes.
# * Normalisation does one table lookup per ASCII byte and no per-byte capacity check:
#   the buffer is checked once per document and once per non-ASCII code point.
# * A document's shingle hashes are computed first, then folded into the signature
#   several at a time, so each pass over the signature row does more work per load.

_U32 = np.uint32
_P1, _P2, _P3, _P4, _P5 = (_U32(p) for p in (2654435761, 2246822519, 3266489917, 668265263, 374761393))

# codes in the byte-class table for bytes that are not word characters
# (a word character's own code is its normalised byte, < 0x80)
_SEP, _MARKUP, _NONASCII = 0, 0xFE, 0xFF

_PAD = 16  # bytes after the normalised text that _xxh32 may read (not hash)


@jit(inline="always")
def _ix(i):
    # an unsigned index: numba skips its negative-index wraparound code, which otherwise
    # costs a compare and cmov per access and stops LLVM merging adjacent byte loads
    return np.uint64(i)


@jit(inline="always")
def _mul(x, y):
    return _U32(x * y)


@jit(inline="always")
def _rotl(x, r):
    return _U32((x << _U32(r)) | (x >> _U32(32 - r)))


@jit(inline="always")
def _u32le(buf, i):
    # or-of-shifted bytes: LLVM merges this into one unaligned 32-bit load
    return _U32(
        _U32(buf[_ix(i)])
        | (_U32(buf[_ix(i + 1)]) << _U32(8))
        | (_U32(buf[_ix(i + 2)]) << _U32(16))
        | (_U32(buf[_ix(i + 3)]) << _U32(24))
    )


@jit(inline="always")
def _round(v, lane):
    return _mul(_rotl(_U32(v + _mul(lane, _P2)), 13), _P1)


@jit(inline="always")
def _xxh32(buf, start, end, seed):
    n = end - start
    i = start
    if n >= 16:
        v1 = _U32(seed + _P1 + _P2)
        v2 = _U32(seed + _P2)
        v3 = _U32(seed)
        v4 = _U32(seed - _P1)
        limit = end - 16
        while i <= limit:
            v1 = _round(v1, _u32le(buf, i))
            v2 = _round(v2, _u32le(buf, i + 4))
            v3 = _round(v3, _u32le(buf, i + 8))
            v4 = _round(v4, _u32le(buf, i + 12))
            i += 16
        h = _U32(_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18))
    else:
        h = _U32(seed + _P5)
    h = _U32(h + _U32(n))
    # The tail (< 16 bytes) as three word steps and three byte steps, each applied or
    # not by a select: no data-dependent branches, so the CPU overlaps the hashing of
    # consecutive shingles. Reads up to 15 bytes past ``end`` (``buf`` is padded).
    for _ in range(3):
        t = _mul(_rotl(_U32(h + _mul(_u32le(buf, i), _P3)), 17), _P4)
        take = i + 4 <= end
        h = t if take else h
        i += 4 * np.int64(take)
    for _ in range(3):
        t = _mul(_rotl(_U32(h + _mul(_U32(buf[_ix(i)]), _P5)), 11), _P1)
        take = i < end
        h = t if take else h
        i += np.int64(take)
    h = _U32(h ^ (h >> _U32(15)))
    h = _mul(h, _P2)
    h = _U32(h ^ (h >> _U32(13)))
    h = _mul(h, _P3)
    return _U32(h ^ (h >> _U32(16)))


@kernel("uint32(uint8[::1], int64, int64, int64)")
def xxh32(buf, start, end, seed=0):
    """xxHash32 of ``buf[start:end]``."""
    seed = _U32(seed)
    if end + _PAD > buf.shape[0]:  # _xxh32 reads past the end: hash a padded copy
        tmp = np.zeros(end - start + _PAD, np.uint8)
        tmp[: end - start] = buf[start:end]
        return _xxh32(tmp, 0, end - start, seed)
    return _xxh32(buf, start, end, seed)


@jit(inline="always")
def _fmix32(h):
    h = _U32(h ^ (h >> _U32(16)))
    h = _mul(h, _U32(0x85EBCA6B))
    h = _U32(h ^ (h >> _U32(13)))
    h = _mul(h, _U32(0xC2B2AE35))
    return _U32(h ^ (h >> _U32(16)))


@jit(inline="always")
def _is_alpha(c):
    return (65 <= c <= 90) or (97 <= c <= 122)


@jit(inline="always")
def _is_alnum(c):
    return _is_alpha(c) or (48 <= c <= 57)


@jit(inline="always")
def _is_hex(c):
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


@jit
def _markup_end(data, i, end):
    """End of a tag or entity starting at ``data[i]``, or -1 (same rules as text._TAG/_ENTITY)."""
    c = data[i]
    if c == 60:  # '<'
        if i + 1 < end and (_is_alpha(data[i + 1]) or data[i + 1] == 47 or data[i + 1] == 33):
            j = i + 2
            limit = min(end, i + MAX_TAG_BYTES)
            while j < limit:
                d = data[j]
                if d == 62:  # '>'
                    return j + 1
                if d == 60 or d == 10:
                    return -1
                j += 1
        return -1
    # '&'
    j = i + 1
    if j >= end:
        return -1
    if _is_alpha(data[j]):
        k = j + 1
        while k < end and k - j < 10 and _is_alnum(data[k]):
            k += 1
    elif data[j] == 35:  # '#'
        if j + 1 < end and (data[j + 1] == 120 or data[j + 1] == 88):  # x / X
            k = j + 2
            while k < end and k - (j + 2) < 6 and _is_hex(data[k]):
                k += 1
            if k == j + 2:
                k = -1
        else:
            k = j + 1
            while k < end and k - (j + 1) < 7 and 48 <= data[k] <= 57:
                k += 1
            if k == j + 1:
                k = -1
        if k < 0:
            return -1
    else:
        return -1
    if k < end and data[k] == 59:  # ';'
        return k + 1
    return -1


@jit
def _utf8_continuations(data, start, end):
    """Continuation bytes in ``data[start:end]`` (strict UTF-8), or -1 if it is not valid."""
    n = 0
    i = start
    while i < end:
        c = data[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
        elif 0xF0 <= c <= 0xF4:
            k = 3
        else:
            return -1
        cp = np.int64(c) & (0x3F >> k)
        for j in range(1, k + 1):
            if i + j >= end or (data[i + j] & 0xC0) != 0x80:
                return -1
            cp = (cp << 6) | (np.int64(data[i + j]) & 0x3F)
        if (k == 2 and (cp < 0x800 or 0xD800 <= cp <= 0xDFFF)) or (k == 3 and (cp < 0x10000 or cp > 0x10FFFF)):
            return -1
        n += k
        i += k + 1
    return n


@jit
def _normalize_into(data, start, end, fold_off, fold_data, byte_class, buf, ws, wo, we):
    """Write the normalised words of ``data[start:end]`` into ``buf`` (single spaces
    between words) and their start offsets into ``ws``, followed by the sentinel
    ``ws[n_words] = len + 1`` so that word ``k`` ends at ``ws[k + 1] - 1``. ``wo[k]`` and
    ``we[k + 1]`` get where word ``k`` starts and ends in ``data`` (``we[0]`` is scratch), so
    a run of words maps back to a span of the original text.

    Returns (n_words, n_chars); n_words is -1 for invalid UTF-8 and -2 when ``buf`` is
    too small (the caller grows it and retries). ``ws`` needs ``len(buf) // 2 + 2`` slots.
    """
    cap = buf.shape[0] - _PAD
    # ASCII input never outgrows its bytes (a word's leading space is paid for by the
    # separator before it), so this one check covers every ASCII byte; non-ASCII code
    # points re-check with their expansion below.
    if end - start + 2 > cap:
        return -2, 0
    pos = 0
    nw = 0
    in_word = 0  # 0/1
    n_cont = 0  # UTF-8 continuation bytes: n_chars = bytes - n_cont
    i = start
    while i < end:
        # the hot loop: ASCII word characters and separators (the common case), branch-free
        # since word boundaries are unpredictable: the stores are speculative and only kept
        # when the positions advance. Its one exit is a byte it does not handle.
        d = byte_class[data[_ix(i)]]
        while d < _MARKUP:
            is_word = np.int64(d != _SEP)  # 0/1 ints, not bools: `and` would branch
            starts = is_word & (in_word ^ 1)
            buf[_ix(pos)] = 32  # a space before every word but the first
            pos += starts & np.int64(nw > 0)
            ws[_ix(nw)] = pos
            wo[_ix(nw)] = i
            nw += starts
            we[_ix(nw * is_word)] = i + 1  # a separator writes the scratch slot
            buf[_ix(pos)] = d
            pos += is_word
            in_word = is_word
            i += 1
            if i == end:
                break
            d = byte_class[data[_ix(i)]]
        if i == end:
            break
        c = data[_ix(i)]
        if d == _MARKUP:  # '<' or '&': a tag or entity is a separator, else the byte alone is
            m = _markup_end(data, i, end)
            if m > 0:  # a tag may hold non-ASCII text: validate it, count its characters
                k = _utf8_continuations(data, i, m)
                if k < 0:
                    return -1, 0
                n_cont += k
                i = m
            else:
                i += 1
            in_word = 0
            continue
        # decode one code point (strict UTF-8, as Python's decoder)
        cp_start = i
        if 0xC2 <= c <= 0xDF:
            if i + 1 >= end or (data[i + 1] & 0xC0) != 0x80:
                return -1, 0
            cp = ((np.int64(c) & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F)
            i += 2
            n_cont += 1
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= end or (data[i + 1] & 0xC0) != 0x80 or (data[i + 2] & 0xC0) != 0x80:
                return -1, 0
            cp = ((np.int64(c) & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F)
            if cp < 0x800 or (0xD800 <= cp <= 0xDFFF):
                return -1, 0
            i += 3
            n_cont += 2
        elif 0xF0 <= c <= 0xF4:
            if (
                i + 3 >= end
                or (data[i + 1] & 0xC0) != 0x80
                or (data[i + 2] & 0xC0) != 0x80
                or (data[i + 3] & 0xC0) != 0x80
            ):
                return -1, 0
            cp = (
                ((np.int64(c) & 0x07) << 18)
                | ((np.int64(data[i + 1]) & 0x3F) << 12)
                | ((np.int64(data[i + 2]) & 0x3F) << 6)
                | (np.int64(data[i + 3]) & 0x3F)
            )
            if cp < 0x10000 or cp > 0x10FFFF:
                return -1, 0
            i += 4
            n_cont += 3
        else:
            return -1, 0
        k0 = fold_off[cp]
        k1 = fold_off[cp + 1]
        # room for this code point's output (plus a space) and for the rest as ASCII
        if pos + (k1 - k0) + (end - i) + 2 > cap:
            return -2, 0
        for k in range(k0, k1):
            d = fold_data[k]
            if d == 32:
                in_word = 0
            else:
                if in_word == 0:
                    if nw > 0:
                        buf[_ix(pos)] = 32
                        pos += 1
                    ws[_ix(nw)] = pos
                    wo[_ix(nw)] = cp_start
                    nw += 1
                    in_word = 1
                buf[_ix(pos)] = d
                pos += 1
                we[_ix(nw)] = i  # past this code point
    ws[nw] = pos + 1
    return nw, (end - start) - n_cont


_BLOCK = 4  # shingles folded into the signature per pass over it
_ANCHOR_SEED = _U32(0x9E3779B1)
_FULL_BUF, _FULL_ANCHORS = 1, 2  # why the kernel stopped before the last document


@jit
def _update(sig, xs, n, a, b):
    """sig[j] = min(sig[j], a[j] * x + b[j] mod 2**32) over ``x`` in ``xs[:n]`` (fmix32'd
    hashes). The inner loops over ``j`` vectorise to 32-bit lanes."""
    p = sig.shape[0]
    k = 0
    while k + _BLOCK <= n:
        x0, x1, x2, x3 = xs[k], xs[k + 1], xs[k + 2], xs[k + 3]
        for j in range(p):
            aj = a[j]
            bj = b[j]
            s = sig[j]
            s = min(s, _U32(aj * x0 + bj))
            s = min(s, _U32(aj * x1 + bj))
            s = min(s, _U32(aj * x2 + bj))
            s = min(s, _U32(aj * x3 + bj))
            sig[j] = s
        k += _BLOCK
    while k < n:
        x = xs[k]
        for j in range(p):
            sig[j] = min(sig[j], _U32(a[j] * x + b[j]))
        k += 1


@kernel(
    "UniTuple(int64, 3)(uint8[::1], int64[::1], int64, int32[::1], uint8[::1], uint8[::1], int64, uint32["
    "::1], uint32[::1], uint32[:, ::1], int64[::1], int64[::1], uint8[::1], uint8[::1], int64[::1], int64"
    "[::1], int64[::1], uint32[::1], int64, uint64[::1], int32[::1], int32[::1], int64[::1], int64[::1], "
    "int64)"
)
def _signature_kernel(data, offsets, first, fold_off, fold_data, byte_class, ngram, a, b, sigs, n_shingles, n_chars,
                      status, buf, ws, wo, we, xs, anchor_limit, a_key, a_doc, a_word, a_start, a_stop, m):
    """Signatures of documents ``first..`` of an Arrow string array (``data``/``offsets``),
    and their anchors: the shingles whose fmix32'd hash is below ``anchor_limit`` (an int64:
    2**32 takes every shingle, 0 none), each with a 64-bit key and the byte span of its
    words in the document, appended to ``a_*`` from slot ``m``.

    Returns (the index of the first document not done, anchors written, why): a document
    is left undone when its normalised form does not fit in ``buf`` (_FULL_BUF) or its
    anchors do not fit in ``a_*`` (_FULL_ANCHORS). ``wo``, ``we`` and ``xs`` need as many
    slots as ``ws``.
    """
    n_docs = offsets.shape[0] - 1
    cap = a_key.shape[0]
    for d in range(first, n_docs):
        sig = sigs[d]
        sig[:] = EMPTY
        start = offsets[d]
        nw, nc = _normalize_into(data, start, offsets[d + 1], fold_off, fold_data, byte_class, buf, ws, wo, we)
        if nw == -2:
            return d, m, _FULL_BUF
        if nw == -1:
            status[d] = INVALID_UTF8
            n_shingles[d] = 0
            n_chars[d] = 0
            continue
        status[d] = OK
        n_chars[d] = nc
        if nw == 0:
            n = 0
        elif nw < ngram:  # one shingle: the whole text
            n = 1
            xs[0] = _fmix32(_xxh32(buf, ws[0], ws[_ix(nw)] - 1, _U32(0)))
        else:
            n = nw - ngram + 1
            for k in range(n):
                xs[k] = _fmix32(_xxh32(buf, ws[k], ws[_ix(k + ngram)] - 1, _U32(0)))
        n_shingles[d] = n
        _update(sig, xs, n, a, b)
        m_doc = m
        for k in range(n):
            x = xs[k]
            if np.int64(x) < anchor_limit:  # rare (1 in 2**anchor_bits): a branch is cheaper than a select
                if m == cap:
                    return d, m_doc, _FULL_ANCHORS
                last = min(k + ngram, nw)
                # a second, independent 32-bit hash of the same words makes the key 64-bit
                h2 = _xxh32(buf, ws[k], ws[_ix(last)] - 1, _ANCHOR_SEED)
                a_key[m] = mix64((np.uint64(x) << np.uint64(32)) | np.uint64(h2))
                a_doc[m] = d
                a_word[m] = k
                a_start[m] = wo[k] - start
                a_stop[m] = we[_ix(last)] - start
                m += 1
    return n_docs, m, 0


# --------------------------------------------------------------------------- API


def _utf8_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (int64 [n + 1]) and UTF-8 bytes of an Arrow string array or a list of ``str``."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array(texts, type=pa.large_string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    texts = texts.cast(pa.large_string())
    n = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + n + 1]
    data_buf = texts.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


@jit(inline="always")
def _count_chars(data, lo, hi):
    """Characters in ``data[lo:hi]``: the bytes that are not UTF-8 continuations, counted in
    32-bit lanes block by block (so that the loop vectorises)."""
    n = np.int64(0)
    k = lo
    while k < hi:
        end = min(hi, k + 65536)
        c = np.int32(0)
        for j in range(k, end):
            c += np.int32((data[_ix(j)] & 0xC0) != 0x80)
        n += c
        k = end
    return n


@kernel("void(uint8[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1])")
def _char_offsets(data, offsets, docs, n_chars, byte_start, byte_stop, char_start, char_end):
    for i in range(docs.shape[0]):
        d = docs[i]
        base, b0, b1 = offsets[d], byte_start[i], byte_stop[i]
        if b0 < 0:
            char_start[i] = char_end[i] = -1
            continue
        if n_chars.shape[0] and n_chars[d] == offsets[d + 1] - base:  # ASCII: a character per byte
            char_start[i], char_end[i] = b0, b1
            continue
        char_start[i] = c = _count_chars(data, base, base + b0)
        char_end[i] = c + _count_chars(data, base + b0, base + b1)


def char_spans(texts, docs: np.ndarray, byte_start: np.ndarray, byte_stop: np.ndarray,
               n_chars: np.ndarray | None = None):
    """Byte spans (from anchors) of documents ``docs`` of ``texts`` as character offsets;
    -1 where ``byte_start`` is -1. ``n_chars`` (``Signatures.n_chars`` of the texts), when
    given, spares counting in ASCII texts: those with as many characters as bytes."""
    offsets, data = _utf8_buffers(texts)
    char_start = np.empty(len(docs), np.int64)
    char_end = np.empty(len(docs), np.int64)
    known = np.zeros(0, np.int64) if n_chars is None else np.asarray(n_chars, np.int64)
    _char_offsets(data, offsets, np.asarray(docs, np.int64), known, byte_start, byte_stop, char_start, char_end)
    return char_start, char_end


def grown(arrays, kept: int, extra: int) -> list[np.ndarray]:
    """Output arrays of a kernel that stopped because they were full, with twice the room
    plus ``extra``, their first ``kept`` items kept."""
    cap = 2 * arrays[0].shape[0] + extra
    return [np.concatenate([x[:kept], np.empty(cap - kept, x.dtype)]) for x in arrays]


@dataclass(frozen=True)
class Anchors:
    """Sampled shingles of a batch, in document order then word order: the evidence for
    partial matches. ``start``/``stop`` are byte offsets in the document's UTF-8 text, from
    the start of the shingle's first word to the end of its last."""

    key: np.ndarray  # uint64
    doc: np.ndarray  # int32, row in the batch
    word: np.ndarray  # int32, the shingle's first word (its number in the document)
    start: np.ndarray  # int64
    stop: np.ndarray  # int64

    def __len__(self) -> int:
        return self.key.shape[0]


@dataclass(frozen=True)
class Signatures:
    """Signatures of a batch of documents, one row each."""

    values: np.ndarray  # uint32 [n_docs, num_perm]
    n_shingles: np.ndarray  # int64 [n_docs]
    n_chars: np.ndarray  # int64 [n_docs]
    status: np.ndarray  # uint8 [n_docs]: OK or INVALID_UTF8
    anchors: Anchors | None = None  # when the Hasher samples anchors


class Hasher:
    """Computes datasketch-compatible signatures for batches of texts and, when
    ``anchor_bits`` > 0, samples one shingle in ``2**anchor_bits`` as an anchor (by its
    hash, so the same shingle is sampled in every text that has it)."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 5, anchor_bits: int = 0):
        if num_perm < 1 or ngram < 1:
            raise ValueError("num_perm and ngram must be positive")
        if not 0 <= anchor_bits <= 16:
            raise ValueError("anchor_bits must be between 0 and 16")
        self.num_perm, self.seed, self.ngram, self.anchor_bits = num_perm, seed, ngram, anchor_bits
        self._anchor_limit = (1 << (32 - anchor_bits)) if anchor_bits else 0
        self.a, self.b = permutations(num_perm, seed)
        self._fold_off, self._fold_data = fold_table()
        # byte -> its normalised byte for an ASCII word character, else _SEP, _MARKUP or
        # _NONASCII: one lookup classifies every byte
        byte_class = np.full(256, _NONASCII, np.uint8)
        for c in range(128):
            d = self._fold_data[self._fold_off[c]]
            assert d == 32 or 32 < d < 0x80  # word characters fold to letters and digits
            byte_class[c] = _SEP if d == 32 else d
        byte_class[ord("<")] = byte_class[ord("&")] = _MARKUP
        self._byte_class = byte_class
        self._grow(1 << 16)

    def signatures(self, texts) -> Signatures:
        """Signatures of an Arrow string array, or of a list of ``str``."""
        return self._run(texts, self._anchor_limit, self.anchor_bits)

    def shingles(self, texts) -> Anchors:
        """Every shingle of the texts, as anchors (keys and positions): for exact checks."""
        return self._run(texts, 1 << 32, 0).anchors

    def _run(self, texts, anchor_limit: int, anchor_bits: int) -> Signatures:
        offsets, data = _utf8_buffers(texts)
        n = len(offsets) - 1
        sigs = np.empty((n, self.num_perm), dtype=np.uint32)
        n_shingles = np.zeros(n, np.int64)
        n_chars = np.zeros(n, np.int64)
        status = np.zeros(n, np.uint8)
        # anchors: about one per 2**anchor_bits shingles, a shingle per ~6 bytes of text
        cap = (int(offsets[-1] - offsets[0]) >> (anchor_bits + 2)) + 64 if anchor_limit else 0
        a_key, a_doc, a_word = np.empty(cap, np.uint64), np.empty(cap, np.int32), np.empty(cap, np.int32)
        a_start, a_stop = np.empty(cap, np.int64), np.empty(cap, np.int64)
        done = m = 0
        while done < n:
            done, m, full = _signature_kernel(
                data, offsets, done, self._fold_off, self._fold_data, self._byte_class, self.ngram, self.a, self.b,
                sigs, n_shingles, n_chars, status, self._buf, self._ws, self._wo, self._we, self._xs,
                anchor_limit, a_key, a_doc, a_word, a_start, a_stop, m,
            )
            doc_bytes = int(offsets[min(done + 1, n)] - offsets[done])
            if full == _FULL_ANCHORS:  # more room, keeping the anchors written
                a_key, a_doc, a_word, a_start, a_stop = grown((a_key, a_doc, a_word, a_start, a_stop), m, doc_bytes)
            elif full == _FULL_BUF:
                self.grow_for(doc_bytes)
        anchors = Anchors(a_key[:m], a_doc[:m], a_word[:m], a_start[:m], a_stop[:m]) if anchor_limit else None
        return Signatures(sigs, n_shingles, n_chars, status, anchors)

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text]).values[0]

    def grow_for(self, doc_bytes: int) -> None:
        """Room for a document of ``doc_bytes`` bytes: its normalised form can outgrow its bytes."""
        self._grow(max(2 * doc_bytes + 64, 2 * self._buf.shape[0]))

    def _grow(self, size: int) -> None:
        self._buf = np.empty(size, np.uint8)
        self._ws = np.empty(size // 2 + 2, np.int64)
        self._wo = np.empty(size // 2 + 2, np.int64)  # where each word starts in the input
        self._we = np.empty(size // 2 + 2, np.int64)  # and where it ends
        self._xs = np.empty(size // 2 + 2, np.uint32)  # a document's fmix32'd shingle hashes
