"""Text to signatures, pure math and compiled kernels with no I/O: normalisation and shingles
(:mod:`.text`), MinHash signatures and anchors (:mod:`.minhash`), LSH bands (:mod:`.lsh`),
word hashes for the style estimate (:mod:`.words`); conversion to and from datasketch
(:mod:`.interop`, imported on demand)."""

from .minhash import Hasher, Signatures
from .text import shingle_hash, shingles

__all__ = ["Hasher", "Signatures", "shingle_hash", "shingles"]
