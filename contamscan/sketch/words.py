"""Each document's normalised words, in order, as 32-bit hashes (xxh32, seed 0, of the
word's UTF-8 bytes, i.e. ``shingle_hash`` of a one-word shingle), from the same
normalisation kernel as the signatures: the input of the style estimate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..native import kernel
from .minhash import (
    _FULL_ANCHORS,
    _FULL_BUF,
    _U32,
    INVALID_UTF8,
    OK,
    Hasher,
    _ix,
    _normalize_into,
    _utf8_buffers,
    _xxh32,
    grown,
)

__all__ = ["Words", "word_hashes"]



@kernel(
    "UniTuple(int64, 3)(uint8[::1], int64[::1], int64, int32[::1], uint8[::1], uint8[::1], uint8[::1], in"
    "t64[::1], int64[::1], int64[::1], int64, uint32[::1], int64[::1], int64[::1], int64, int64[::1], uin"
    "t8[::1], boolean)"
)
def _word_hash_kernel(data, offsets, first, fold_off, fold_data, byte_class, buf, ws, wo, we, max_words,
                      out, out_start, out_stop, m, n_words, status, spans):
    """Word hashes of documents ``first..`` (at most ``max_words`` per document), appended to
    ``out`` from slot ``m``; with ``spans``, each word's byte span in its document too.
    Returns (the first document not done, words written, why), as _signature_kernel."""
    n_docs = offsets.shape[0] - 1
    cap = out.shape[0]
    for d in range(first, n_docs):
        start = offsets[d]
        nw, nc = _normalize_into(data, start, offsets[d + 1], fold_off, fold_data, byte_class, buf, ws, wo, we)
        if nw == -2:
            return d, m, _FULL_BUF
        if nw == -1:
            status[d] = INVALID_UTF8
            n_words[d] = 0
            continue
        status[d] = OK
        k_max = min(nw, max_words)
        if m + k_max > cap:
            return d, m, _FULL_ANCHORS
        for k in range(k_max):
            out[m] = _xxh32(buf, ws[k], ws[_ix(k + 1)] - 1, _U32(0))
            if spans:
                out_start[m] = wo[k] - start
                out_stop[m] = we[_ix(k + 1)] - start
            m += 1
        n_words[d] = k_max
    return n_docs, m, 0


@dataclass(frozen=True)
class Words:
    """The words of a batch of documents, in order: document ``d``'s hashes are
    ``hash[offsets[d]:offsets[d + 1]]``; ``start``/``stop`` (when asked for) are each word's
    byte span in its document's UTF-8 text."""

    hash: np.ndarray  # uint32
    offsets: np.ndarray  # int64 [n_docs + 1]
    status: np.ndarray  # uint8 [n_docs]: OK or INVALID_UTF8
    start: np.ndarray | None = None  # int64
    stop: np.ndarray | None = None


def word_hashes(texts, max_words: int = 1 << 62, spans: bool = False, hasher: Hasher | None = None) -> Words:
    """Each document's first ``max_words`` normalised words as xxh32 hashes (an Arrow string
    array or a list of ``str``). ``hasher`` lends its tables and buffers (else a private one)."""
    h = hasher or _word_hasher()
    offsets, data = _utf8_buffers(texts)
    n = len(offsets) - 1
    n_words = np.zeros(n, np.int64)
    status = np.zeros(n, np.uint8)
    cap = (int(offsets[-1] - offsets[0]) >> 2) + 64  # a word per ~6 bytes of text: rarely regrown
    out = np.empty(cap, np.uint32)
    out_start = np.empty(cap if spans else 0, np.int64)
    out_stop = np.empty(cap if spans else 0, np.int64)
    done = m = 0
    while done < n:
        done, m, full = _word_hash_kernel(data, offsets, done, h._fold_off, h._fold_data, h._byte_class, h._buf,
                                          h._ws, h._wo, h._we, max_words, out, out_start, out_stop, m, n_words,
                                          status, spans)
        doc_bytes = int(offsets[min(done + 1, n)] - offsets[done]) if done < n else 0
        if full == _FULL_ANCHORS:
            if spans:
                out, out_start, out_stop = grown((out, out_start, out_stop), m, doc_bytes)
            else:
                (out,) = grown((out,), m, doc_bytes)
        elif full == _FULL_BUF:
            h.grow_for(doc_bytes)
    word_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(n_words, out=word_offsets[1:])
    return Words(out[:m], word_offsets, status, out_start[:m] if spans else None, out_stop[:m] if spans else None)


_WORD_HASHER: list = []


def _word_hasher() -> Hasher:
    if not _WORD_HASHER:
        _WORD_HASHER.append(Hasher(num_perm=1))
    return _WORD_HASHER[0]
