"""An opened index: parameters, references, and memory-mapped signatures and tables, with the
queries of a scan (whole documents by LSH, passages by anchors)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ..config import IndexParams
from ..io import Location
from ..sketch.lsh import band_key
from ..sketch.minhash import Hasher
from .kernels import TOUCH_ABOVE, anchor_kernel, band_tag, query_kernel


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
    known_human_anchors: int = 0


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
    seg_tight: np.ndarray  # bool [n], the run skips no document anchor and each is that reference's only
    total_hits: np.ndarray  # int64 [n], anchors the document shares with that reference
    alt_ref: np.ndarray  # int64 [n], the best reference with another label (-1: none)
    alt_score: np.ndarray  # float64 [n], its run's score
    more_ref: np.ndarray  # int64 [n, k], the next references by score, any label (-1: none)
    more_score: np.ndarray  # float64 [n, k]
    more_first: np.ndarray  # int64 [n, k]
    more_last: np.ndarray  # int64 [n, k]
    more_tight: np.ndarray  # bool [n, k]
    more_total: np.ndarray  # int64 [n, k]


class ReferenceIndex:
    """An opened index: parameters, references, memory-mapped signatures and band tables.
    Open one with :func:`contamscan.open_index` or build one with :func:`contamscan.build_index`.

    Example:
        >>> index = contamscan.open_index("refs.index")  # doctest: +SKIP
        >>> index.summary().labels  # doctest: +SKIP
        {'openai/o3': 137, ...}
    """

    def __init__(self, path: Path, manifest: dict, refs: pl.DataFrame, arrays: dict[str, np.ndarray],
                 texts: pa.ChunkedArray | None = None, location: Location | None = None):
        self.path = Path(path)  # the directory on this machine (a remote index's local copy)
        self.location = location or Location.of(str(path))  # where it was opened from
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
        self.anchor_pos = arrays["anchor_pos"]
        self.anchor_dir = arrays["anchor_dir"]
        self.anchor_dir_bits = int(round(math.log2(self.anchor_dir.shape[0] - 1)))
        self.anchor_stop = arrays["anchor_stop"]
        self.anchor_human = arrays["anchor_human"]  # sorted keys also found in known human text
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
        return self.location.shown

    def hasher(self) -> Hasher:
        p = self.params
        return Hasher(p.num_perm, p.seed, p.ngram, p.anchor_bits)

    def query(self, sigs: np.ndarray, skip: np.ndarray | None = None) -> QueryResult:
        """Whole-document matches: LSH candidates verified by their estimated Jaccard."""
        n = sigs.shape[0]
        skip = np.zeros(n, np.bool_) if skip is None else skip
        best_ref, best_equal, n_cand, alt_ref, alt_equal = (np.empty(n, np.int64) for _ in range(5))
        if len(self):
            query_kernel(sigs, skip, self.band_tags, self.band_refs, self.band_dir, self.dir_bits,
                          self.rows, self.signatures, self.label_codes, self.min_equal, self._touch,
                          best_ref, best_equal, n_cand, alt_ref, alt_equal)
        else:
            best_ref[:], best_equal[:], n_cand[:], alt_ref[:], alt_equal[:] = -1, 0, 0, -1, 0
        P = self.params.num_perm
        return QueryResult(best_ref, best_equal / P, n_cand, alt_ref, alt_equal / P)

    def partial(self, anchors, n_docs: int, min_hits: int, miss_penalty: float, more: int = 0) -> PartialResult:
        """Partial matches of a batch's documents from their anchors (``Signatures.anchors``),
        with the ``more`` next-best references of each."""
        doc_ptr = np.searchsorted(anchors.doc, np.arange(n_docs + 1), side="left").astype(np.int64)
        out = [np.empty((n_docs, more) if name.startswith("more") else n_docs,
                        np.float64 if name.endswith("score") else np.bool_ if name.endswith("tight") else np.int64)
               for name in PartialResult.__dataclass_fields__]
        anchor_kernel(doc_ptr, anchors.key, anchors.word, self.anchor_tags, self.anchor_refs, self.anchor_pos,
                      self.anchor_dir, self.anchor_dir_bits, self.label_codes, min_hits, float(miss_penalty),
                      self._touch, *out)
        return PartialResult(*out)

    def known_human(self, keys: np.ndarray) -> np.ndarray:
        """Which anchors (64-bit keys, ``Anchors.key``) are also in the index's known human text."""
        human = self.anchor_human
        if not len(human):
            return np.zeros(len(keys), np.bool_)
        k = (np.asarray(keys, np.uint64) >> np.uint64(32)).astype(np.uint32)
        at = np.minimum(np.searchsorted(human, k), len(human) - 1)
        return human[at] == k

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

    def anchors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The anchor table as (stored keys uint32, references int64, word positions uint16)
        arrays, in memory: each key is its directory bucket's top bits and its tag's low bits."""
        bits = self.anchor_dir_bits
        bucket = np.repeat(np.arange(len(self.anchor_dir) - 1, dtype=np.uint32), np.diff(self.anchor_dir))
        low = np.asarray(self.anchor_tags).astype(np.uint32) & np.uint32((1 << (32 - bits)) - 1)
        return (bucket << np.uint32(32 - bits)) | low, np.asarray(self.anchor_refs, np.int64), \
            np.asarray(self.anchor_pos, np.uint16)

    def summary(self) -> IndexSummary:
        m = self.manifest
        size = sum(f["bytes"] for f in m["files"].values()) + (self.path / "manifest.json").stat().st_size
        c = m["counts"]
        return IndexSummary(self.shown, c["refs"], c["labels"], m["params"], size, c.get("skipped", {}),
                            c["anchors"], c["common_anchors_dropped"], bool(m.get("stored_text")),
                            c.get("known_human_anchors", 0))
