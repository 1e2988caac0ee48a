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

import numba
import numpy as np
import pyarrow as pa

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


def to_datasketch(sig: np.ndarray, seed: int = 1):
    """A ``datasketch.LeanMinHash`` holding this signature."""
    from datasketch import LeanMinHash, MinHash

    m = MinHash(num_perm=len(sig), seed=seed, scheme="affine32", hashvalues=np.asarray(sig, np.uint32))
    return LeanMinHash(m)


def from_datasketch(m) -> np.ndarray:
    """The signature of a datasketch ``MinHash``/``LeanMinHash`` (must be affine32)."""
    if getattr(m, "scheme", None) != "affine32":
        raise ValueError(f"need a datasketch MinHash with scheme='affine32', got {getattr(m, 'scheme', None)!r}")
    return np.asarray(m.hashvalues, dtype=np.uint32).copy()


# --------------------------------------------------------------------------- kernel

_M32 = np.uint64(0xFFFFFFFF)
_P1, _P2, _P3, _P4, _P5 = (np.uint64(p) for p in (2654435761, 2246822519, 3266489917, 668265263, 374761393))


@numba.njit(inline="always")
def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@numba.njit(inline="always")
def _u32le(buf, i):
    return (
        np.uint64(buf[i])
        | (np.uint64(buf[i + 1]) << np.uint64(8))
        | (np.uint64(buf[i + 2]) << np.uint64(16))
        | (np.uint64(buf[i + 3]) << np.uint64(24))
    )


@numba.njit(cache=True, nogil=True)
def xxh32(buf, start, end):
    """xxHash32 with seed 0 of ``buf[start:end]``."""
    n = end - start
    i = start
    if n >= 16:
        v1 = (_P1 + _P2) & _M32
        v2 = _P2
        v3 = np.uint64(0)
        v4 = (np.uint64(0x100000000) - _P1) & _M32
        limit = end - 16
        while i <= limit:
            v1 = (_rotl((v1 + _u32le(buf, i) * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl((v2 + _u32le(buf, i + 4) * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl((v3 + _u32le(buf, i + 8) * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl((v4 + _u32le(buf, i + 12) * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = _P5
    h = (h + np.uint64(n)) & _M32
    while i + 4 <= end:
        h = (_rotl((h + _u32le(buf, i) * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < end:
        h = (_rotl((h + np.uint64(buf[i]) * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    h ^= h >> np.uint64(15)
    h = (h * _P2) & _M32
    h ^= h >> np.uint64(13)
    h = (h * _P3) & _M32
    h ^= h >> np.uint64(16)
    return h


@numba.njit(inline="always")
def _fmix32(h):
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    return h


@numba.njit(inline="always")
def _is_alpha(c):
    return (65 <= c <= 90) or (97 <= c <= 122)


@numba.njit(inline="always")
def _is_alnum(c):
    return _is_alpha(c) or (48 <= c <= 57)


@numba.njit(inline="always")
def _is_hex(c):
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def _normalize_into(data, start, end, fold_off, fold_data, ascii_map, buf, ws, we):
    """Write the normalised words of ``data[start:end]`` into ``buf`` (single spaces
    between words) and their spans into ``ws``/``we``.

    Returns (n_words, n_chars); n_words is -1 for invalid UTF-8 and -2 when ``buf`` is
    too small (the caller grows it and retries).
    """
    cap = buf.shape[0]
    pos = 0
    nw = 0
    in_word = False
    n_chars = 0
    i = start
    while i < end:
        c = data[i]
        if c == 60 or c == 38:  # '<' or '&': markup is a separator
            m = _markup_end(data, i, end)
            if m > 0:
                n_chars += m - i  # markup is ASCII
                i = m
                if in_word:
                    we[nw] = pos
                    nw += 1
                    in_word = False
                continue
        if c < 0x80:  # ASCII fast path: one byte in, at most one byte out
            i += 1
            n_chars += 1
            d = ascii_map[c]
            if d == 0:
                if in_word:
                    we[nw] = pos
                    nw += 1
                    in_word = False
                continue
            if pos + 2 > cap:
                return -2, 0
            if not in_word:
                if nw > 0:
                    buf[pos] = 32
                    pos += 1
                ws[nw] = pos
                in_word = True
            buf[pos] = d
            pos += 1
            continue
        # decode one code point (strict UTF-8, as Python's decoder)
        if 0xC2 <= c <= 0xDF:
            if i + 1 >= end or (data[i + 1] & 0xC0) != 0x80:
                return -1, 0
            cp = (np.int64(c & 0x1F) << 6) | np.int64(data[i + 1] & 0x3F)
            i += 2
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= end or (data[i + 1] & 0xC0) != 0x80 or (data[i + 2] & 0xC0) != 0x80:
                return -1, 0
            cp = (np.int64(c & 0x0F) << 12) | (np.int64(data[i + 1] & 0x3F) << 6) | np.int64(data[i + 2] & 0x3F)
            if cp < 0x800 or (0xD800 <= cp <= 0xDFFF):
                return -1, 0
            i += 3
        elif 0xF0 <= c <= 0xF4:
            if (
                i + 3 >= end
                or (data[i + 1] & 0xC0) != 0x80
                or (data[i + 2] & 0xC0) != 0x80
                or (data[i + 3] & 0xC0) != 0x80
            ):
                return -1, 0
            cp = (
                (np.int64(c & 0x07) << 18)
                | (np.int64(data[i + 1] & 0x3F) << 12)
                | (np.int64(data[i + 2] & 0x3F) << 6)
                | np.int64(data[i + 3] & 0x3F)
            )
            if cp < 0x10000 or cp > 0x10FFFF:
                return -1, 0
            i += 4
        else:
            return -1, 0
        n_chars += 1
        for k in range(fold_off[cp], fold_off[cp + 1]):
            d = fold_data[k]
            if d == 32:
                if in_word:
                    we[nw] = pos
                    nw += 1
                    in_word = False
            else:
                if pos + 2 > cap:
                    return -2, 0
                if not in_word:
                    if nw > 0:
                        buf[pos] = 32
                        pos += 1
                    ws[nw] = pos
                    in_word = True
                buf[pos] = d
                pos += 1
    if in_word:
        we[nw] = pos
        nw += 1
    return nw, n_chars


@numba.njit(cache=True, nogil=True)
def _update(sig, h, a, b):
    x = _fmix32(h)
    for j in range(sig.shape[0]):
        v = np.uint32((np.uint64(a[j]) * x + np.uint64(b[j])) & _M32)
        if v < sig[j]:
            sig[j] = v


@numba.njit(cache=True, nogil=True)
def _signature_kernel(data, offsets, first, fold_off, fold_data, ascii_map, ngram, a, b, sigs, n_shingles, n_chars, status, buf, ws, we):
    """Signatures of documents ``first..`` of an Arrow string array (``data``/``offsets``).

    Returns the index of the first document not done (its normalised form did not fit in
    ``buf``), or the number of documents when all are done.
    """
    n_docs = offsets.shape[0] - 1
    for d in range(first, n_docs):
        sig = sigs[d]
        sig[:] = 0xFFFFFFFF
        nw, nc = _normalize_into(data, offsets[d], offsets[d + 1], fold_off, fold_data, ascii_map, buf, ws, we)
        if nw == -2:
            return d
        if nw == -1:
            status[d] = INVALID_UTF8
            n_shingles[d] = 0
            n_chars[d] = 0
            continue
        status[d] = OK
        n_chars[d] = nc
        if nw == 0:
            n_shingles[d] = 0
        elif nw < ngram:
            n_shingles[d] = 1
            _update(sig, xxh32(buf, ws[0], we[nw - 1]), a, b)
        else:
            n_shingles[d] = nw - ngram + 1
            for k in range(nw - ngram + 1):
                _update(sig, xxh32(buf, ws[k], we[k + ngram - 1]), a, b)
    return n_docs


# --------------------------------------------------------------------------- API


@dataclass(frozen=True)
class Signatures:
    """Signatures of a batch of documents, one row each."""

    values: np.ndarray  # uint32 [n_docs, num_perm]
    n_shingles: np.ndarray  # int64 [n_docs]
    n_chars: np.ndarray  # int64 [n_docs]
    status: np.ndarray  # uint8 [n_docs]: OK or INVALID_UTF8


class Hasher:
    """Computes datasketch-compatible signatures for batches of texts."""

    def __init__(self, num_perm: int = 128, seed: int = 1, ngram: int = 5):
        if num_perm < 1 or ngram < 1:
            raise ValueError("num_perm and ngram must be positive")
        self.num_perm, self.seed, self.ngram = num_perm, seed, ngram
        self.a, self.b = permutations(num_perm, seed)
        self._fold_off, self._fold_data = fold_table()
        # ASCII byte -> its normalised byte, 0 for a separator
        self._ascii_map = np.array([self._fold_data[self._fold_off[c]] if self._fold_data[self._fold_off[c]] != 32 else 0
                                    for c in range(128)], np.uint8)
        self._buf = np.empty(1 << 16, np.uint8)
        self._ws = np.empty(1 << 15, np.int64)
        self._we = np.empty(1 << 15, np.int64)

    def signatures(self, texts) -> Signatures:
        """Signatures of an Arrow string array, or of a list of ``str``."""
        if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = pa.array(texts, type=pa.large_string())
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
        texts = texts.cast(pa.large_string())
        n = len(texts)
        offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + n + 1]
        data_buf = texts.buffers()[2]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
        sigs = np.empty((n, self.num_perm), dtype=np.uint32)
        n_shingles = np.zeros(n, np.int64)
        n_chars = np.zeros(n, np.int64)
        status = np.zeros(n, np.uint8)
        done = 0
        while done < n:
            done = _signature_kernel(
                data, offsets, done, self._fold_off, self._fold_data, self._ascii_map, self.ngram, self.a, self.b,
                sigs, n_shingles, n_chars, status, self._buf, self._ws, self._we,
            )
            if done < n:  # document `done` needs a bigger buffer: its normalised form can outgrow its bytes
                need = 2 * int(offsets[done + 1] - offsets[done]) + 64
                self._grow(max(need, 2 * self._buf.shape[0]))
        return Signatures(sigs, n_shingles, n_chars, status)

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text]).values[0]

    def _grow(self, size: int) -> None:
        self._buf = np.empty(size, np.uint8)
        self._ws = np.empty(size // 2 + 2, np.int64)
        self._we = np.empty(size // 2 + 2, np.int64)
