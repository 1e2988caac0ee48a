"""LSH banding: the choice of (bands, rows) and the band keys of a signature.

Band ``i`` covers signature slots ``[i * rows, (i + 1) * rows)``, as in datasketch's
``MinHashLSH``; two signatures are candidates when any band is equal in every slot.
A band is stored as a 64-bit key (a hash of its ``rows`` values mixed with its index);
equal bands give equal keys, and a false collision of two different bands has probability
about 2**-64, so the candidate sets equal datasketch's.
"""

from __future__ import annotations

import functools

import numpy as np

from ..native import jit, kernel


def _band_error_integrals(threshold: float, num_perm: int):
    """For every (bands b, rows r) with b * r <= num_perm: the false-positive and
    false-negative areas datasketch minimises, ∫_0^t P(s) ds and ∫_t^1 (1 - P(s)) ds with
    P(s) = 1 - (1 - s^r)^b, the probability that two sets of Jaccard similarity s share a band.
    P is a polynomial of degree b * r <= num_perm, so Gauss-Legendre quadrature with
    num_perm // 2 + 1 nodes computes both integrals exactly, up to rounding."""
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    lo_s, lo_w = threshold * (x + 1) / 2, w * threshold / 2  # nodes on [0, t]
    hi_s, hi_w = threshold + (1 - threshold) * (x + 1) / 2, w * (1 - threshold) / 2  # on [t, 1]
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = float(lo_w @ (1 - (1 - lo_s**r) ** b))
            fn = float(hi_w @ ((1 - hi_s**r) ** b))
            yield b, r, fp, fn


@functools.lru_cache(maxsize=None)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives at ``threshold``, with
    equal weights: the choice of datasketch's ``MinHashLSH(threshold, num_perm)`` (the tests
    hold the two equal), computed without scipy.

    Example:
        >>> optimal_bands(0.5, 128)
        (25, 5)
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    best, opt = float("inf"), (0, 0)
    for b, r, fp, fn in _band_error_integrals(threshold, num_perm):
        error = 0.5 * fp + 0.5 * fn
        if error < best:
            best, opt = error, (b, r)
    return opt


_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)


@jit(inline="always")
def mix64(x):
    # splitmix64 finaliser: a bijection on 64-bit values with full avalanche
    x ^= x >> np.uint64(30)
    x *= _K2
    x ^= x >> np.uint64(27)
    x *= _K3
    x ^= x >> np.uint64(31)
    return x


@kernel("uint64(uint32[::1], int64, int64)")
def band_key(sig, band, rows):
    k = mix64(np.uint64(band) * _K1 + _K1)
    base = band * rows
    for j in range(rows):
        k = mix64(k ^ np.uint64(sig[base + j]))
    return k


@kernel("uint64[:, ::1](uint32[:, ::1], int64, int64)")
def band_keys(sigs, bands, rows):
    """Band keys of many signatures: uint64 [n, bands]."""
    n = sigs.shape[0]
    out = np.empty((n, bands), np.uint64)
    for i in range(n):
        for band in range(bands):
            out[i, band] = band_key(sigs[i], band, rows)
    return out
