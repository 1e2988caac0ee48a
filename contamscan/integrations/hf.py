"""Hugging Face ``datasets``: contamination columns added by ``Dataset.map``.

``ds.map(annotator("refs.index"), batched=True)`` adds, per row, ``contamscan_flagged``
(bool), ``contamscan_label``, ``contamscan_ref_id`` (the strongest flagging match's) and
``contamscan_containment`` (float); filter on them with ``ds.filter``. A row that is not
flagged has label and reference ``""`` and containment 0.0, not nulls: ``datasets`` types a
new column from the first batch written, and a batch with no flag would type it null, which a
later batch's strings cannot be written to. The function pickles as the index path and options (``num_proc`` workers
each open the index once) and hashes the same in every run, so ``datasets`` caches its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..api import Matcher, ScanOptions

COLUMNS = ("contamscan_flagged", "contamscan_label", "contamscan_ref_id", "contamscan_containment")


@dataclass(frozen=True)
class Annotator:
    """The function :func:`annotator` returns: a batch (a dict of columns) in, the four
    contamination columns out, as lists (no nulls: see the module's docstring)."""

    matcher: Matcher
    text_column: str = "text"
    # datasets fingerprints a map's function by pickling it: the matcher pickles as its path
    # and options, so the fingerprint is stable across runs
    columns: tuple = field(default=COLUMNS)

    def __call__(self, batch) -> dict:
        if self.text_column not in batch:
            raise KeyError(f"no column {self.text_column!r} in the dataset (its columns: {', '.join(batch.keys())}); "
                           "give annotator(..., text_column=NAME)")
        texts = batch[self.text_column]
        ann = self.matcher.annotate(texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else list(texts))
        flagged, label, ref_id, containment = self.columns
        return {flagged: ann.column("flagged").to_pylist(),
                label: pc.fill_null(ann.column("label"), "").to_pylist(),
                ref_id: pc.fill_null(ann.column("ref_id"), "").to_pylist(),
                containment: pc.fill_null(ann.column("containment"), 0.0).to_pylist()}


def annotator(index_path, text_column: str = "text", options: ScanOptions | None = None) -> Annotator:
    """A function for ``datasets.Dataset.map(..., batched=True)`` that adds contamination columns.

    Args:
        index_path: the index directory (a path or URI), or an opened index or :class:`~contamscan.Matcher`.
        text_column: the column holding the text.
        options: the match rules (:class:`~contamscan.ScanOptions`; default a scan's).

    Returns:
        An :class:`Annotator`: called with a batch (a dict of columns), it returns the columns
        ``contamscan_flagged``, ``contamscan_label``, ``contamscan_ref_id``, ``contamscan_containment``.

    Raises:
        ContamscanError: as :class:`~contamscan.Matcher` (not an index, a damaged one).

    Example:
        >>> from contamscan.integrations.hf import annotator  # doctest: +SKIP
        >>> ds = ds.map(annotator("refs.index", text_column="text"), batched=True, num_proc=4)  # doctest: +SKIP
        >>> clean = ds.filter(lambda flagged: not flagged, input_columns="contamscan_flagged")  # doctest: +SKIP
    """
    matcher = index_path if isinstance(index_path, Matcher) else Matcher(index_path, options)
    return Annotator(matcher, text_column)
