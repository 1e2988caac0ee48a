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

How the tables are read (directory, then tags, then references) is told in
:mod:`contamscan.index.kernels`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import IndexParams
from ..errors import ContamscanError, IndexFormatError
from ..io import artifact
from ..sketch.lsh import band_keys, optimal_bands
from ..sketch.text import NORMALIZATION, UNICODE_VERSION
from ..version import __version__
from .kernels import band_tag
from .reference import ReferenceIndex

FORMAT = "contamscan-index"
FORMAT_VERSION = 4
KIND = artifact.Kind(FORMAT, FORMAT_VERSION, "version", "indexes", "a contamscan index", IndexFormatError,
                     "build one with `contamscan index build`", "index")
ARRAYS = ("signatures", "band_tags", "band_refs", "band_dir", "anchor_tags", "anchor_refs", "anchor_pos",
          "anchor_dir", "anchor_stop", "anchor_human")
LOW32 = np.uint64(0xFFFFFFFF)
TEXTS_SCHEMA = pa.schema([("text", pa.large_string())])


def _dir_bits(n: int, per_bucket: int) -> int:
    """Directory bits for ``n`` keys, ~``per_bucket`` keys per bucket."""
    return max(0, math.ceil(math.log2(n / per_bucket))) if n > per_bucket else 0


def key_directory(sorted_keys: np.ndarray, bits: int, key_bits: int = 64) -> np.ndarray:
    """Where each run of ``bits`` top bits starts in ``sorted_keys`` (of ``key_bits`` bits),
    plus the end."""
    dtype = np.uint64 if key_bits == 64 else np.uint32
    starts = (np.arange(1 << bits, dtype=np.uint64) << np.uint64(key_bits - bits)).astype(dtype) if bits \
        else np.zeros(1, dtype)
    return np.append(np.searchsorted(sorted_keys, starts, side="left"), len(sorted_keys)).astype(np.int64)


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
    directory, stop keys) where the stop keys are all those dropped."""
    # key above reference: a sort orders by key then reference, equal pairs become neighbours,
    # the first of them at the lowest position
    pairs = (np.asarray(keys, np.uint64) << np.uint64(32)) | np.asarray(refs, np.uint64)
    order = np.lexsort((np.asarray(words), pairs))
    pairs, words = pairs[order], np.asarray(words)[order]
    del order
    if len(pairs):
        first = np.append(True, pairs[1:] != pairs[:-1])
        pairs, words = pairs[first], words[first]
    k = (pairs >> np.uint64(32)).astype(np.uint32)
    r = (pairs & LOW32).astype(np.int32)
    del pairs
    new_key = np.ones(len(k), np.bool_)
    new_key[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(new_key)
    count = np.diff(np.append(starts, len(k)))
    common = count > max_refs
    if ref_labels is not None and len(k):  # keys in the outputs of several models: shared text, not one model's
        lab = np.asarray(ref_labels)[r]
        common |= np.minimum.reduceat(lab, starts) != np.maximum.reduceat(lab, starts)
    stop = np.union1d(k[starts[common]], stop if stop is not None else np.zeros(0, np.uint32)).astype(np.uint32)
    keep = ~np.isin(k, stop)
    k, r, w = k[keep], r[keep], (words[keep] & 0xFFFF).astype(np.uint16)
    directory = key_directory(k, anchor_dir_bits(len(k)), key_bits=32)
    directory = directory.astype(np.int32) if len(k) < 2**31 else directory
    return (k & np.uint32(0xFFFF)).astype(np.uint16), r, w, directory, stop


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, sorted (a sort and a compare: numpy's hash-based
    ``unique`` is several times slower on large integer arrays)."""
    a = np.sort(a)
    return a[np.append(True, a[1:] != a[:-1])] if len(a) else a


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
    manifest last."""
    path = Path(path)
    dup = refs["ref_id"].is_duplicated()
    if dup.any():
        ex = refs.filter(dup)["ref_id"].unique().sort().head(3).to_list()
        raise ContamscanError(f"reference ids are not unique (e.g. {ex}); give `id_field` a field of unique ids")
    if anchor_keys is None:
        anchor_keys, anchor_refs, anchor_words = np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").unlink(missing_ok=True)  # no manifest, no index: until this one is complete
    for old in path.glob("*.npy"):  # arrays of an index of another format, built here before
        if old.stem not in ARRAYS:
            old.unlink()
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
    refs = refs.with_columns(pl.Series("n_anchors", np.bincount(a_refs, minlength=len(refs)), pl.Int64))
    names = ["refs.parquet", *(f"{a}.npy" for a in ARRAYS)]
    stored_text = "text" in refs.columns
    if stored_text:  # uncompressed Arrow, so that a scan reads any one text without loading the rest
        with pa.OSFile(str(path / "texts.arrow"), "wb") as f, pa.ipc.new_file(f, TEXTS_SCHEMA) as w:
            w.write_table(pa.table({"text": refs["text"].to_arrow().cast(pa.large_string())}, schema=TEXTS_SCHEMA))
        names.append("texts.arrow")
        refs = refs.drop("text")
    else:
        (path / "texts.arrow").unlink(missing_ok=True)
    pq.write_table(refs.to_arrow(), path / "refs.parquet", compression="zstd")
    for name, arr in zip(ARRAYS, (sigs, tags, order, directory, a_tags, a_refs, a_pos, a_dir, a_stop, a_human)):
        np.save(path / f"{name}.npy", np.ascontiguousarray(arr))
    labels = refs.group_by("label").len().sort("label")
    artifact.write_manifest(path, {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tool": {"name": "contamscan", "version": __version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": p,
        "counts": {"refs": int(sigs.shape[0]), "labels": dict(zip(labels["label"].to_list(), labels["len"].to_list())),
                   "anchors": int(len(a_refs)), "common_anchors_dropped": int(len(a_stop)),
                   "known_human_anchors": int(len(a_human)),
                   "skipped": dict(skipped or {})},
        "stored_text": stored_text,
    }, names)


def open_index(path, verify: bool = True) -> ReferenceIndex:
    """Open an index directory (a local path or a URI), checking its format and (by default)
    every file's checksum. A remote index is opened from its local copy in the cache.

    Args:
        path: the index directory.
        verify: check every file's checksum (sizes are always checked).

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
    refs = pl.read_parquet(opened.file("refs.parquet"))
    arrays = {}
    for a in ARRAYS:
        try:
            arrays[a] = np.load(opened.file(f"{a}.npy"), mmap_mode="r", allow_pickle=False)
        except ValueError as e:  # an object array (pickles), or not an array file
            raise IndexFormatError(f"{shown}: {a}.npy is not an array of numbers ({e}); rebuild the index") from None
    texts = None
    if manifest.get("stored_text"):
        texts = pa.ipc.open_file(pa.memory_map(str(opened.file("texts.arrow")))).read_all().column("text")
    _check_shapes(shown, manifest, len(refs), arrays, texts)
    return ReferenceIndex(local, manifest, refs, arrays, texts, location=opened.location)


def _check_shapes(shown: str, manifest: dict, refs: int, arrays: dict, texts) -> None:
    """The parameters and counts of the manifest against the arrays: a mismatch is a damaged
    or hand-edited index, never something to index out of bounds on."""
    p, sigs = manifest["params"], arrays["signatures"]
    problems = []
    if sigs.ndim != 2 or sigs.shape[1] != p.get("num_perm"):
        problems.append(f"signatures have shape {sigs.shape}, num_perm is {p.get('num_perm')}")
    elif p.get("bands", 0) * p.get("rows", 0) > sigs.shape[1]:
        problems.append(f"bands {p.get('bands')} x rows {p.get('rows')} exceed num_perm {sigs.shape[1]}")
    if len(sigs) != refs or manifest.get("counts", {}).get("refs", refs) != refs:
        problems.append(f"{refs} references, {len(sigs)} signatures, manifest counts "
                        f"{manifest.get('counts', {}).get('refs')}")
    for a in ("band_tags", "band_refs"):
        arr = arrays[a]
        if arr.ndim != 2 or arr.shape[0] != p.get("bands") or arr.shape[1] != refs:
            problems.append(f"{a} has shape {arr.shape}, expected ({p.get('bands')}, {refs})")
    if not len(arrays["anchor_tags"]) == len(arrays["anchor_refs"]) == len(arrays["anchor_pos"]):
        problems.append("anchor_tags, anchor_refs and anchor_pos differ in length")
    if texts is not None and len(texts) != refs:
        problems.append(f"{len(texts)} stored texts for {refs} references")
    if problems:
        raise IndexFormatError(f"{shown}: the index does not match its manifest ({'; '.join(problems)}); rebuild "
                               "the index")
