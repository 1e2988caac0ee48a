"""ReferenceIndex: build, save, open and query an index of reference signatures.

On disk (an open format, no pickle; arrays are ``.npy`` and memory-mapped on open, so
worker processes share one copy through the page cache):

``manifest.json``     format, version, parameters, counts, size and xxh3-128 of every file
``refs.parquet``      ref_id, label, source, n_shingles, n_chars[, text]
``signatures.npy``    uint32 [refs, num_perm]
``band_keys.npy``     uint64 [bands, refs], each band sorted
``band_refs.npy``     int32  [bands, refs], the reference of each key
``band_dir.npy``      int32  [bands, 2**dir_bits + 1], where each run of top bits starts

A lookup reads the directory entry for the key's top bits and scans the few keys there, so
its cost does not grow with the number of references.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from . import __version__
from .config import IndexParams
from .errors import ContamscanError, IndexFormatError
from .lsh import band_key, band_keys, optimal_bands
from .minhash import INVALID_UTF8, Hasher
from .readers import Fields, check_fields, discover, has_field, read_batches
from .text import NORMALIZATION, UNICODE_VERSION

FORMAT = "contamscan-index"
FORMAT_VERSION = 1
ARRAYS = ("signatures", "band_keys", "band_refs", "band_dir")


@dataclass(frozen=True)
class IndexSummary:
    path: str
    refs: int
    labels: dict[str, int]
    params: dict
    bytes_on_disk: int
    skipped: dict[str, int] = field(default_factory=dict)


def file_digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def _dir_bits(n: int) -> int:
    return max(0, math.ceil(math.log2(max(n, 1) / 2))) if n > 2 else 0


def build_band_tables(sigs: np.ndarray, bands: int, rows: int):
    """Sorted band keys, their references, and the top-bits directory of every band."""
    n = sigs.shape[0]
    keys = band_keys(sigs, bands, rows).T.copy() if n else np.zeros((bands, 0), np.uint64)
    order = np.argsort(keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    bits = _dir_bits(n)
    starts = np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits) if bits else np.zeros(1, np.uint64)
    directory = np.empty((bands, (1 << bits) + 1), np.int32)
    for b in range(bands):
        directory[b, :-1] = np.searchsorted(sorted_keys[b], starts, side="left")
        directory[b, -1] = n
    return sorted_keys, order.astype(np.int32), directory


@numba.njit(cache=True, nogil=True)
def _query_kernel(sigs, skip, keys, refs, directory, bits, rows, ref_sigs, min_equal, best_ref, best_equal, n_cand):
    """For each signature: the reference with most equal slots among the LSH candidates
    (best_ref = -1 if no candidate reaches ``min_equal`` slots), and the candidate count."""
    bands = keys.shape[0]
    P = sigs.shape[1]
    shift = np.uint64(64 - bits)
    cand = np.empty(bands * 8, np.int64)
    for i in range(sigs.shape[0]):
        best_ref[i] = -1
        best_equal[i] = 0
        n_cand[i] = 0
        if skip[i]:
            continue
        nc = 0
        for b in range(bands):
            k = band_key(sigs[i], b, rows)
            t = (k >> shift) if bits > 0 else np.uint64(0)
            for p in range(directory[b, t], directory[b, t + 1]):
                if keys[b, p] == k:
                    if nc == cand.shape[0]:
                        bigger = np.empty(nc * 2, np.int64)
                        bigger[:nc] = cand[:nc]
                        cand = bigger
                    cand[nc] = refs[b, p]
                    nc += 1
        if nc == 0:
            continue
        c = np.sort(cand[:nc])
        prev = -1
        best = -1
        best_eq = -1
        for q in range(nc):
            r = c[q]
            if r == prev:
                continue
            prev = r
            n_cand[i] += 1
            eq = 0
            for j in range(P):
                if sigs[i, j] == ref_sigs[r, j]:
                    eq += 1
            if eq > best_eq:  # ties keep the lowest ref index: deterministic
                best_eq = eq
                best = r
        best_equal[i] = best_eq
        if best_eq >= min_equal:
            best_ref[i] = best


@dataclass(frozen=True)
class QueryResult:
    best_ref: np.ndarray  # int64 [n], -1 where nothing reaches the threshold
    similarity: np.ndarray  # float64 [n], best verified candidate's estimated Jaccard (0 if none)
    n_candidates: np.ndarray  # int64 [n], distinct LSH candidates


class ReferenceIndex:
    """An opened index: parameters, references, memory-mapped signatures and band tables."""

    def __init__(self, path: Path, manifest: dict, refs: pl.DataFrame, arrays: dict[str, np.ndarray]):
        self.path = Path(path)
        self.manifest = manifest
        p = manifest["params"]
        self.params = IndexParams(threshold=p["threshold"], num_perm=p["num_perm"], ngram=p["ngram"], seed=p["seed"])
        self.bands, self.rows = p["bands"], p["rows"]
        self.refs = refs
        self.signatures = arrays["signatures"]
        self.band_keys = arrays["band_keys"]
        self.band_refs = arrays["band_refs"]
        self.band_dir = arrays["band_dir"]
        self.dir_bits = int(round(math.log2(self.band_dir.shape[1] - 1)))
        # per-reference columns as arrays, not Python objects: cheap to hold per worker
        self.ref_ids = refs["ref_id"].to_arrow()
        self.label_names, codes = np.unique(refs["label"].to_numpy().astype(str), return_inverse=True)
        self.label_codes = codes.astype(np.int32)
        self.ref_shingles = refs["n_shingles"].to_numpy()
        # slots that must agree for a flag: similarity = equal / num_perm >= threshold
        self.min_equal = math.ceil(self.params.threshold * self.params.num_perm - 1e-9)

    def __len__(self) -> int:
        return self.signatures.shape[0]

    def hasher(self) -> Hasher:
        return Hasher(self.params.num_perm, self.params.seed, self.params.ngram)

    def query(self, sigs: np.ndarray, skip: np.ndarray | None = None) -> QueryResult:
        n = sigs.shape[0]
        skip = np.zeros(n, np.bool_) if skip is None else skip
        best_ref = np.empty(n, np.int64)
        best_equal = np.empty(n, np.int64)
        n_cand = np.empty(n, np.int64)
        if len(self):
            _query_kernel(sigs, skip, self.band_keys, self.band_refs, self.band_dir, self.dir_bits,
                          self.rows, self.signatures, self.min_equal, best_ref, best_equal, n_cand)
        else:
            best_ref[:], best_equal[:], n_cand[:] = -1, 0, 0
        return QueryResult(best_ref, best_equal / self.params.num_perm, n_cand)

    def candidates(self, sig: np.ndarray) -> set[int]:
        """LSH candidates of one signature (reference row numbers), before verification."""
        out = set()
        for b in range(self.bands):
            k = band_key(sig, b, self.rows)
            t = int(k >> np.uint64(64 - self.dir_bits)) if self.dir_bits else 0
            lo, hi = self.band_dir[b, t], self.band_dir[b, t + 1]
            hits = np.nonzero(self.band_keys[b, lo:hi] == k)[0]
            out.update(int(r) for r in self.band_refs[b, lo + hits])
        return out

    def summary(self) -> IndexSummary:
        m = self.manifest
        size = sum(f["bytes"] for f in m["files"].values()) + (self.path / "manifest.json").stat().st_size
        return IndexSummary(str(self.path), m["counts"]["refs"], m["counts"]["labels"], m["params"], size,
                            m["counts"].get("skipped", {}))


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
    }


def save_index(path: Path, params: IndexParams, refs: pl.DataFrame, sigs: np.ndarray,
               skipped: dict[str, int] | None = None) -> None:
    """Write an index directory. The manifest is written last: a directory without one
    (an interrupted build) is never mistaken for an index."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    manifest_path = path / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()
    p = params_dict(params)
    keys, order, directory = build_band_tables(sigs, p["bands"], p["rows"])
    tmp = path / "refs.parquet.tmp"
    pq.write_table(refs.to_arrow(), tmp, compression="zstd")
    os.replace(tmp, path / "refs.parquet")
    for name, arr in zip(ARRAYS, (sigs, keys, order, directory)):
        _atomic_save_npy(path / f"{name}.npy", np.ascontiguousarray(arr))
    files = {}
    for name in ("refs.parquet", *(f"{a}.npy" for a in ARRAYS)):
        f = path / name
        files[name] = {"bytes": f.stat().st_size, "xxh3_128": file_digest(f)}
    labels = Counter(refs["label"].to_list())
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tool": {"name": "contamscan", "version": __version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": p,
        "counts": {"refs": int(sigs.shape[0]), "labels": dict(sorted(labels.items())),
                   "skipped": dict(skipped or {})},
        "stored_text": "text" in refs.columns,
        "files": files,
    }
    tmp = path / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, manifest_path)


def open_index(path, verify: bool = True) -> ReferenceIndex:
    """Open an index directory, checking its format and (by default) every file's checksum."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise IndexFormatError(f"{path} is not a contamscan index (no manifest.json); build one with `contamscan index build`")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{mpath}: unreadable manifest ({e})") from e
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path}: not a contamscan index (format {manifest.get('format')!r})")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: index format version {manifest.get('version')} is not supported "
                               f"by this contamscan (reads version {FORMAT_VERSION}); rebuild the index")
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise IndexFormatError(f"{path}: missing file {name}")
        if f.stat().st_size != meta["bytes"]:
            raise IndexFormatError(f"{path}: {name} has {f.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or modified)")
        if verify and file_digest(f) != meta["xxh3_128"]:
            raise IndexFormatError(f"{path}: checksum mismatch for {name}: the file was modified or corrupted; rebuild the index")
    refs = pl.read_parquet(path / "refs.parquet")
    arrays = {a: np.load(path / f"{a}.npy", mmap_mode="r") for a in ARRAYS}
    return ReferenceIndex(path, manifest, refs, arrays)


def build_index(refs, out, *, text_field: str = "text", label_field: str = "model", id_field: str | None = "id",
                params: IndexParams = IndexParams(), store_text: bool = False, strict: bool = False,
                progress=None) -> ReferenceIndex:
    """Build an index from reference files, directories or globs (Parquet, JSON Lines, Arrow)
    and write it to ``out``. Returns the opened index.

    Each record needs a text and a label (the model that wrote it). Its id is taken from
    ``id_field`` when the field exists, else ``<file>:<row>``. References with no words are
    skipped and counted in the manifest.
    """
    shards, _ = discover(list(refs) if not isinstance(refs, (str, os.PathLike)) else [refs])
    if not shards:
        raise ContamscanError("no reference files found (expected .parquet, .jsonl, .json, .jsonl.gz, .jsonl.zst, .arrow)")
    hasher = Hasher(params.num_perm, params.seed, params.ngram)
    cols = {"ref_id": [], "label": [], "source": [], "n_shingles": [], "n_chars": [], "text": []}
    sig_parts = []
    skipped = Counter()
    for shard in shards:
        check_fields(shard, Fields(text=text_field, label=label_field))
        # ids are optional: where the id field is absent, the id is FILE:ROW
        has_id = id_field is not None and has_field(shard, id_field)
        fields = Fields(text=text_field, label=label_field, id=id_field if has_id else None)
        for batch in read_batches(shard, fields, strict=strict):
            skipped.update(b.reason for b in batch.bad)
            sigs = hasher.signatures(batch.texts)
            keep = (sigs.status != INVALID_UTF8) & (sigs.n_shingles > 0)
            skipped["invalid_utf8"] += int(np.count_nonzero(sigs.status == INVALID_UTF8))
            skipped["no_words"] += int(np.count_nonzero((sigs.status != INVALID_UTF8) & (sigs.n_shingles == 0)))
            idx = np.nonzero(keep)[0]
            labels = batch.labels.to_pylist()
            ids = batch.ids.to_pylist() if batch.ids is not None else [None] * len(labels)
            texts = batch.texts.to_pylist() if store_text else None
            for i in idx:
                rid = ids[i] if ids[i] is not None else f"{shard.relpath}:{int(batch.rows[i])}"
                cols["ref_id"].append(str(rid))
                cols["label"].append(labels[i] if labels[i] is not None else "unknown")
                cols["source"].append(shard.relpath)
                if store_text:
                    cols["text"].append(texts[i])
            cols["n_shingles"].extend(sigs.n_shingles[idx].tolist())
            cols["n_chars"].extend(sigs.n_chars[idx].tolist())
            sig_parts.append(sigs.values[idx])
            if progress:
                progress(batch)
    if not store_text:
        del cols["text"]
    table = pl.DataFrame(cols, schema_overrides={"n_shingles": pl.Int64, "n_chars": pl.Int64})
    dup = table["ref_id"].is_duplicated()
    if dup.any():
        ex = table.filter(dup)["ref_id"].unique().sort().head(3).to_list()
        raise ContamscanError(f"reference ids are not unique (e.g. {ex}); pass --id-field with a unique field")
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, params.num_perm), np.uint32)
    save_index(Path(out), params, table, sigs, {k: n for k, n in skipped.items() if n})
    return open_index(out, verify=False)
