"""Building indexes: from reference files, by merging indexes, by adding references to one;
in every case the result equals a single build from all the references at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import BuildOptions, IndexParams, ScanOptions, replace_options
from ..discover import discover
from ..errors import ContamscanError, FieldMissingError
from ..formats import check_fields, has_field, read_batches
from ..io import Location, artifact
from ..model import Fields
from ..sketch.minhash import INVALID_UTF8, Hasher
from .format import KIND, MEMORY, IndexWriter, anchor_keys32, index_manifest, open_index, read_rows, remove_unlisted, segments_of
from .reference import ReferenceIndex, in_sorted, sorted_unique


def build_index(refs, out, options: BuildOptions | None = None, *, params: IndexParams | None = None,
                progress=None, memory: int = MEMORY, **fields) -> ReferenceIndex:
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
        memory: bytes the build's sorts and buffers may hold (:class:`~contamscan.index.format.IndexWriter`:
            the references and anchors go through files; RSS stays near this whatever their number).

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
    human = known_human_keys(options.known_human, options, hasher)
    work = _workdir(out)
    try:
        writer = IndexWriter(work, params, memory=memory, store_text=options.store_text)
        skipped = _feed(writer, shards, options, hasher, progress)
        names, counts, _, _ = writer.finish(dict(skipped), human)
        _place(out, work, names, index_manifest(params, counts, options.store_text,
                                                [{"prefix": "", "refs": counts["refs"]}]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return open_index(out, verify=False)


def _feed(writer: IndexWriter, shards, options: BuildOptions, hasher: Hasher, progress=None) -> Counter:
    """Read the references of ``shards`` into ``writer``; returns the counts of those skipped."""
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
            writer.add_refs(pa.table(cols), sigs.values[keep])
            # anchors of kept references, numbered in index order (skipped ones have none)
            if sigs.anchors is not None:
                number = n_refs + np.cumsum(keep) - 1
                writer.add_anchors(anchor_keys32(sigs.anchors.key), number[sigs.anchors.doc],
                                   sigs.anchors.word.astype(np.uint32))
            n_refs += len(idx)
            if progress:
                progress(batch)
            del batch  # not held while the next one is read
    return Counter({k: n for k, n in skipped.items() if n})


def _workdir(out: Location) -> Path:
    """Where an index for ``out`` is written before it is put in place: beside a local one
    (the same file system: moving its files there is a rename), else a temporary directory."""
    if out.remote:
        return Path(tempfile.mkdtemp(prefix="contamscan-index-"))
    final = Path(out.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.writing-{os.getpid()}")


def _place(out: Location, work: Path, names, manifest: dict, beside: bool = False) -> None:
    """Move the files ``names`` written in ``work`` to the index ``out`` and write its
    manifest (:func:`contamscan.io.artifact.building`: the old index is replaced only now)."""
    with artifact.building(out, KIND, beside=beside) as local:
        for name in names:
            shutil.move(str(work / name), str(local / name))
        artifact.write_manifest(local, manifest, names)
        if not out.remote:
            remove_unlisted(local, names)


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


def merge_indexes(indexes, out, *, replace: bool = False, human_keys: np.ndarray | None = None,
                  memory: int = MEMORY) -> ReferenceIndex:
    """Merge indexes built with the same parameters into one at ``out``; the result equals
    an index built from all their references at once (in this order).

    Args:
        indexes: opened indexes or their paths/URIs.
        out: the merged index's directory.
        replace: allow ``out`` to be one of the inputs (``index add``): the merge is written
            beside it and swapped in when complete.
        human_keys: anchor keys of more text known to be human-written (:func:`known_human_keys`).
        memory: as :func:`build_index` (a merge is written out of core too).

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
    stop = sorted_unique(np.concatenate([np.asarray(ix.anchor_stop, np.uint32) for ix in ixs]))
    human = sorted_unique(np.concatenate([np.asarray(ix.anchor_human, np.uint32) for ix in ixs]
                                         + [np.asarray(human_keys if human_keys is not None else [], np.uint32)]))
    skipped = Counter()
    for ix in ixs:
        skipped.update(ix.manifest["counts"].get("skipped", {}))
    store_text = all(ix.texts is not None for ix in ixs)
    work = _workdir(out)
    try:
        writer = IndexWriter(work, ixs[0].params, memory=memory, stop=stop, store_text=store_text)
        base = 0
        for ix in ixs:  # the references in order, a segment and a block at a time
            for seg in ix.segments:
                for lo in range(0, seg.n, 1 << 18):
                    hi = min(lo + (1 << 18), seg.n)
                    table = ix.refs.slice(seg.offset + lo, hi - lo).drop("n_anchors").to_arrow()
                    if store_text:
                        table = table.append_column("text", ix.texts.slice(seg.offset + lo, hi - lo))
                    writer.add_refs(table, read_rows(seg.signatures, lo, hi))
            for seg in ix.segments:
                for k, r, w in seg.anchor_blocks():
                    writer.add_anchors(k, r + base, w.astype(np.uint32))
            base += len(ix)
        names, counts, _, _ = writer.finish(dict(skipped), human)
        _place(out, work, names, index_manifest(ixs[0].params, counts, store_text,
                                                [{"prefix": "", "refs": counts["refs"]}]), beside=into_input)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return open_index(out, verify=False)


class _Outside:
    """The segments of an index, asked about the keys of a segment being added
    (:func:`contamscan.index.format.drop_common`): per entry they hold of a key, which key and
    the label code of its reference; then the references of the entries asked for."""

    def __init__(self, ix: ReferenceIndex, codes: np.ndarray):
        self.ix, self.codes = ix, codes
        self.refs = np.zeros(0, np.int64)

    def __call__(self, keys):
        # (keys already dropped are looked up too, their entries ignored: one index of ``keys``)
        parts = [seg.lookup(keys) for seg in self.ix.segments if len(seg.anchor_refs)]
        which = np.concatenate([np.zeros(0, np.int64)] + [w for w, _, _ in parts])
        self.refs = np.concatenate([np.zeros(0, np.int64)] + [r for _, r, _ in parts])
        return which, self.codes[self.refs]

    def refs_of(self, entries):
        return self.refs[entries]


def add_to_index(index, refs, options: BuildOptions | None = None, *, memory: int = MEMORY,
                 **fields) -> ReferenceIndex:
    """Add references (files, directories, globs) and text known to be human-written
    (``known_human``) to an index, with the index's parameters; queries then give what one
    build of all the references gives. Known human text is compared with every reference of
    the grown index.

    A local index grows by a segment: the new references' files are written beside the
    index's (nothing there is rewritten) and the manifest, rewritten atomically last, lists
    them; :func:`compact_index` makes one segment of them all. A remote index is rewritten
    (merged with the new references) and uploaded.

    Args:
        index: an opened index or its path/URI.
        refs: the new references.
        options: how they are read (``store_text`` is the index's); keyword arguments override.
        memory: as :func:`build_index`.

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
    if ix.location.remote:
        if not refs:
            return merge_indexes([ix], ix.location, replace=True, human_keys=human)
        with tempfile.TemporaryDirectory(prefix=".contamscan-add-") as tmp:
            new = build_index(refs, Path(tmp) / "new", replace_options(options, {"known_human": ()}),
                              params=ix.params, memory=memory)
            return merge_indexes([ix, new], ix.location, replace=True, human_keys=human)
    shards = []
    if refs:
        shards, _ = discover(list(refs) if not isinstance(refs, (str, os.PathLike)) else [refs])
        if not shards:
            raise ContamscanError("no reference files found (expected .parquet, .jsonl, .json, .jsonl.gz, "
                                  ".jsonl.zst, .arrow)")
    hasher = ix.hasher()
    feed_options = replace_options(options, {"known_human": ()})
    return add_segment(ix, lambda writer: _feed(writer, shards, feed_options, hasher), human, memory,
                       store_text=options.store_text)


def add_segment(ix: ReferenceIndex, feed, human: np.ndarray | None = None, memory: int = MEMORY,
                store_text: bool = False) -> ReferenceIndex:
    """Add a segment to the local index ``ix``: ``feed(writer)`` gives the new references to
    an :class:`~contamscan.index.format.IndexWriter` (and returns the counts of those
    skipped); ``human``: more known human keys. Nothing of the index is rewritten but its
    manifest (module doc of :mod:`contamscan.index.format`)."""
    human = np.zeros(0, np.uint32) if human is None else human
    segs = segments_of(ix.manifest)
    number = 1 + max([0] + [int(s["prefix"][1:-1]) for s in segs if s["prefix"]])
    prefix = f"s{number}."
    path = ix.path
    codes_of = {name: i for i, name in enumerate(ix.label_names.tolist())}
    outside = _Outside(ix, ix.label_codes.astype(np.int64))
    old_ids = ix.refs["ref_id"]

    def check_ids(ids):
        import polars as pl  # noqa: PLC0415 (only index add: a scan needs no polars)

        ids = pl.from_arrow(ids)
        dup = ids.filter(ids.is_in(old_ids.implode())) if len(ids) else ids
        if len(dup):
            ex = dup.unique().sort().head(3).to_list()
            raise ContamscanError(f"reference ids are not unique (e.g. {ex}); give `id_field` a field of unique ids")

    for f in path.glob(f"{prefix}*"):  # an interrupted add's
        f.unlink()
    work = path / f".{prefix}building-{os.getpid()}"
    try:
        writer = IndexWriter(work, ix.params, prefix=prefix, memory=memory, stop=ix.anchor_stop, outside=outside,
                             labels=list(codes_of), store_text=store_text)
        skipped_new = feed(writer)
        # the known human keys of the segments there (the new one's are the writer's)
        hk = human[~in_sorted(human, ix.anchor_stop)]
        there = np.unique(np.concatenate([np.zeros(0, np.int64)] + [seg.lookup(hk)[0] for seg in ix.segments
                                                                     if len(seg.anchor_refs)]))
        names, counts, stop, dropped = writer.finish({}, human, check_ids=check_ids)
        seg_human = np.load(work / f"{prefix}anchor_human.npy")
        np.save(work / f"{prefix}anchor_human.npy", sorted_unique(np.concatenate([seg_human, hk[there]])))
        np.save(work / f"{prefix}anchor_drop.npy", np.sort(dropped).astype(np.int32))
        names.append(f"{prefix}anchor_drop.npy")
        for name in names:
            os.replace(work / name, path / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = ix.manifest
    old, new = m["counts"], counts
    all_stop = sorted_unique(np.concatenate([np.asarray(ix.anchor_stop, np.uint32), stop]))
    human_all = sorted_unique(np.concatenate([np.asarray(ix.anchor_human, np.uint32),
                                              np.load(path / f"{prefix}anchor_human.npy")]))
    labels = Counter(old["labels"])
    labels.update(new["labels"])
    skipped = Counter(old.get("skipped", {}))
    skipped.update(skipped_new)
    counts = {"refs": old["refs"] + new["refs"], "labels": dict(sorted(labels.items())),
              "anchors": old["anchors"] - len(dropped) + new["anchors"],
              "common_anchors_dropped": int(len(all_stop)),
              "known_human_anchors": int(np.count_nonzero(~in_sorted(human_all, all_stop))),
              "skipped": dict(skipped)}
    manifest = index_manifest(ix.params, counts, bool(m.get("stored_text")),
                              [*segs, {"prefix": prefix, "refs": new["refs"]}])
    manifest["created_at"] = m.get("created_at", manifest["created_at"])
    manifest["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    artifact.write_manifest(path, manifest, names, known=m["files"])
    return open_index(ix.location, verify=False)


def compact_index(index, *, memory: int = MEMORY) -> ReferenceIndex:
    """Rewrite an index of several segments (``index add``) as one, in place (written beside
    it and swapped in when complete); its queries give the same answers.

    Example:
        >>> index = compact_index("refs.index")  # doctest: +SKIP
    """
    ix = index if isinstance(index, ReferenceIndex) else open_index(index)
    return merge_indexes([ix], ix.location, replace=True, memory=memory)
