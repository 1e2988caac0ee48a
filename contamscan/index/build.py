"""Building indexes: from reference files, by merging indexes, by adding references to one;
in every case the result equals a single build from all the references at once."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..config import BuildOptions, IndexParams, ScanOptions, replace_options
from ..discover import discover
from ..errors import ContamscanError, FieldMissingError
from ..formats import check_fields, has_field, read_batches
from ..io import Location, artifact
from ..model import Fields
from ..sketch.minhash import INVALID_UTF8, Hasher
from .format import KIND, anchor_keys32, open_index, save_index, sorted_unique
from .reference import ReferenceIndex


def build_index(refs, out, options: BuildOptions | None = None, *, params: IndexParams | None = None,
                progress=None, **fields) -> ReferenceIndex:
    """Build an index from reference files, directories or globs (Parquet, JSON Lines, Arrow)
    and write it to ``out``.

    Each record needs a text and a label (the model that wrote it: ``label_field``, or one
    ``label`` for all, or ``label_from_path``: its file's directory). Its id is taken from
    ``id_field`` when the field exists, else ``<file>:<row>``. References with no words are
    skipped and counted in the manifest.

    Args:
        refs: files, directories or glob patterns (paths or URIs) of reference records.
        out: the index directory to write (a path or a URI); an index there is replaced.
        options: how records are read (:class:`~contamscan.config.BuildOptions`); keyword
            arguments (``label_field="model"``) override its fields.
        params: signature and LSH parameters (:class:`~contamscan.config.IndexParams`).
        progress: called with each :class:`~contamscan.model.Batch` read.

    Returns:
        The new index, opened.

    Raises:
        ContamscanError: no reference files, a missing field, duplicate ids, an unwritable output.

    Example:
        >>> index = build_index(["refs/"], "refs.index", label_field="model")  # doctest: +SKIP
    """
    options = replace_options(options or BuildOptions(), fields)
    params = params or IndexParams()
    out = Location.of(out)
    out.check_writable()  # before the work, not after it
    shards, _ = discover(list(refs) if not isinstance(refs, (str, os.PathLike)) else [refs])
    if not shards:
        raise ContamscanError("no reference files found (expected .parquet, .jsonl, .json, .jsonl.gz, .jsonl.zst, .arrow)")
    hasher = Hasher(params.num_perm, params.seed, params.ngram, params.anchor_bits)
    parts = []  # per batch: an Arrow table of the kept references' columns
    sig_parts, key_parts, ref_parts, word_parts = [], [], [], []
    n_refs = 0
    skipped = Counter()
    for shard in shards:
        constant = _constant_label(shard, options)
        label_field = options.label_field if constant is None else None
        _check_reference_fields(shard, options.text_field, label_field)
        # ids are optional: where the id field is absent, the id is FILE:ROW
        has_id = options.id_field is not None and has_field(shard, options.id_field)
        fields_ = Fields(text=options.text_field, label=label_field, id=options.id_field if has_id else None)
        for batch in read_batches(shard, fields_, batch_bytes=ScanOptions().batch_bytes, strict=options.strict):
            skipped.update(b.reason for b in batch.bad)
            sigs = hasher.signatures(batch.texts)
            invalid = sigs.status == INVALID_UTF8
            keep = ~invalid & (sigs.n_shingles > 0)
            skipped["invalid_utf8"] += int(np.count_nonzero(invalid))
            skipped["no_words"] += int(np.count_nonzero(~invalid & (sigs.n_shingles == 0)))
            idx = pa.array(np.flatnonzero(keep))
            rows = pa.array(batch.rows).take(idx)
            fallback = pc.binary_join_element_wise(shard.relpath, rows.cast(pa.string()), ":")
            ids = fallback if batch.ids is None else pc.coalesce(batch.ids.take(idx).cast(pa.string()), fallback)
            cols = {
                "ref_id": ids,
                "label": pa.array([constant] * len(idx), pa.string()) if constant is not None else
                pc.coalesce(batch.labels.take(idx).cast(pa.string()), pa.scalar("unknown")),
                "source": pa.array([shard.relpath] * len(idx), pa.string()),
                "n_shingles": pa.array(sigs.n_shingles[keep], pa.int64()),
                "n_chars": pa.array(sigs.n_chars[keep], pa.int64()),
            }
            if options.store_text:
                cols["text"] = batch.texts.take(idx).cast(pa.large_string())
            parts.append(pa.table(cols))
            sig_parts.append(sigs.values[keep])
            # anchors of kept references, numbered in index order (skipped ones have none)
            if sigs.anchors is not None:
                number = n_refs + np.cumsum(keep) - 1
                key_parts.append(anchor_keys32(sigs.anchors.key))  # kept in their stored form: half the memory
                ref_parts.append(number[sigs.anchors.doc].astype(np.int32))
                word_parts.append(sigs.anchors.word.astype(np.uint32))
            n_refs += len(idx)
            if progress:
                progress(batch)
            del batch  # not held while the next one is read
    table = pl.from_arrow(pa.concat_tables(parts)) if parts else pl.DataFrame(
        schema={"ref_id": pl.String, "label": pl.String, "source": pl.String, "n_shingles": pl.Int64, "n_chars": pl.Int64})
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, params.num_perm), np.uint32)
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, np.uint32)
    refs = np.concatenate(ref_parts) if ref_parts else np.zeros(0, np.int64)
    words = np.concatenate(word_parts) if word_parts else np.zeros(0, np.uint32)
    human = known_human_keys(options.known_human, options, hasher)
    with artifact.building(out, KIND) as local:
        save_index(local, params, table, sigs, keys, refs, words, skipped={k: n for k, n in skipped.items() if n},
                   human_keys=human)
    return open_index(out, verify=False)


def known_human_keys(paths, options: BuildOptions, hasher: Hasher) -> np.ndarray:
    """The distinct anchor keys (stored form) of the text known to be human-written in
    ``paths`` (files, directories, globs; the field ``options.text_field``)."""
    if not paths:
        return np.zeros(0, np.uint32)
    shards, _ = discover(list(paths))
    if not shards:
        raise ContamscanError(f"no known-human files found in {', '.join(map(str, paths))}")
    parts = [np.zeros(0, np.uint32)]
    for shard in shards:
        if not has_field(shard, options.text_field):
            raise ContamscanError(f"{shard.relpath}: known-human text has no field {options.text_field!r}; "
                                  "give its field with --text-field")
        for batch in read_batches(shard, Fields(text=options.text_field), batch_bytes=ScanOptions().batch_bytes,
                                  strict=options.strict):
            anchors = hasher.signatures(batch.texts).anchors
            if anchors is not None:
                parts.append(sorted_unique(anchor_keys32(anchors.key)))
    return sorted_unique(np.concatenate(parts))


_LABEL_WAYS = ("give each reference its label one of three ways: `label_field` (the field naming the model "
               "that wrote it), `label` (one label for every reference) or `label_from_path` (the name of its "
               "file's directory)")


def _constant_label(shard, options: BuildOptions) -> str | None:
    """The label of every reference of ``shard`` (``label``, or with ``label_from_path`` the
    name of its file's directory); None: read from ``label_field``."""
    if options.label is not None:
        return options.label
    if not options.label_from_path:
        return None
    path = shard.path.split("?", 1)[0].rstrip("/")
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    name = parent.rsplit("/", 1)[-1]
    if not name or name.endswith(":"):
        raise ContamscanError(f"{shard.relpath}: `label_from_path`: the file has no directory to name its label")
    return name


def _check_reference_fields(shard, text_field: str, label_field: str | None) -> None:
    """The text and label fields are in ``shard``; a missing label field says how else to
    label the references."""
    try:
        check_fields(shard, Fields(text=text_field, label=label_field))
    except FieldMissingError as e:
        if label_field is None or e.field != label_field or e.field == text_field:
            raise
        raise FieldMissingError(e.field, e.path, e.available, hint=_LABEL_WAYS) from None


def merge_indexes(indexes, out, *, replace: bool = False, human_keys: np.ndarray | None = None) -> ReferenceIndex:
    """Merge indexes built with the same parameters into one at ``out``; the result equals
    an index built from all their references at once (in this order).

    Args:
        indexes: opened indexes or their paths/URIs.
        out: the merged index's directory.
        replace: allow ``out`` to be one of the inputs (``index add``): the merge is written
            beside it and swapped in when complete.
        human_keys: anchor keys of more text known to be human-written (:func:`known_human_keys`).

    Returns:
        The merged index, opened. Reference texts are kept only when every index stores them.

    Raises:
        ContamscanError: nothing to merge, parameters that differ, ``out`` among the inputs.

    Example:
        >>> merged = merge_indexes(["refs-a.index", "refs-b.index"], "refs.index")  # doctest: +SKIP
    """
    ixs = [ix if isinstance(ix, ReferenceIndex) else open_index(ix) for ix in indexes]
    if not ixs:
        raise ContamscanError("nothing to merge")
    first = ixs[0].manifest["params"]
    for ix in ixs[1:]:
        diff = sorted(k for k in set(first) | set(ix.manifest["params"]) if first.get(k) != ix.manifest["params"].get(k))
        if diff:
            raise ContamscanError(f"cannot merge {ixs[0].shown} and {ix.shown}: their parameters differ ("
                                  + ", ".join(f"{k}: {first.get(k)} vs {ix.manifest['params'].get(k)}" for k in diff)
                                  + "); rebuild one with the other's parameters")
    out = Location.of(out)
    out.check_writable()
    into_input = out.key in {ix.location.key for ix in ixs}
    if into_input and not replace:
        raise ContamscanError(f"{out.shown} is one of the indexes being merged; write the merge elsewhere")
    offsets = np.cumsum([0] + [len(ix) for ix in ixs])
    table = pl.concat([ix.refs.drop("n_anchors") for ix in ixs])
    if all(ix.texts is not None for ix in ixs):
        table = table.with_columns(pl.Series("text", pa.chunked_array([c for ix in ixs for c in ix.texts.chunks],
                                                                     pa.large_string())))
    sigs = np.concatenate([np.asarray(ix.signatures) for ix in ixs])
    anchors = [ix.anchors() for ix in ixs]
    keys = np.concatenate([k for k, _, _ in anchors])
    refs = np.concatenate([r + off for (_, r, _), off in zip(anchors, offsets)])
    words = np.concatenate([w for _, _, w in anchors])
    del anchors
    stop = sorted_unique(np.concatenate([np.asarray(ix.anchor_stop) for ix in ixs]))
    human = sorted_unique(np.concatenate([np.asarray(ix.anchor_human) for ix in ixs]
                                     + [np.asarray(human_keys if human_keys is not None else [], np.uint32)]))
    skipped = Counter()
    for ix in ixs:
        skipped.update(ix.manifest["counts"].get("skipped", {}))
    with artifact.building(out, KIND, beside=into_input) as local:
        save_index(local, ixs[0].params, table, sigs, keys, refs, words, skipped=dict(skipped), anchor_stop=stop,
                   human_keys=human)
    return open_index(out, verify=False)


def add_to_index(index, refs, options: BuildOptions | None = None, **fields) -> ReferenceIndex:
    """Add references (files, directories, globs) and text known to be human-written
    (``known_human``) to an index, in place: they are indexed with the index's parameters
    and merged in; the index is swapped only when complete. Known human text is compared
    with every reference of the grown index.

    Args:
        index: an opened index or its path/URI.
        refs: the new references.
        options: how they are read (``store_text`` is the index's); keyword arguments override.

    Returns:
        The grown index, opened.

    Raises:
        ContamscanError: as :func:`build_index` and :func:`merge_indexes`.

    Example:
        >>> index = add_to_index("refs.index", ["new-outputs/"])  # doctest: +SKIP
    """
    ix = index if isinstance(index, ReferenceIndex) else open_index(index)
    options = replace_options(options or BuildOptions(), {**fields, "store_text": ix.texts is not None})
    human = known_human_keys(options.known_human, options, ix.hasher())
    if not refs:
        return merge_indexes([ix], ix.location, replace=True, human_keys=human)
    with tempfile.TemporaryDirectory(prefix=".contamscan-add-") as tmp:
        new = build_index(refs, Path(tmp) / "new", replace_options(options, {"known_human": ()}), params=ix.params)
        return merge_indexes([ix, new], ix.location, replace=True, human_keys=human)
