"""LSH banding: the choice of (bands, rows) and the band keys of a signature.

Band ``i`` covers signature slots ``[i * rows, (i + 1) * rows)``, as in datasketch's
``MinHashLSH``; two signatures are candidates when any band is equal in every slot.
A band is stored as a 64-bit key (a hash of its ``rows`` values mixed with its index);
equal bands give equal keys, and a false collision of two different bands has probability
about 2**-64, so the candidate sets equal datasketch's.
"""

from __future__ import annotations

import functools

import numba
import numpy as np


@functools.lru_cache(maxsize=None)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives at ``threshold``,
    with equal weights: the same choice as datasketch's ``MinHashLSH(threshold, num_perm)``."""
    from datasketch.lsh import _optimal_param

    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    return tuple(int(x) for x in _optimal_param(threshold, num_perm, 0.5, 0.5))


_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)


@numba.njit(inline="always")
def _mix64(x):
    # splitmix64 finaliser: a bijection on 64-bit values with full avalanche
    x ^= x >> np.uint64(30)
    x *= _K2
    x ^= x >> np.uint64(27)
    x *= _K3
    x ^= x >> np.uint64(31)
    return x


@numba.njit(cache=True, nogil=True)
def band_key(sig, band, rows):
    k = _mix64(np.uint64(band) * _K1 + _K1)
    base = band * rows
    for j in range(rows):
        k = _mix64(k ^ np.uint64(sig[base + j]))
    return k


@numba.njit(cache=True, nogil=True)
def band_keys(sigs, bands, rows):
    """Band keys of many signatures: uint64 [n, bands]."""
    n = sigs.shape[0]
    out = np.empty((n, bands), np.uint64)
    for i in range(n):
        for band in range(bands):
            out[i, band] = band_key(sigs[i], band, rows)
    return out
