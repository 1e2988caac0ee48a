"""An opened index: parameters, references, and memory-mapped signatures and tables, with the
queries of a scan (whole documents by LSH, passages by anchors)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..config import IndexParams
from ..io import Location
from ..model import numpy_of
from ..sketch.lsh import band_key
from ..sketch.minhash import Hasher
from .kernels import TOUCH_ABOVE, anchor_kernel, anchor_lookup, band_tag, query_kernel


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, sorted (a sort and a compare: numpy's hash-based
    ``unique`` is several times slower on large integer arrays)."""
    a = np.sort(a)
    return a[np.append(True, a[1:] != a[:-1])] if len(a) else a


def in_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_keys`` (sorted, distinct)."""
    if not len(sorted_keys) or not len(values):
        return np.zeros(len(values), np.bool_)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def _union(arrays) -> np.ndarray:
    return sorted_unique(np.concatenate([np.zeros(0, np.uint32)] + [np.asarray(a, np.uint32) for a in arrays]))


def key_directory(sorted_keys: np.ndarray, bits: int, key_bits: int = 64) -> np.ndarray:
    """Where each run of ``bits`` top bits starts in ``sorted_keys`` (of ``key_bits`` bits),
    plus the end."""
    dtype = np.uint64 if key_bits == 64 else np.uint32
    starts = (np.arange(1 << bits, dtype=np.uint64) << np.uint64(key_bits - bits)).astype(dtype) if bits \
        else np.zeros(1, dtype)
    return np.append(np.searchsorted(sorted_keys, starts, side="left"), len(sorted_keys)).astype(np.int64)


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
    segments: int = 1  # `index add` adds one; `index compact` makes one of them all


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


class Segment:
    """One segment of an index: its references ``offset:offset + n`` and their tables
    (:mod:`contamscan.index.format`); ``index add`` writes a new segment beside the others."""

    def __init__(self, offset: int, arrays: dict[str, np.ndarray], label_codes: np.ndarray):
        self.offset = offset
        self.signatures = arrays["signatures"]
        self.n = self.signatures.shape[0]
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
        self.anchor_human = arrays["anchor_human"]
        # references of the segments before whose anchors this one's addition dropped (one per anchor)
        self.anchor_drop = arrays.get("anchor_drop", np.zeros(0, np.int64))
        self.label_codes = label_codes[offset:offset + self.n]
        # touch passes (module doc) pay off only when the tables do not fit in the CPU caches
        self.touch = self.band_tags.nbytes + self.anchor_tags.nbytes > TOUCH_ABOVE

    def lookup(self, keys: np.ndarray):
        """The anchor table's entries of the distinct stored keys ``keys``: (which key,
        reference in the index, position)."""
        which, refs, pos = anchor_lookup(keys, self.anchor_tags, self.anchor_refs, self.anchor_pos, self.anchor_dir,
                                         self.anchor_dir_bits)
        return which, refs + self.offset, pos

    def anchor_blocks(self, entries: int = 1 << 24):
        """The anchor table in blocks of about ``entries``, in key order, as (stored keys
        uint32, references in the index int64, positions uint16)."""
        d = self.anchor_dir
        bits = self.anchor_dir_bits
        low = np.uint32((1 << (32 - bits)) - 1) if bits < 32 else np.uint32(0)
        b0, nb = 0, len(d) - 1
        while b0 < nb:
            b1 = int(min(max(np.searchsorted(d, d[b0] + entries, side="right") - 1, b0 + 1), nb))
            dd = np.asarray(d[b0:b1 + 1], np.int64)
            lo, hi = int(dd[0]), int(dd[-1])
            if hi > lo:
                bucket = np.repeat(np.arange(b0, b1, dtype=np.uint32), np.diff(dd))
                tags = np.asarray(self.anchor_tags[lo:hi]).astype(np.uint32) & low
                yield ((bucket << np.uint32(32 - bits)) if bits < 32 else bucket) | tags, \
                    np.asarray(self.anchor_refs[lo:hi], np.int64) + self.offset, np.asarray(self.anchor_pos[lo:hi])
            b0 = b1


class Rows:
    """The signatures of several segments as one array of rows (what the scan reads:
    ``rows[refs]`` for an array of reference numbers, ``len``, ``shape``)."""

    def __init__(self, parts: list[np.ndarray], offsets: np.ndarray):
        self.parts, self.offsets = parts, offsets
        self.shape = (int(offsets[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx):
        if np.isscalar(idx):
            s = int(np.searchsorted(self.offsets, idx, side="right") - 1)
            return self.parts[s][int(idx) - self.offsets[s]]
        idx = np.asarray(idx, np.int64)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        seg = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(seg):
            at = seg == s
            out[at] = self.parts[s][idx[at] - self.offsets[s]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate([np.asarray(p) for p in self.parts])
        return out if dtype is None else out.astype(dtype)


class ReferenceIndex:
    """An opened index: parameters, references, memory-mapped signatures and band tables.
    Open one with :func:`contamscan.open_index` or build one with :func:`contamscan.build_index`.

    An index is one segment or several (after ``index add``): queries go over every segment
    and give what a single-segment index of the same references gives.

    Example:
        >>> index = contamscan.open_index("refs.index")  # doctest: +SKIP
        >>> index.summary().labels  # doctest: +SKIP
        {'openai/o3': 137, ...}
    """

    def __init__(self, path: Path, manifest: dict, refs: pa.Table, arrays,
                 texts: pa.ChunkedArray | None = None, location: Location | None = None):
        self.path = Path(path)  # the directory on this machine (a remote index's local copy)
        self.location = location or Location.of(str(path))  # where it was opened from
        self.texts = texts  # the reference texts, memory-mapped, when the index stores them
        self.manifest = manifest
        p = manifest["params"]
        self.params = IndexParams(threshold=p["threshold"], num_perm=p["num_perm"], ngram=p["ngram"], seed=p["seed"],
                                  anchor_bits=p["anchor_bits"], max_anchor_refs=p["max_anchor_refs"])
        self.bands, self.rows = p["bands"], p["rows"]
        self.refs_table = refs
        self._refs = None
        # per-reference columns as arrays, not Python objects: cheap to hold per worker
        self.ref_ids = refs["ref_id"].combine_chunks()
        labels = refs["label"].combine_chunks().dictionary_encode()
        names = labels.dictionary.to_pylist()  # the distinct labels, in order of appearance
        rank = np.argsort(np.argsort(np.array(names, dtype=object), kind="stable")).astype(np.int32)
        self.label_names = np.array(sorted(names), dtype=str)
        self.label_codes = rank[numpy_of(labels.indices)] if len(names) else np.zeros(len(labels), np.int32)
        self.ref_shingles = numpy_of(refs["n_shingles"])
        segments = [arrays] if isinstance(arrays, dict) else list(arrays)
        offsets = np.cumsum([0] + [a["signatures"].shape[0] for a in segments])
        self.segments = [Segment(int(o), a, self.label_codes) for o, a in zip(offsets, segments)]
        ref_anchors = numpy_of(refs["n_anchors"])
        drops = [s.anchor_drop for s in self.segments if len(s.anchor_drop)]
        if drops:  # anchors of earlier segments that a later one's references made common
            ref_anchors = ref_anchors - np.bincount(np.concatenate(drops), minlength=len(ref_anchors))
        self.ref_anchors = ref_anchors
        if len(self.segments) == 1:
            seg = self.segments[0]
            self.signatures = seg.signatures
            self.anchor_stop = seg.anchor_stop
            self.anchor_human = seg.anchor_human  # sorted keys also found in known human text
            # one segment: its tables, as the kernels read them
            self.band_tags, self.band_refs, self.band_dir, self.dir_bits = \
                seg.band_tags, seg.band_refs, seg.band_dir, seg.dir_bits
            self.anchor_tags, self.anchor_refs, self.anchor_pos, self.anchor_dir, self.anchor_dir_bits = \
                seg.anchor_tags, seg.anchor_refs, seg.anchor_pos, seg.anchor_dir, seg.anchor_dir_bits
            self._touch = seg.touch
        else:
            self.signatures = Rows([s.signatures for s in self.segments], offsets)
            # a key any segment dropped is dropped from all: it would be from one table of them all
            self.anchor_stop = _union([s.anchor_stop for s in self.segments])
            human = _union([s.anchor_human for s in self.segments])
            self.anchor_human = human[~in_sorted(human, self.anchor_stop)]
        self.n_table_anchors = sum(len(s.anchor_refs) for s in self.segments)
        # slots that must agree for a flag: similarity = equal / num_perm >= threshold
        self.min_equal = math.ceil(self.params.threshold * self.params.num_perm - 1e-9)

    @property
    def refs(self):
        """The reference table (ref_id, label, source, counts) as a polars DataFrame, for
        the build steps (add, merge, compact); made on first use: a scan reads only the
        arrays above, and needs no polars (0.2 s of its start)."""
        if self._refs is None:
            import polars as pl  # noqa: PLC0415

            self._refs = pl.from_arrow(self.refs_table)
        return self._refs

    def __len__(self) -> int:
        return self.signatures.shape[0]

    @property
    def shown(self) -> str:
        """The index as named to people: its path, or a remote index's URI (without options)."""
        return self.location.shown

    def hasher(self) -> Hasher:
        p = self.params
        return Hasher(p.num_perm, p.seed, p.ngram, p.anchor_bits)

    @property
    def has_anchors(self) -> bool:
        """Whether the index holds anchors (partial matches)."""
        return self.n_table_anchors > 0

    def query(self, sigs: np.ndarray, skip: np.ndarray | None = None) -> QueryResult:
        """Whole-document matches: LSH candidates verified by their estimated Jaccard."""
        n = sigs.shape[0]
        skip = np.zeros(n, np.bool_) if skip is None else skip
        P = self.params.num_perm
        if len(self.segments) > 1:
            return self._query_segments(sigs, skip)
        best_ref, best_equal, n_cand, alt_ref, alt_equal = (np.empty(n, np.int64) for _ in range(5))
        if len(self):
            query_kernel(sigs, skip, self.band_tags, self.band_refs, self.band_dir, self.dir_bits,
                          self.rows, self.signatures, self.label_codes, self.min_equal, self._touch,
                          best_ref, best_equal, n_cand, alt_ref, alt_equal)
        else:
            best_ref[:], best_equal[:], n_cand[:], alt_ref[:], alt_equal[:] = -1, 0, 0, -1, 0
        return QueryResult(best_ref, best_equal / P, n_cand, alt_ref, alt_equal / P)

    def _query_segments(self, sigs, skip) -> QueryResult:
        """:meth:`query` over several segments: each segment's best candidate (whatever its
        slots) and best of another label, merged as one table would rank them (most equal
        slots, then the lowest reference number; the best of another label than the overall
        best's), the threshold applied last."""
        n = sigs.shape[0]
        P = self.params.num_perm
        per = []
        for seg in self.segments:
            if not seg.n:
                continue
            out = [np.empty(n, np.int64) for _ in range(5)]
            query_kernel(sigs, skip, seg.band_tags, seg.band_refs, seg.band_dir, seg.dir_bits, self.rows,
                         seg.signatures, seg.label_codes, 0, seg.touch, *out)
            b, e, nc, a, ae = out
            per.append((np.where(b >= 0, b + seg.offset, -1), e, nc, np.where(a >= 0, a + seg.offset, -1), ae))
        best, best_eq = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        n_cand = np.zeros(n, np.int64)
        for b, e, nc, _, _ in per:  # segments in reference order: a strictly better one wins
            better = (b >= 0) & ((best < 0) | (e > best_eq))
            best, best_eq = np.where(better, b, best), np.where(better, e, best_eq)
            n_cand += nc
        codes = self.label_codes
        best_label = np.where(best >= 0, codes[np.maximum(best, 0)], -1)
        alt, alt_eq = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        for b, e, _, a, ae in per:
            # this segment's best of another label than the overall best's: its best, or its alt
            own = (b >= 0) & (codes[np.maximum(b, 0)] != best_label)
            c, ce = np.where(own, b, a), np.where(own, e, ae)
            better = (c >= 0) & (codes[np.maximum(c, 0)] != best_label) & ((alt < 0) | (ce > alt_eq))
            alt, alt_eq = np.where(better, c, alt), np.where(better, ce, alt_eq)
        best_ref = np.where(best_eq >= self.min_equal, best, -1)
        return QueryResult(best_ref, best_eq / P, n_cand, alt, alt_eq / P)

    def partial(self, anchors, n_docs: int, min_hits: int, miss_penalty: float, more: int = 0) -> PartialResult:
        """Partial matches of a batch's documents from their anchors (``Signatures.anchors``),
        with the ``more`` next-best references of each."""
        doc_ptr = np.searchsorted(anchors.doc, np.arange(n_docs + 1), side="left").astype(np.int64)
        out = [np.empty((n_docs, more) if name.startswith("more") else n_docs,
                        np.float64 if name.endswith("score") else np.bool_ if name.endswith("tight") else np.int64)
               for name in PartialResult.__dataclass_fields__]
        if len(self.segments) == 1:
            tables = (self.anchor_tags, self.anchor_refs, self.anchor_pos, self.anchor_dir, self.anchor_dir_bits,
                      self._touch)
        else:
            tables = self._batch_table(anchors.key)
        anchor_kernel(doc_ptr, anchors.key, anchors.word, *tables[:5], self.label_codes, min_hits,
                      float(miss_penalty), tables[5], *out)
        return PartialResult(*out)

    def _batch_table(self, keys: np.ndarray):
        """The anchor table of one batch over several segments: every segment's entries of
        the batch's keys but those dropped (:attr:`anchor_stop`), as one table (by key, then
        reference) with a 16-bit directory: the table one segment of all the references would
        give for these keys."""
        uk = sorted_unique((np.asarray(keys, np.uint64) >> np.uint64(32)).astype(np.uint32))
        uk = uk[~in_sorted(uk, self.anchor_stop)]
        parts = [seg.lookup(uk) for seg in self.segments if len(seg.anchor_refs)]
        which = np.concatenate([np.zeros(0, np.int64)] + [w for w, _, _ in parts])
        order = np.argsort(which, kind="stable")  # segments in order: by key, then reference
        k = uk[which[order]]
        refs = np.concatenate([np.zeros(0, np.int64)] + [r for _, r, _ in parts])[order].astype(np.int32)
        pos = np.concatenate([np.zeros(0, np.uint16)] + [q for _, _, q in parts])[order]
        directory = key_directory(k, 16, key_bits=32).astype(np.int32)
        return (k & np.uint32(0xFFFF)).astype(np.uint16), refs, pos, directory, 16, False

    def known_human(self, keys: np.ndarray) -> np.ndarray:
        """Which anchors (64-bit keys, ``Anchors.key``) are also in the index's known human text."""
        k = (np.asarray(keys, np.uint64) >> np.uint64(32)).astype(np.uint32)
        return in_sorted(k, self.anchor_human)

    def candidates(self, sig: np.ndarray) -> set[int]:
        """LSH candidates of one signature (reference row numbers), before verification."""
        out = set()
        for seg in self.segments:
            if not seg.n:
                continue
            for b in range(self.bands):
                k = np.uint64(band_key(sig, b, self.rows))
                t = int(k >> np.uint64(64 - seg.dir_bits)) if seg.dir_bits else 0
                lo, hi = seg.band_dir[b, t], seg.band_dir[b, t + 1]
                same_tag = seg.band_refs[b, lo:hi][seg.band_tags[b, lo:hi] == band_tag(k, seg.dir_bits)]
                out.update(int(r) + seg.offset for r in same_tag if band_key(seg.signatures[r], b, self.rows) == k)
        return out

    def anchors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The anchor table as (stored keys uint32, references int64, word positions uint16)
        arrays, in memory, segment after segment (each in key order), without the keys
        dropped (:attr:`anchor_stop`)."""
        blocks = [b for seg in self.segments for b in seg.anchor_blocks()]
        k = np.concatenate([np.zeros(0, np.uint32)] + [b[0] for b in blocks])
        r = np.concatenate([np.zeros(0, np.int64)] + [b[1] for b in blocks])
        w = np.concatenate([np.zeros(0, np.uint16)] + [b[2] for b in blocks])
        if len(self.segments) > 1:
            keep = ~in_sorted(k, self.anchor_stop)
            k, r, w = k[keep], r[keep], w[keep]
        return k, r, w

    def summary(self) -> IndexSummary:
        m = self.manifest
        size = sum(f["bytes"] for f in m["files"].values()) + (self.path / "manifest.json").stat().st_size
        c = m["counts"]
        return IndexSummary(self.shown, c["refs"], c["labels"], m["params"], size, c.get("skipped", {}),
                            c["anchors"], c["common_anchors_dropped"], bool(m.get("stored_text")),
                            c.get("known_human_anchors", 0), len(self.segments))
