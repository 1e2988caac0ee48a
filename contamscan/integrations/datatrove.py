"""datatrove: a filter step that flags, annotates and (by default) drops documents holding a
copy of an indexed model output.

``ContamscanFilter("refs.index")`` in a pipeline sets ``doc.metadata["contamscan_label"]``,
``["contamscan_ref_id"]`` and ``["contamscan_containment"]`` (None when the document is not
flagged), drops flagged documents when ``drop`` (to the ``exclusion_writer``, with
``filter_reason`` "contamscan"), and counts, in the step's stats, ``contamscan_flagged`` and
``contamscan_flagged_<label>`` per model. Documents are matched ``batch_size`` at a time
(datatrove's ``filter_batch``). The step pickles as the index path and the options: each
task's process opens the index once.
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from ..api import Matcher, ScanOptions

REASON = "contamscan"


class ContamscanFilter(BaseFilter):
    """A datatrove filter: annotate documents with their strongest copied model output, and
    drop the flagged ones.

    Args:
        index_path: the index directory (a path or URI), or an opened index or :class:`~contamscan.Matcher`.
        exclusion_writer: a datatrove writer that receives the dropped documents.
        drop: drop flagged documents (False: annotate only, every document goes on).
        batch_size: documents matched together (one call of the matcher).
        options: the match rules (:class:`~contamscan.ScanOptions`; default a scan's).

    Raises:
        ContamscanError: as :class:`~contamscan.Matcher`, when the step is built.

    Example:
        >>> from datatrove.executor import LocalPipelineExecutor  # doctest: +SKIP
        >>> from datatrove.pipeline.readers import ParquetReader  # doctest: +SKIP
        >>> from datatrove.pipeline.writers import JsonlWriter  # doctest: +SKIP
        >>> LocalPipelineExecutor(pipeline=[ParquetReader("crawl/"),
        ...                                 ContamscanFilter("refs.index", exclusion_writer=JsonlWriter("removed/")),
        ...                                 JsonlWriter("clean/")], tasks=4).run()  # doctest: +SKIP
    """

    name = "🧪 contamscan"

    def __init__(self, index_path, exclusion_writer: DiskWriter | None = None, drop: bool = True,
                 batch_size: int = 512, options: ScanOptions | None = None):
        super().__init__(exclusion_writer, batch_size=batch_size)
        # opened here, so a bad index fails the pipeline before it starts; pickled, it is its path
        self.matcher = index_path if isinstance(index_path, Matcher) else Matcher(index_path, options)
        self.drop = drop

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        ann = self.matcher.annotate([doc.text for doc in batch])
        out = []
        for doc, flagged, label, ref_id, containment in zip(
                batch, *(ann.column(c).to_pylist() for c in ("flagged", "label", "ref_id", "containment"))):
            doc.metadata["contamscan_label"] = label
            doc.metadata["contamscan_ref_id"] = ref_id
            doc.metadata["contamscan_containment"] = containment
            if flagged:
                self.stat_update("contamscan_flagged", f"contamscan_flagged_{label}")
            out.append((False, REASON) if flagged and self.drop else True)
        return out
