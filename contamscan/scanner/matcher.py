"""Matching texts one call at a time, outside a scan: :class:`Matcher`, the per-text API that
the datatrove and datasets adapters and ``contamscan lookup`` use. It is a thin shell over
:func:`~contamscan.scanner.match.match_batch`, the function every scan calls on each batch,
so a text gets the same matches whichever way it is matched; :func:`annotations` turns a
batch's matches into one row per text, for :meth:`Matcher.annotate` and for the scan's
``--write-annotations`` files alike.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import ScanOptions
from ..errors import ContamscanError
from ..index import ReferenceIndex, open_index
from ..io import Location
from ..model import MATCH_SCHEMA, empty, flags, numpy_of
from ..sketch.minhash import Hasher
from .match import BatchMatches, match_batch

# Matcher.match's rows: MATCH_SCHEMA's, ``row`` the text's position in the call; no shard
# (there is none) and no turn (each text is matched whole)
MATCHER_SCHEMA = pa.schema([f for f in MATCH_SCHEMA if f.name not in ("shard", "turn")])

SPAN = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("ref_id", pa.string()), ("label", pa.string()),
                  ("containment", pa.float64()), ("turn", pa.int64())])
# one row per text (Matcher.annotate) or per input record (the scan's annotation files, which
# add the record's row and id): the strongest match that flags it, and every flagging span
ANNOTATION_SCHEMA = pa.schema([
    ("flagged", pa.bool_()),
    ("label", pa.string()),  # the strongest flagging match's (null: not flagged)
    ("ref_id", pa.string()),
    ("similarity", pa.float64()),
    ("containment", pa.float64()),
    ("kind", pa.string()),  # whole | partial
    ("sources", pa.int32()),  # flagging matches (references) of the text
    ("spans", pa.list_(SPAN)),  # each flagging match's span, in characters of the text (turn: per_turn)
    ("error", pa.string()),  # why the record is not a document (a bad record's reason), else null
])

# per process: indexes opened by path, with what their manifest was when opened (a rebuilt
# index is opened again), so that a Matcher unpickled for every task maps its index once
_opened: dict[str, tuple[object, ReferenceIndex, Hasher]] = {}
OPENS: Counter = Counter()  # indexes opened in this process, by path (what the tests count)


def check_expectations(index: ReferenceIndex, options: ScanOptions) -> None:
    """Fail when the scan asks for index parameters the index was not built with."""
    p = index.params
    for name, want, have in (("threshold", options.expect_threshold, p.threshold),
                             ("ngram", options.expect_ngram, p.ngram),
                             ("num_perm", options.expect_num_perm, p.num_perm)):
        if want is not None and want != have:
            raise ContamscanError(f"the index {index.shown} was built with {name} {have}, and this scan asks for "
                                  f"{want} (`expect_{name}`); rebuild the index with `{name}` {want} or drop the "
                                  "option")


def _stamp(index_path: str):
    """What tells a local index's manifest changed (a rebuild); None for a remote index,
    whose local copy is checked when it is opened."""
    loc = Location.of(index_path)
    if loc.remote:
        return None
    try:
        st = os.stat(os.path.join(loc.path, "manifest.json"))
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _cached(path: str, verify: bool, index: ReferenceIndex | None = None) -> tuple[ReferenceIndex, Hasher]:
    """The index at ``path``, opened once per process (``index``: already opened here)."""
    stamp = _stamp(path)
    hit = _opened.get(path)
    if hit is not None and hit[0] == stamp and (index is None or hit[1] is index):
        return hit[1], hit[2]
    if index is None:
        index = open_index(path, verify=verify)
        OPENS[path] += 1
    _opened[path] = (stamp, index, index.hasher())
    return index, _opened[path][2]


def _as_texts(texts) -> tuple[pa.Array, np.ndarray]:
    """Texts as an Arrow large string array without nulls (a null text is empty: it matches
    nothing), and which were null."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.large_string())
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise ContamscanError(f"texts must be strings, got {texts.type}")
    texts = texts.cast(pa.large_string())
    null = numpy_of(texts.is_null())
    if null.any():
        texts = pc.fill_null(texts, "")
    return texts, null


class Matcher:
    """Match texts against an index, one call at a time (inside a ``datasets.map``, a
    datatrove step, a Spark UDF, a worker pool). The index is opened once, memory-mapped;
    the matcher pickles as the index's path and its options, and an unpickled one opens
    the index once per process (later copies in that process reuse it). A text gets the
    same matches as in ``contamscan.scan``: both call the same function.

    Args:
        index_or_path: an opened :class:`~contamscan.index.ReferenceIndex`, or the path or
            URI of an index directory.
        options: the match rules and fields of :class:`~contamscan.config.ScanOptions`
            (``verify``, ``min_anchors``, ``min_words``, ``batch_bytes``, ``expect_*``);
            default ``ScanOptions()``, as a scan.

    Raises:
        ContamscanError: not an index, a damaged one, ``verify`` "exact" on an index without
            texts, or an ``expect_*`` option the index does not meet.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
        >>> import contamscan
        >>> work = tempfile.mkdtemp()
        >>> output = " ".join(f"step{i} of the answer" for i in range(200))  # what a model wrote
        >>> pq.write_table(pa.table({"id": ["r1"], "model": ["gpt-4o"], "text": [output]}), f"{work}/refs.parquet")
        >>> _ = contamscan.build_index([f"{work}/refs.parquet"], f"{work}/refs.index")
        >>> matcher = contamscan.Matcher(f"{work}/refs.index")
        >>> table = matcher.match(["A note on the weather, written by a person.", "Quoted: " + output])
        >>> table.select(["row", "ref_id", "label", "kind", "rank"]).to_pylist()
        [{'row': 1, 'ref_id': 'r1', 'label': 'gpt-4o', 'kind': 'whole', 'rank': 1}]
        >>> matcher.annotate([output, None, "no copy here"]).column("flagged").to_pylist()
        [True, False, False]
        >>> import pickle; pickle.loads(pickle.dumps(matcher)).match([output]).num_rows  # how workers get it
        1
    """

    def __init__(self, index_or_path, options: ScanOptions | None = None):
        self.options = options if options is not None else ScanOptions()
        if isinstance(index_or_path, ReferenceIndex):
            self.path = index_or_path.location.absolute().path
            self._index, self._hasher = _cached(self.path, False, index_or_path)
        else:
            self.path = Location.of(index_or_path).absolute().path
            self._index, self._hasher = _cached(self.path, True)
        if self.options.verify == "exact" and self._index.texts is None:
            raise ContamscanError(f"`verify` 'exact' compares texts, and the index {self._index.shown} does not "
                                  "store them; rebuild it with `store_text`")
        check_expectations(self._index, self.options)

    @property
    def index(self) -> ReferenceIndex:
        return self._index

    def __getstate__(self) -> dict:
        return {"path": self.path, "options": self.options}

    def __setstate__(self, state: dict) -> None:
        self.path, self.options = state["path"], state["options"]
        # the parent verified the checksums; a worker maps the same files (as the Ray executor does)
        self._index, self._hasher = _cached(self.path, False)

    def __repr__(self) -> str:
        return f"Matcher({self._index.shown!r})"

    def _batches(self, texts: pa.Array):
        """(first text, its matches) per slice of ``texts`` of about ``batch_bytes`` of text,
        as a scan cuts a shard: memory stays bounded whatever the call holds."""
        n = len(texts)
        sizes = numpy_of(pc.binary_length(texts)).astype(np.int64)
        start, cap = 0, self.options.batch_bytes
        cum = np.concatenate([[0], np.cumsum(sizes)])
        while start < n:
            stop = int(np.searchsorted(cum, cum[start] + cap, side="right")) - 1
            stop = min(max(stop, start + 1), n)
            yield start, match_batch(texts.slice(start, stop - start), self._index, self._hasher, self.options)
            start = stop

    def match(self, texts, ids=None) -> pa.Table:
        """The matches of ``texts``: one row per text that holds a copy of a reference, whole
        or in part, and one per other source it also holds (``rank`` 1 the strongest), as in
        matches.parquet; a match through text known to be human-written has ``kind``
        ``shared_with_known_human`` and flags nothing.

        Args:
            texts: a sequence of ``str`` (``None`` matches nothing), or an Arrow string array.
            ids: optional ids of the texts (a sequence or an Arrow array), copied into ``doc_id``.

        Returns:
            A ``pyarrow.Table`` of :data:`MATCHER_SCHEMA`: ``row`` (the text's position in
            ``texts``), ``doc_id, ref_id, label, similarity, containment, char_start, char_end,
            kind, ambiguous, alt_ref_id, alt_label, rank``; rows in text order.

        Example:
            >>> Matcher("refs.index").match(["a text"], ids=["doc-1"])  # doctest: +SKIP
        """
        arr, _ = _as_texts(texts)
        id_arr = None
        if ids is not None:
            id_arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids))
            id_arr = id_arr.cast(pa.string())
            if len(id_arr) != len(arr):
                raise ContamscanError(f"{len(id_arr)} ids for {len(arr)} texts")
        parts = []
        for start, m in self._batches(arr):
            if not len(m.hit):
                continue
            t = m.table
            if id_arr is not None:
                t = t.set_column(t.schema.get_field_index("doc_id"), "doc_id", id_arr.take(pa.array(m.hit + start)))
            parts.append(t.add_column(0, "row", pa.array(m.hit + start, pa.int64())))
        if not parts:
            return empty(MATCHER_SCHEMA)
        return pa.concat_tables(parts).cast(MATCHER_SCHEMA)

    def annotate(self, texts) -> pa.Table:
        """One row per text (:data:`ANNOTATION_SCHEMA`): whether it is flagged, the label,
        reference, similarity, containment and kind of its strongest flagging match, the
        number of flagging sources and their spans (``error`` is ``text_null`` for a None).

        Args:
            texts: a sequence of ``str`` (``None``: not flagged), or an Arrow string array.

        Returns:
            A ``pyarrow.Table`` with exactly ``len(texts)`` rows, in order.

        Example:
            >>> Matcher("refs.index").annotate(ds["text"]).column("flagged")  # doctest: +SKIP
        """
        arr, null = _as_texts(texts)
        parts = [annotations(m, arr.slice(start, len(m.invalid))) for start, m in self._batches(arr)]
        table = pa.concat_tables(parts) if parts else empty(ANNOTATION_SCHEMA)
        if null.any():
            error = pc.if_else(pa.array(null), pa.scalar("text_null"), table.column("error"))
            table = table.set_column(table.schema.get_field_index("error"), "error", error)
        return table


def annotations(m: BatchMatches, texts: pa.Array, records: np.ndarray | None = None,
                turns: np.ndarray | None = None) -> pa.Table:
    """One row per text of a batch (or, with ``records``, per record: ``records[i]`` is the
    record of text i, texts of a record in a row, e.g. turns) from its matches: flagged, the
    strongest flagging match (rows are by text, strongest first), every flagging span (a
    whole-document match without anchors spans the whole text). Invalid UTF-8 is an
    ``error``. The same rows for :meth:`Matcher.annotate` and the scan's annotation files."""
    n_texts = len(texts)
    if records is None:
        records = np.arange(n_texts, dtype=np.int64)
    uniq, rec_of_text = np.unique(records, return_inverse=True)
    n = len(uniq)
    bad = np.zeros(n, np.bool_)  # a record with invalid UTF-8 (in any of its turns) is not a document
    bad[rec_of_text[m.invalid]] = True
    counted = flags(m.table) if len(m.hit) else np.zeros(0, np.bool_)
    keep = np.flatnonzero(counted & ~bad[rec_of_text[m.hit]]) if len(m.hit) else np.zeros(0, np.int64)
    t = m.table.take(pa.array(keep, pa.int64()))
    hit = m.hit[keep]
    rec = rec_of_text[hit]  # sorted: texts of a record are adjacent, rows by text
    first = np.flatnonzero(np.append(True, rec[1:] != rec[:-1])) if len(rec) else np.zeros(0, np.int64)
    flagged = np.zeros(n, np.bool_)
    flagged[rec[first]] = True
    at = np.full(n, -1, np.int64)
    at[rec[first]] = first
    take = pa.array(np.where(at >= 0, at, 0), pa.int64())
    mask = pa.array(at < 0)

    def strongest(name):
        if not len(t):
            return pa.nulls(n, t.schema.field(name).type)
        col = t.column(name).combine_chunks()
        return pc.if_else(mask, pa.scalar(None, col.type), col.take(take))

    # spans: a whole-document match without a span (a text too short for anchors) covers the text
    start = numpy_of(t.column("char_start")) if len(t) else np.zeros(0)
    end = numpy_of(t.column("char_end")) if len(t) else np.zeros(0)
    no_span = np.isnan(start.astype(np.float64)) if len(t) else np.zeros(0, np.bool_)
    if no_span.any():
        chars = numpy_of(pc.utf8_length(texts)).astype(np.int64)
        start = np.where(no_span, 0, np.nan_to_num(start.astype(np.float64))).astype(np.int64)
        end = np.where(no_span, chars[hit], np.nan_to_num(end.astype(np.float64))).astype(np.int64)
    turn = pa.array(turns[hit], pa.int64(), mask=turns[hit] < 0) if turns is not None else pa.nulls(len(t), pa.int64())
    span_values = pa.StructArray.from_arrays(
        [pa.array(np.asarray(start, np.int64)), pa.array(np.asarray(end, np.int64)),
         t.column("ref_id").combine_chunks() if len(t) else pa.array([], pa.string()),
         t.column("label").combine_chunks() if len(t) else pa.array([], pa.string()),
         t.column("containment").combine_chunks() if len(t) else pa.array([], pa.float64()), turn],
        fields=list(SPAN))
    offsets = np.searchsorted(rec, np.arange(n + 1)).astype(np.int32)
    return pa.table({
        "flagged": pa.array(flagged),
        "label": strongest("label"),
        "ref_id": strongest("ref_id"),
        "similarity": strongest("similarity"),
        "containment": strongest("containment"),
        "kind": strongest("kind"),
        "sources": pa.array(np.diff(offsets), pa.int32()),
        "spans": pa.ListArray.from_arrays(pa.array(offsets), span_values),
        "error": pa.array(np.where(bad, "invalid_utf8", None).tolist(), pa.string()),
    }, schema=ANNOTATION_SCHEMA)


LOOKUP_FIELDS = ("ref_id", "label", "similarity", "containment", "char_start", "char_end")


def lookup(index, text: str, options: ScanOptions | None = None) -> list[dict]:
    """The references one text holds a copy of, whole or in part, and where: what
    ``contamscan lookup`` prints.

    Args:
        index: an opened :class:`~contamscan.index.ReferenceIndex`, its path or URI, or a
            :class:`Matcher`.
        text: the text.
        options: the match rules (:class:`~contamscan.config.ScanOptions`; default a scan's).

    Returns:
        A list of ``{ref_id, label, similarity, containment, char_start, char_end}``, the
        strongest first (a copy of two models' outputs has two); empty when the text holds
        no copy (matches through known human text flag nothing and are left out).

    Raises:
        ContamscanError: as :class:`Matcher`.

    Example:
        >>> lookup("refs.index", open("suspect.txt").read())  # doctest: +SKIP
        [{'ref_id': 'r1', 'label': 'gpt-4o', 'similarity': 0.97, 'containment': 1.0, 'char_start': 0, 'char_end': 812}]
    """
    matcher = index if isinstance(index, Matcher) else Matcher(index, options)
    table = matcher.match([text])
    table = table.filter(pa.array(flags(table))) if len(table) else table
    return table.select(list(LOOKUP_FIELDS)).to_pylist()
