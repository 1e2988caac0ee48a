"""The index directory: its files, how its tables are built, and how it is written and opened.

On disk (an open format, no pickle; arrays are ``.npy`` and memory-mapped on open, so
worker processes share one copy through the page cache):

``manifest.json``     format, version, parameters, counts, size and xxh3-128 of every file
``refs.parquet``      ref_id, label, source, n_shingles, n_chars, n_anchors
``texts.arrow``       the reference texts (with ``--store-text``): Arrow IPC, memory-mapped
``signatures.npy``    uint32 [refs, num_perm]
``band_tags.npy``     uint16 [bands, refs], per band the references' band keys sorted, each kept
                      as its tag: the 16 bits after the ``dir_bits`` top bits
``band_refs.npy``     int32  [bands, refs], the reference of each tag
``band_dir.npy``      int32  [bands, 2**dir_bits + 1], where each run of top bits starts
``anchor_tags.npy``   uint16 [pairs], the anchors (sampled shingles) of every reference, sorted by
                      their stored key (the top 32 bits of the 64-bit key), each kept as its low 16 bits
``anchor_refs.npy``   int32  [pairs], the reference of each anchor
``anchor_pos.npy``    uint16 [pairs], the anchor's first word position in its reference, modulo
                      2**16 (chains of shared anchors are followed in both texts)
``anchor_dir.npy``    int32  [2**dir_bits + 1], where each run of the stored keys' top bits
                      starts (dir_bits >= 16: directory and tag hold the whole key)
``anchor_stop.npy``   uint32 [keys], anchor keys dropped as stock phrases (kept for merges)
``anchor_human.npy``  uint32 [keys], sorted: the references' anchor keys also found in text known
                      to be human-written (``--known-human``)

Segments (format version 5). The files above are segment 0 (a version 4 index, which still
opens, is exactly that). ``index add`` writes segment ``k`` beside them, the same files named
``s<k>.signatures.npy``, ``s<k>.refs.parquet``, ... (its references numbered after those of the
segments before), plus ``s<k>.anchor_drop.npy`` (int32: for each anchor of an earlier segment
whose key the new references made common, its reference: their ``n_anchors`` are lowered by
it); nothing already there is rewritten, and the manifest, written atomically last, lists the
segments (``"segments": [{"prefix": "", "refs": n}, {"prefix": "s1.", "refs": m}]``) and their
files. A key dropped as common by any segment is dropped from all of them when queried (the
union of the ``anchor_stop`` lists is what one table of all the references would drop: a new
segment is built with the earlier stop keys and the earlier segments' entries of its keys
counted); queries go over every segment and merge (:class:`ReferenceIndex`) so that results
equal a single-segment index's. ``index compact`` rewrites the segments as one.

Out of core. :class:`IndexWriter` writes these files from references given by parts (what
``build_index``, ``merge_indexes``, ``index add`` and ``index compact`` use) within a memory
budget: the signatures are appended to their file, band keys spilled per band and sorted a
band at a time, anchors partitioned into files by their top key bits and sorted a key range
at a time (:class:`IndexWriter`); :func:`save_index` writes the same bytes from arrays in
memory.

Verified on open: the manifest (its own checksum, format, version, parameters), every file's
size (a truncated array is refused), the arrays' headers (dtype, shapes against the manifest's
counts and parameters), and the xxh3-128 checksums of the files up to 64 MiB (LAZY_ABOVE:
refs, directories, key lists; every file of a small index). The checksums of larger files
(signatures, band and anchor tables: 20 GB at 10M references) are checked by ``open_index(...,
verify="all")``, ``contamscan index info --verify``: reading them all would make opening cost
more than most scans.


How the tables are read (directory, then tags, then references) is told in
:mod:`contamscan.index.kernels`.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import IndexParams
from ..errors import ContamscanError, IndexFormatError
from ..io import artifact
from ..model import read_parquet
from ..sketch.lsh import band_keys, optimal_bands
from ..sketch.text import NORMALIZATION, UNICODE_VERSION
from ..version import __version__
from .kernels import band_tag
from .reference import ReferenceIndex, in_sorted, key_directory, sorted_unique

if TYPE_CHECKING:
    import polars as pl

FORMAT = "contamscan-index"
FORMAT_VERSION = 5  # 5: segments (`index add` writes one); a version 4 index is one segment
LAZY_ABOVE = 64 << 20  # files larger than this are checksummed by `index info --verify`, not on open
KIND = artifact.Kind(FORMAT, FORMAT_VERSION, "version", "indexes", "a contamscan index", IndexFormatError,
                     "build one with `contamscan index build`", "index", reads=(4,), lazy_above=LAZY_ABOVE)
ARRAYS = ("signatures", "band_tags", "band_refs", "band_dir", "anchor_tags", "anchor_refs", "anchor_pos",
          "anchor_dir", "anchor_stop", "anchor_human")
LOW32 = np.uint64(0xFFFFFFFF)
TEXTS_SCHEMA = pa.schema([("text", pa.large_string())])


def _dir_bits(n: int, per_bucket: int) -> int:
    """Directory bits for ``n`` keys, ~``per_bucket`` keys per bucket."""
    return max(0, math.ceil(math.log2(n / per_bucket))) if n > per_bucket else 0


def build_band_tables(sigs: np.ndarray, bands: int, rows: int):
    """The band tables of signatures (module doc): tags, references and directory."""
    n = sigs.shape[0]
    keys = band_keys(sigs, bands, rows).T.copy() if n else np.zeros((bands, 0), np.uint64)
    order = np.argsort(keys, axis=1, kind="stable")
    keys = np.take_along_axis(keys, order, axis=1)
    bits = _dir_bits(n, 8)  # 8 tags (16 bytes) per bucket
    directory = np.stack([key_directory(keys[b], bits) for b in range(bands)]).astype(np.int32)
    return band_tag(keys, bits).astype(np.uint16), order.astype(np.int32), directory


def anchor_keys32(keys: np.ndarray) -> np.ndarray:
    """The stored form of anchor keys: their top 32 bits. The directory over a table's top
    bits is then a function of the stored keys alone, so tables merge and re-bucket freely;
    a false hit (probability ~ anchors / 2**32 per lookup) is one stray anchor, far from the
    dense run a match needs."""
    return (np.asarray(keys, np.uint64) >> np.uint64(32)).astype(np.uint32)


def build_anchor_table(keys: np.ndarray, refs: np.ndarray, words: np.ndarray, max_refs: int,
                       stop: np.ndarray | None = None, ref_labels: np.ndarray | None = None):
    """The anchor table from anchors (``keys`` uint32 from :func:`anchor_keys32`, with their
    references and word positions in them): the distinct (key, reference) pairs sorted by key,
    each at the key's first position in the reference, without the keys shared by more than
    ``max_refs`` references, found in the references of more than one label (``ref_labels``:
    text several models wrote, a prompt they all quote or a stock phrase, is evidence of none
    of them) or listed in ``stop`` (they say little about the source and cost lookups), as
    tags, references, positions and directory (module doc). Returns (tags, refs, positions,
    directory, stop keys) where the stop keys are all those dropped. In memory: the
    :class:`IndexWriter` builds the same table by parts."""
    k, r, w = dedupe_anchors(keys, refs, words)
    k, r, w, common, _ = drop_common(k, r, w, max_refs, sorted_unique(np.asarray(
        stop if stop is not None else np.zeros(0, np.uint32), np.uint32)), ref_labels)
    stop = np.union1d(common, stop if stop is not None else np.zeros(0, np.uint32)).astype(np.uint32)
    directory = key_directory(k, anchor_dir_bits(len(k)), key_bits=32)
    directory = directory.astype(np.int32) if len(k) < 2**31 else directory
    return (k & np.uint32(0xFFFF)).astype(np.uint16), r, w, directory, stop


def dedupe_anchors(keys, refs, words):
    """The distinct (key, reference) pairs of anchors, sorted by key then reference, each at
    its lowest word position: (keys uint32, refs int32, words)."""
    # key above reference: a sort orders by key then reference, equal pairs become neighbours
    pairs = (np.asarray(keys, np.uint64) << np.uint64(32)) | np.asarray(refs, np.int64).astype(np.uint64)
    order = np.argsort(pairs)
    pairs, words = pairs[order], np.asarray(words)[order]
    del order
    if len(pairs):
        starts = np.flatnonzero(np.append(True, pairs[1:] != pairs[:-1]))
        if len(starts) < len(pairs):
            words = np.minimum.reduceat(words, starts)
            pairs = pairs[starts]
    return (pairs >> np.uint64(32)).astype(np.uint32), (pairs & LOW32).astype(np.int32), words


def drop_common(k, r, w, max_refs: int, stop: np.ndarray, ref_labels=None, outside=None):
    """The pairs of :func:`dedupe_anchors` (sorted by key) without the keys of ``stop``
    (sorted) and those now found common: shared by more than ``max_refs`` references or by
    references of two labels (``ref_labels``, codes per reference), counting with the
    references of ``outside`` (the segments already in an index, ``index add``: a function of
    the distinct keys giving (which key, the reference's label code) per entry it holds).
    Returns (keys, refs, words uint16, common keys found, which of the ``outside`` entries
    hold them)."""
    new_key = np.ones(len(k), np.bool_)
    new_key[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(new_key)
    uk = k[starts]
    own = count = np.diff(np.append(starts, len(k)))
    given = in_sorted(uk, stop)
    lab_lo = lab_hi = None
    if ref_labels is not None and len(k):
        lab = np.asarray(ref_labels)[r]
        lab_lo, lab_hi = np.minimum.reduceat(lab, starts), np.maximum.reduceat(lab, starts)
    out_entries = np.zeros(0, np.int64)
    if outside is not None and len(uk):
        which, labels = outside(uk)
        count = count + np.bincount(which, minlength=len(uk))
        if lab_lo is not None and len(which):
            lo, hi = np.full(len(uk), np.iinfo(np.int64).max), np.full(len(uk), -1)
            np.minimum.at(lo, which, labels)
            np.maximum.at(hi, which, labels)
            lab_lo, lab_hi = np.minimum(lab_lo, lo), np.maximum(lab_hi, hi)
    common = count > max_refs
    if lab_lo is not None:  # keys in the outputs of several models: shared text, not one model's
        common |= lab_lo != lab_hi
    common &= ~given
    if outside is not None and len(uk):
        out_entries = np.flatnonzero(common[which])
    keep = np.repeat(~(common | given), own)
    return k[keep], r[keep], (np.asarray(w)[keep] & 0xFFFF).astype(np.uint16), uk[common], out_entries


def anchor_dir_bits(n: int) -> int:
    """~16 tags (32 bytes) per bucket, and at least 16 bits, so that the directory's top bits
    and the tag's low 16 bits make the whole 32-bit key."""
    return max(16, _dir_bits(n, 16))


def params_dict(params: IndexParams) -> dict:
    bands, rows = optimal_bands(params.threshold, params.num_perm)
    return {
        "normalization": NORMALIZATION,
        "unicode_version": UNICODE_VERSION,
        "ngram": params.ngram,
        "shingle_hash": "xxh32-seed0",
        "scheme": "affine32",
        "num_perm": params.num_perm,
        "seed": params.seed,
        "threshold": params.threshold,
        "bands": bands,
        "rows": rows,
        "anchor_bits": params.anchor_bits,
        "anchor_key": "splitmix64(fmix32(xxh32-seed0) << 32 | xxh32-seed0x9E3779B1) >> 32",
        "max_anchor_refs": params.max_anchor_refs,
        "anchor_drop": "shared by more than max_anchor_refs references or by references of two labels",
    }


REFS_SCHEMA = pa.schema([("ref_id", pa.large_string()), ("label", pa.large_string()), ("source", pa.large_string()),
                         ("n_shingles", pa.int64()), ("n_chars", pa.int64())])
NPY_HEADER = 128  # bytes of an .npy header as numpy writes it for the shapes of an index
REC = np.dtype([("k", "<u4"), ("r", "<i4"), ("w", "<u4")])  # an anchor spilled to disk
SPILL_BITS = 8  # anchors are partitioned by 8 key bits at a time (256 files)
MEMORY = 2 << 30  # default memory budget of a build's sorts and buffers (bytes)


def npy_header(dtype, shape) -> bytes:
    """The header numpy writes for an array of ``dtype`` and ``shape`` (so that a file
    written by parts is byte for byte :func:`numpy.save`'s), padded to NPY_HEADER bytes."""
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buf, d)
    h = buf.getvalue()
    if len(h) != NPY_HEADER:  # never for an index's shapes; still a valid header
        body = repr(d).encode("latin1")
        body += b" " * (NPY_HEADER - 10 - len(body) - 1) + b"\n"
        h = b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body
    return h


class NpyOut:
    """An .npy file written by appending parts, its shape told at the end (the header is
    rewritten then). Plain writes, not a memory map: pages of a mapped file count in the
    writer's RSS until the kernel writes them back."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype = Path(path), np.dtype(dtype)
        self.f = open(self.path, "wb")
        self.f.write(b"\0" * NPY_HEADER)
        self.count = 0

    def write(self, arr) -> None:
        arr = np.ascontiguousarray(arr, self.dtype)
        self.f.write(memoryview(arr.reshape(-1)).cast("B"))
        self.count += arr.size

    def close(self, shape) -> None:
        assert math.prod(shape) == self.count, (self.path, shape, self.count)
        self.f.seek(0)
        self.f.write(npy_header(self.dtype, shape))
        self.f.close()


def read_rows(arr: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a memory-mapped array as a private copy read with ``pread``
    (pages of a mapping read once stay in the reader's RSS)."""
    if not isinstance(arr, np.memmap) or arr.filename is None:
        return np.array(arr[start:stop])
    row = arr.dtype.itemsize * (math.prod(arr.shape[1:]) if arr.ndim > 1 else 1)
    with open(arr.filename, "rb") as f:
        out = np.fromfile(f, arr.dtype, (stop - start) * row // arr.dtype.itemsize, offset=arr.offset + start * row)
    return out.reshape((stop - start, *arr.shape[1:]))


class IndexWriter:
    """Writes the files of an index (or of one segment of it, ``prefix``) from references
    given by parts, out of core: memory holds the buffers and one sort unit at a time (within
    ``memory`` bytes, plus ~24 bytes per reference for the band being sorted and the
    per-reference counts), whatever the number of references and anchors.

    * signatures are appended to their file as they come;
    * band keys go to one temporary file per band; each band is then sorted alone;
    * anchors stay in memory while they fit the budget (then they are sorted as one unit);
      beyond it they go to 256 temporary files by their top 8 key bits (a file larger than the
      budget is partitioned again by the next 8 bits); each file is then a key range, sorted,
      made distinct and cleared of common keys in memory and appended to the final tables
      in key order; the directory is counted as they go.

    The files are those of :func:`save_index`, byte for byte (refs.parquet is the same table).
    ``stop``: keys to drop (a merge's); ``outside``: the segments already in the index the
    writer adds a segment to (``index add``), as in :func:`drop_common`; ``labels``: their
    label names, so that label codes are shared.
    """

    def __init__(self, workdir: Path, params: IndexParams, *, prefix: str = "", memory: int = MEMORY,
                 stop: np.ndarray | None = None, outside=None, labels=(), store_text: bool = False):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".spill-", dir=self.dir))
        self.params, self.p, self.prefix, self.memory = params, params_dict(params), prefix, max(int(memory), 1 << 12)
        self.stop = sorted_unique(np.asarray(stop if stop is not None else [], np.uint32))
        self.outside = outside
        self.store_text = store_text
        self.n = self.n_pairs = 0
        self.sigs = NpyOut(self.dir / f"{prefix}signatures.npy", np.uint32)
        self.band_files = [open(self.tmp / f"band{b}", "wb") for b in range(self.p["bands"])]
        self.bucket_files = None  # opened by the first spill: a build that fits in memory never spills
        self.pending, self.pending_n = [], 0
        self.label_index = {name: i for i, name in enumerate(labels)}
        self.codes, self.label_counts = [], Counter()
        self.meta = pq.ParquetWriter(self.tmp / "refs.parquet", REFS_SCHEMA)
        self.texts = None
        if store_text:
            self._texts_file = pa.OSFile(str(self.dir / f"{prefix}texts.arrow"), "wb")
            self.texts = pa.ipc.new_file(self._texts_file, TEXTS_SCHEMA)

    def add_refs(self, table: pa.Table, sigs: np.ndarray) -> None:
        """References (ref_id, label, source, n_shingles, n_chars, and text when stored) and
        their signatures, numbered from the count so far."""
        if not len(sigs):
            return
        sigs = np.ascontiguousarray(sigs, np.uint32)
        self.meta.write_table(table.select(REFS_SCHEMA.names).cast(REFS_SCHEMA))
        if self.texts is not None:
            self.texts.write_table(pa.table({"text": table.column("text").cast(pa.large_string())},
                                            schema=TEXTS_SCHEMA))
        enc = pc.dictionary_encode(table.column("label").combine_chunks())
        names = enc.dictionary.to_pylist()
        for name in names:
            self.label_index.setdefault(name, len(self.label_index))
        lut = np.array([self.label_index[name] for name in names], np.int32)
        idx = enc.indices.to_numpy(zero_copy_only=False)
        self.codes.append(lut[idx])
        self.label_counts.update(dict(zip(names, np.bincount(idx, minlength=len(names)).tolist())))
        self.sigs.write(sigs)
        keys = band_keys(sigs, self.p["bands"], self.p["rows"])
        for b, f in enumerate(self.band_files):
            f.write(memoryview(np.ascontiguousarray(keys[:, b])).cast("B"))
        self.n += len(sigs)

    def add_anchors(self, keys: np.ndarray, refs: np.ndarray, words: np.ndarray) -> None:
        """Anchors: stored keys (:func:`anchor_keys32`), their references (numbered in the
        index: from 0 for the first reference given) and word positions."""
        if not len(keys):
            return
        rec = np.empty(len(keys), REC)
        rec["k"], rec["r"], rec["w"] = keys, refs, words
        self.pending.append(rec)
        self.pending_n += len(rec)
        self.n_pairs += len(rec)
        if self.pending_n * REC.itemsize * 4 > self.memory:
            self._spill()

    def _spill(self) -> None:
        if not self.pending:
            return
        if self.bucket_files is None:
            self.bucket_files = [open(path, "wb") for path in self._bucket_paths()]
        rec = np.concatenate(self.pending)
        self.pending, self.pending_n = [], 0
        _partition(rec, 32 - SPILL_BITS, self.bucket_files)

    def _bucket_paths(self) -> list[Path]:
        return [self.tmp / f"a{i:03d}" for i in range(1 << SPILL_BITS)]

    def _anchor_units(self):
        """The anchors a sort unit at a time, in key order: all of them as one unit when
        nothing was spilled (:meth:`_finish` spills what does not fit the budget as a unit),
        else the spilled key ranges."""
        if self.bucket_files is None:
            if self.pending:
                unit = np.concatenate(self.pending)
                self.pending, self.pending_n = [], 0
                yield unit
            return
        yield from self._units(self._bucket_paths(), 32 - SPILL_BITS)

    def finish(self, skipped: dict | None = None, human_keys: np.ndarray | None = None, check_ids=None):
        """Sort and write the tables, then refs.parquet. ``check_ids``: called with the
        references' ids (an Arrow array) before anything else is written (``index add``
        checks them against the index's). Returns (file names, counts, stop keys, the
        references of ``outside`` entries whose keys became common, one per entry)."""
        try:
            return self._finish(skipped, human_keys, check_ids)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _finish(self, skipped, human_keys, check_ids):
        p, n, prefix = self.p, self.n, self.prefix
        # anchors that fit the budget as a sort unit stay in memory, unless some were spilled
        # already (a small build: partitioning them into 256 files and reading those back cost
        # it a third of its time)
        if self.bucket_files is not None or self.pending_n * REC.itemsize * 6 > self.memory:
            self._spill()
        for f in self.band_files + (self.bucket_files or []):
            f.close()
        self.meta.close()
        if self.texts is not None:
            self.texts.close()
            self._texts_file.close()
        ids = pq.read_table(self.tmp / "refs.parquet", columns=["ref_id"]).column("ref_id")
        counts = pc.value_counts(ids) if n else None
        dup = counts.filter(pc.greater(counts.field("counts"), 1)).field("values") if n else []
        if len(dup):
            ex = sorted(dup.to_pylist())[:3]
            raise ContamscanError(f"reference ids are not unique (e.g. {ex}); give `id_field` a field of unique ids")
        if check_ids is not None:
            check_ids(ids)
        del ids, dup, counts
        self.sigs.close((n, p["num_perm"]))
        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, np.int32)
        # band tables, a band at a time
        bits = _dir_bits(n, 8)
        tags_out = NpyOut(self.dir / f"{prefix}band_tags.npy", np.uint16)
        refs_out = NpyOut(self.dir / f"{prefix}band_refs.npy", np.int32)
        directory = np.empty((p["bands"], (1 << bits) + 1), np.int32)
        for b in range(p["bands"]):
            keys = np.fromfile(self.tmp / f"band{b}", np.uint64)
            (self.tmp / f"band{b}").unlink()
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            directory[b] = key_directory(keys, bits)
            tags_out.write(band_tag(keys, bits).astype(np.uint16))
            refs_out.write(order.astype(np.int32))
            del keys, order
        tags_out.close((p["bands"], n))
        refs_out.close((p["bands"], n))
        np.save(self.dir / f"{prefix}band_dir.npy", directory)
        del directory
        # anchors, a key range at a time, in key order
        bmax = anchor_dir_bits(self.n_pairs)
        hist = np.zeros(1 << bmax, np.int64 if bmax <= 24 else np.int32)
        n_anchors = np.zeros(n, np.int64)
        human = sorted_unique(np.asarray(human_keys if human_keys is not None else [], np.uint32))
        out = [NpyOut(self.dir / f"{prefix}{a}.npy", dt) for a, dt in
               (("anchor_tags", np.uint16), ("anchor_refs", np.int32), ("anchor_pos", np.uint16))]
        found_stop, found_human, outside_dropped = [], [], []
        for unit in self._anchor_units():
            k, r, w = dedupe_anchors(unit["k"], unit["r"], unit["w"])
            del unit
            lo, hi = np.searchsorted(human, k[0]), np.searchsorted(human, k[-1], side="right")
            raw_human = human[lo:hi][in_sorted(human[lo:hi], sorted_unique(k))] if hi > lo else human[:0]
            k, r, w, common, out_entries = drop_common(k, r, w, self.params.max_anchor_refs, self.stop, codes,
                                                       self.outside)
            found_stop.append(common)
            if len(out_entries):
                outside_dropped.append(self.outside.refs_of(out_entries))
            found_human.append(raw_human[~in_sorted(raw_human, common) & ~in_sorted(raw_human, self.stop)])
            if len(k):
                bins = (k >> np.uint32(32 - bmax)).astype(np.int64)
                counts = np.bincount(bins - bins[0])
                hist[bins[0]:bins[0] + len(counts)] += counts.astype(hist.dtype)
                n_anchors += np.bincount(r, minlength=n)
                out[0].write((k & np.uint32(0xFFFF)).astype(np.uint16))
                out[1].write(r)
                out[2].write(w)
        kept = out[0].count
        for o in out:
            o.close((kept,))
        a_bits = anchor_dir_bits(kept)
        per_bin = hist.reshape(1 << a_bits, -1).sum(axis=1, dtype=np.int64)
        a_dir = np.concatenate([[0], np.cumsum(per_bin)])
        np.save(self.dir / f"{prefix}anchor_dir.npy", a_dir.astype(np.int32) if kept < 2**31 else a_dir)
        a_stop = np.union1d(np.concatenate([self.stop, *found_stop]), np.zeros(0, np.uint32)).astype(np.uint32)
        np.save(self.dir / f"{prefix}anchor_stop.npy", a_stop)
        a_human = np.concatenate([np.zeros(0, np.uint32), *found_human]).astype(np.uint32)
        np.save(self.dir / f"{prefix}anchor_human.npy", a_human)
        # refs.parquet last: with each reference's anchors
        meta = pq.ParquetFile(self.tmp / "refs.parquet")
        schema = REFS_SCHEMA.append(pa.field("n_anchors", pa.int64()))
        with pq.ParquetWriter(self.dir / f"{prefix}refs.parquet", schema, compression="zstd") as w:
            at = 0
            for batch in meta.iter_batches(batch_size=1 << 20):
                w.write_batch(pa.RecordBatch.from_arrays(
                    [*batch.columns, pa.array(n_anchors[at:at + batch.num_rows])], schema=schema))
                at += batch.num_rows
            if at == 0:
                w.write_table(schema.empty_table())
        names = [f"{prefix}{a}" for a in ("refs.parquet", *(f"{x}.npy" for x in ARRAYS))]
        if self.store_text:
            names.append(f"{prefix}texts.arrow")
        counts = {"refs": n, "labels": dict(sorted(self.label_counts.items())), "anchors": int(kept),
                  "common_anchors_dropped": int(len(a_stop)), "known_human_anchors": int(len(a_human)),
                  "skipped": dict(skipped or {})}
        dropped = np.concatenate([np.zeros(0, np.int64), *outside_dropped])
        return names, counts, a_stop, dropped

    def _units(self, files, shift):
        """The anchors of ``files`` (partitions of the key range, in order) a sort unit at a
        time: a file too large for the memory budget is partitioned again by the next bits."""
        for path in files:
            size = path.stat().st_size
            if not size:
                path.unlink()
                continue
            if size * 6 <= self.memory or shift == 0:  # ~60 bytes per anchor while it is sorted
                unit = np.fromfile(path, REC)
                path.unlink()
                yield unit
                continue
            sub_shift = max(shift - SPILL_BITS, 0)
            subs = [path.with_name(f"{path.name}.{i:03d}") for i in range(1 << (shift - sub_shift))]
            handles = [open(s, "wb") for s in subs]
            step = max(self.memory // (4 * REC.itemsize), 1 << 10)
            with open(path, "rb") as f:
                while len(part := np.fromfile(f, REC, step)):
                    _partition(part, sub_shift, handles, mask=(1 << (shift - sub_shift)) - 1)
            for h in handles:
                h.close()
            path.unlink()
            yield from self._units(subs, sub_shift)


def _partition(rec: np.ndarray, shift: int, files, mask: int = (1 << SPILL_BITS) - 1) -> None:
    """Append each anchor of ``rec`` to ``files[(key >> shift) & mask]``."""
    part = ((rec["k"] >> np.uint32(shift)) & np.uint32(mask)).astype(np.uint16)
    order = np.argsort(part, kind="stable")
    rec, part = rec[order], part[order]
    bounds = np.searchsorted(part, np.arange(len(files) + 1))
    for i, f in enumerate(files):
        if bounds[i + 1] > bounds[i]:
            f.write(memoryview(rec[bounds[i]:bounds[i + 1]]).cast("B"))


def index_manifest(params: IndexParams, counts: dict, stored_text: bool, segments: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tool": {"name": "contamscan", "version": __version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": params_dict(params),
        "counts": counts,
        "stored_text": stored_text,
        "segments": segments,
    }


def write_index(path: Path, writer: IndexWriter, skipped: dict | None = None, human_keys=None) -> None:
    """Finish ``writer`` (whose work directory is ``path``, a fresh single-segment index),
    write the manifest, and remove the files of an index built there before that it does not
    list."""
    path = Path(path)
    names, counts, _, _ = writer.finish(skipped, human_keys)
    artifact.write_manifest(path, index_manifest(writer.params, counts, writer.store_text,
                                                 [{"prefix": "", "refs": counts["refs"]}]), names)
    remove_unlisted(path, names)


def remove_unlisted(path: Path, names) -> None:
    """Remove the arrays, tables and texts of ``path`` that ``names`` does not list (those
    of an index built there before, or of an interrupted ``index add``)."""
    listed = set(names)
    for f in Path(path).iterdir():
        if f.is_file() and f.name not in listed and f.suffix in (".npy", ".parquet", ".arrow"):
            f.unlink()


def save_index(path: Path, params: IndexParams, refs: pl.DataFrame, sigs: np.ndarray,
               anchor_keys: np.ndarray | None = None, anchor_refs: np.ndarray | None = None,
               anchor_words: np.ndarray | None = None, skipped: dict[str, int] | None = None,
               anchor_stop: np.ndarray | None = None, human_keys: np.ndarray | None = None) -> None:
    """Write the files of an index into the local directory ``path`` (from
    :func:`contamscan.io.artifact.building`) from the references' table, signatures and
    anchors (keys in their stored form, :func:`anchor_keys32`, with their references and word
    positions in them; none:
    whole-document matches only; keys in ``anchor_stop`` are dropped; ``human_keys``: anchor
    keys of text known to be human-written, of which those of the references are kept), the
    manifest last. Everything in memory (the reference of :class:`IndexWriter`, which builds
    the same files by parts)."""
    path = Path(path)
    dup = refs["ref_id"].is_duplicated()
    if dup.any():
        ex = refs.filter(dup)["ref_id"].unique().sort().head(3).to_list()
        raise ContamscanError(f"reference ids are not unique (e.g. {ex}); give `id_field` a field of unique ids")
    if anchor_keys is None:
        anchor_keys, anchor_refs, anchor_words = np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").unlink(missing_ok=True)  # no manifest, no index: until this one is complete
    p = params_dict(params)
    tags, order, directory = build_band_tables(sigs, p["bands"], p["rows"])
    codes = np.unique(refs["label"].to_numpy().astype(str), return_inverse=True)[1]
    a_tags, a_refs, a_pos, a_dir, a_stop = build_anchor_table(anchor_keys, anchor_refs, anchor_words,
                                                              params.max_anchor_refs, anchor_stop, codes)
    a_human = np.zeros(0, np.uint32)
    if human_keys is not None and len(human_keys):  # the known human keys that are the references' too
        a_human = sorted_unique(np.asarray(human_keys, np.uint32))
        # kept in the table: a dropped key matches nothing (and merges, which see only the
        # table, then keep the same keys as a single build)
        a_human = a_human[np.isin(a_human, np.asarray(anchor_keys, np.uint32)) & ~np.isin(a_human, a_stop)]
    import polars as pl  # noqa: PLC0415 (the in-memory writer; a scan needs no polars)

    refs = refs.with_columns(pl.Series("n_anchors", np.bincount(a_refs, minlength=len(refs)), pl.Int64))
    names = ["refs.parquet", *(f"{a}.npy" for a in ARRAYS)]
    stored_text = "text" in refs.columns
    if stored_text:  # uncompressed Arrow, so that a scan reads any one text without loading the rest
        with pa.OSFile(str(path / "texts.arrow"), "wb") as f, pa.ipc.new_file(f, TEXTS_SCHEMA) as w:
            w.write_table(pa.table({"text": refs["text"].to_arrow().cast(pa.large_string())}, schema=TEXTS_SCHEMA))
        names.append("texts.arrow")
        refs = refs.drop("text")
    pq.write_table(refs.to_arrow(), path / "refs.parquet", compression="zstd")
    for name, arr in zip(ARRAYS, (sigs, tags, order, directory, a_tags, a_refs, a_pos, a_dir, a_stop, a_human)):
        np.save(path / f"{name}.npy", np.ascontiguousarray(arr))
    labels = refs.group_by("label").len().sort("label")
    counts = {"refs": int(sigs.shape[0]), "labels": dict(zip(labels["label"].to_list(), labels["len"].to_list())),
              "anchors": int(len(a_refs)), "common_anchors_dropped": int(len(a_stop)),
              "known_human_anchors": int(len(a_human)), "skipped": dict(skipped or {})}
    artifact.write_manifest(path, index_manifest(params, counts, stored_text, [{"prefix": "", "refs": counts["refs"]}]),
                            names)
    remove_unlisted(path, names)


def segments_of(manifest: dict) -> list[dict]:
    """The segments of an index's manifest (a version 4 index is one, its files unprefixed)."""
    return manifest.get("segments") or [{"prefix": "", "refs": manifest.get("counts", {}).get("refs", 0)}]


def open_index(path, verify: bool | str = True) -> ReferenceIndex:
    """Open an index directory (a local path or a URI), checking its format, every file's
    size and the headers of its arrays, and (by default) the checksums of its files up to
    64 MiB: the manifest, directories, key lists, and all of a small index. A remote index is
    opened from its local copy in the cache.

    Args:
        path: the index directory.
        verify: True: checksums of the files up to 64 MiB; "all": of every file (what
            ``contamscan index info --verify`` does; minutes for a 10M-reference index);
            False: none (sizes and headers are always checked).

    Returns:
        The :class:`ReferenceIndex`, its arrays memory-mapped.

    Raises:
        IndexFormatError: not an index, a damaged one, or one this contamscan cannot use.

    Example:
        >>> index = open_index("refs.index")  # doctest: +SKIP
        >>> len(index), index.params.threshold  # doctest: +SKIP
        (2993, 0.5)
    """
    opened = artifact.open_dir(path, KIND, verify)
    manifest, local = opened.manifest, opened.local
    current = params_dict(IndexParams())
    for key in ("normalization", "shingle_hash", "scheme", "anchor_key"):
        if manifest["params"].get(key) != current[key]:
            raise IndexFormatError(f"{opened.location.shown}: the index was built with {key} "
                                   f"{manifest['params'].get(key)!r}, and this contamscan uses {current[key]!r}: "
                                   "their hashes would not match; rebuild the index")
    shown = opened.location.shown
    segments, frames, texts = [], [], []
    segs = segments_of(manifest)
    if not isinstance(segs, list) or not all(isinstance(s, dict) and isinstance(s.get("prefix"), str) for s in segs):
        raise IndexFormatError(f"{shown}/manifest.json: unreadable segment list; rebuild the index")
    for seg in segs:
        pre = seg["prefix"]
        frames.append(read_parquet(opened.file(f"{pre}refs.parquet")))
        arrays = {}
        for a in ARRAYS + (("anchor_drop",) if f"{pre}anchor_drop.npy" in manifest["files"] else ()):
            try:
                arrays[a] = np.load(opened.file(f"{pre}{a}.npy"), mmap_mode="r", allow_pickle=False)
            except ValueError as e:  # an object array (pickles), or not an array file
                raise IndexFormatError(f"{shown}: {pre}{a}.npy is not an array of numbers ({e}); rebuild the "
                                       "index") from None
        t = None
        if manifest.get("stored_text"):
            t = pa.ipc.open_file(pa.memory_map(str(opened.file(f"{pre}texts.arrow")))).read_all().column("text")
            texts.append(t)
        _check_shapes(shown, manifest, len(frames[-1]), arrays, t, seg.get("refs", len(frames[-1])), pre)
        segments.append(arrays)
    total = sum(len(f) for f in frames)
    if manifest.get("counts", {}).get("refs", total) != total:
        raise IndexFormatError(f"{shown}: the index does not match its manifest ({total} references, manifest "
                               f"counts {manifest['counts'].get('refs')}); rebuild the index")
    refs = frames[0] if len(frames) == 1 else pa.concat_tables(frames, promote_options="default")
    text = None
    if texts:
        text = texts[0] if len(texts) == 1 else pa.chunked_array([c for t in texts for c in t.chunks], pa.large_string())
    return ReferenceIndex(local, manifest, refs, segments, text, location=opened.location)


def _check_shapes(shown: str, manifest: dict, refs: int, arrays: dict, texts, seg_refs: int, prefix: str = "") -> None:
    """The parameters and counts of the manifest against the arrays: a mismatch is a damaged
    or hand-edited index, never something to index out of bounds on."""
    p, sigs = manifest["params"], arrays["signatures"]
    problems = []
    if sigs.ndim != 2 or sigs.shape[1] != p.get("num_perm"):
        problems.append(f"signatures have shape {sigs.shape}, num_perm is {p.get('num_perm')}")
    elif p.get("bands", 0) * p.get("rows", 0) > sigs.shape[1]:
        problems.append(f"bands {p.get('bands')} x rows {p.get('rows')} exceed num_perm {sigs.shape[1]}")
    if len(sigs) != refs or seg_refs != refs:
        problems.append(f"{refs} references, {len(sigs)} signatures, manifest counts {seg_refs}")
    for a in ("band_tags", "band_refs"):
        arr = arrays[a]
        if arr.ndim != 2 or arr.shape[0] != p.get("bands") or arr.shape[1] != refs:
            problems.append(f"{a} has shape {arr.shape}, expected ({p.get('bands')}, {refs})")
    d = arrays["band_dir"]
    if d.ndim != 2 or d.shape[0] != p.get("bands") or d.shape[1] < 2 or (d.shape[1] - 1) & (d.shape[1] - 2):
        problems.append(f"band_dir has shape {d.shape}")
    if not len(arrays["anchor_tags"]) == len(arrays["anchor_refs"]) == len(arrays["anchor_pos"]):
        problems.append("anchor_tags, anchor_refs and anchor_pos differ in length")
    d = arrays["anchor_dir"]
    if d.ndim != 1 or len(d) < 2 or (len(d) - 1) & (len(d) - 2):
        problems.append(f"anchor_dir has shape {d.shape}")
    if texts is not None and len(texts) != refs:
        problems.append(f"{len(texts)} stored texts for {refs} references")
    if problems:
        raise IndexFormatError(f"{shown}: the index does not match its manifest ({prefix or 'segment 0'}: "
                               f"{'; '.join(problems)}); rebuild the index")
