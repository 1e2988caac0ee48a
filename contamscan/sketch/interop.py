"""Signatures to and from datasketch: a contamscan signature is bit-identical to
``datasketch.MinHash(num_perm, seed, scheme="affine32", hashfunc=contamscan.shingle_hash)``
fed the same shingles, and converts both ways here. Imported on demand only: datasketch
(and through it scipy) is not needed to scan."""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHash

__all__ = ["to_datasketch", "from_datasketch"]


def to_datasketch(sig: np.ndarray, seed: int = 1):
    """A ``datasketch.LeanMinHash`` holding this signature."""
    m = MinHash(num_perm=len(sig), seed=seed, scheme="affine32", hashvalues=np.asarray(sig, np.uint32))
    return LeanMinHash(m)


def from_datasketch(m) -> np.ndarray:
    """The signature of a datasketch ``MinHash``/``LeanMinHash`` (must be affine32)."""
    if getattr(m, "scheme", None) != "affine32":
        raise ValueError(f"need a datasketch MinHash with scheme='affine32', got {getattr(m, 'scheme', None)!r}")
    return np.asarray(m.hashvalues, dtype=np.uint32).copy()
