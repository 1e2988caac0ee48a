"""Parameters, with their defaults and validation in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ContamscanError


@dataclass(frozen=True)
class IndexParams:
    """How references are turned into signatures and LSH bands.

    A scan always uses the parameters of its index, so that document and reference
    signatures are comparable.
    """

    threshold: float = 0.5  # estimated Jaccard similarity at which a document is flagged
    num_perm: int = 128
    ngram: int = 5  # words per shingle
    seed: int = 1  # datasketch's default seed: signatures interoperate as they are
    # partial matches: one shingle in 2**anchor_bits is an anchor (0: whole documents only)
    anchor_bits: int = 4
    max_anchor_refs: int = 64  # anchors shared by more references are stock phrases: dropped

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ContamscanError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if not 16 <= self.num_perm <= 1024:
            raise ContamscanError(f"--num-perm must be between 16 and 1024, got {self.num_perm}")
        if not 1 <= self.ngram <= 32:
            raise ContamscanError(f"--ngram must be between 1 and 32, got {self.ngram}")
        if not 0 <= self.seed < 2**32:
            raise ContamscanError(f"seed must be a 32-bit unsigned integer, got {self.seed}")
        if not 0 <= self.anchor_bits <= 8:
            raise ContamscanError(f"--anchor-bits must be between 0 and 8, got {self.anchor_bits}")
        if self.max_anchor_refs < 1:
            raise ContamscanError(f"max_anchor_refs must be positive, got {self.max_anchor_refs}")


@dataclass(frozen=True)
class ScanOptions:
    """Everything a scan needs besides its inputs, its index and its output directory."""

    text_field: str = "text"
    id_field: str | None = "id"  # used when present in a shard; None: never
    workers: int = 0  # 0: one per core
    executor: str = "local"  # "local": a process pool on this machine; "ray": tasks on a Ray cluster
    # a Parquet shard larger than this is scanned as pieces of whole row groups, in parallel
    # (not with clean/flagged outputs or a profile, which need the whole shard in one task)
    piece_bytes: int = 256 << 20
    ray_address: str | None = None  # the Ray cluster (None: start a local one)
    strict: bool = False  # a bad record fails the shard instead of being counted
    batch_bytes: int = 16 << 20  # text per batch: bounds memory per worker
    top_matches: int = 10  # per shard, in report.json
    # partial matches (indexes with anchors): a document is flagged when one reference
    # shares a run of anchors with it that scores at least `min_anchors` (+1 per shared
    # anchor, -`miss_penalty` per unshared one inside the run) and spans `min_words` words
    min_anchors: float = 5.0
    miss_penalty: float = 0.5
    min_words: int = 50
    # "estimate": similarity and containment estimated from signatures and anchors;
    # "exact": flags re-checked on the exact shingle sets (needs an index with stored text)
    verify: str = "estimate"
    # copies of the input shards without / with only the flagged documents (same relative
    # paths, formats and schemas); None: not written
    write_clean: str | None = None
    write_flagged: str | None = None
    # what the scan expects of its index (None: anything); a mismatch fails before any work
    expect_threshold: float | None = None
    expect_ngram: int | None = None
    expect_num_perm: int | None = None
    # a style profile (`contamscan profile build`): each shard also gets the estimated share
    # of AI-written documents and the model family it resembles; None: not estimated
    profile: str | None = None

    def __post_init__(self):
        if self.executor not in ("local", "ray"):
            raise ContamscanError(f"--executor must be 'local' or 'ray', got {self.executor!r}")
        if self.workers < 0:
            raise ContamscanError(f"--workers must be >= 0, got {self.workers}")
        if self.batch_bytes < 1 << 16:
            raise ContamscanError("batch size must be at least 64 KiB")
        if self.min_anchors < 2:
            raise ContamscanError(f"--min-anchors must be at least 2, got {self.min_anchors}")
        if self.miss_penalty < 0:
            raise ContamscanError(f"miss_penalty must be >= 0, got {self.miss_penalty}")
        if self.verify not in ("estimate", "exact"):
            raise ContamscanError(f"--verify must be 'estimate' or 'exact', got {self.verify!r}")
        if self.min_words < 1:
            raise ContamscanError(f"min_words must be positive, got {self.min_words}")

    @property
    def n_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    def result_fields(self) -> dict:
        """The options a scan's results depend on (not workers, batch size or display)."""
        keep = ("text_field", "id_field", "strict", "min_anchors", "miss_penalty", "min_words", "verify",
                "write_clean", "write_flagged", "profile")
        return {k: getattr(self, k) for k in keep}
