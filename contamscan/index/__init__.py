"""Reference indexes: the on-disk format (:mod:`.format`), the query kernels (:mod:`.kernels`),
the opened index (:mod:`.reference`), and building, merging and adding (:mod:`.build`)."""

from .build import add_to_index, build_index, compact_index, merge_indexes
from .format import open_index
from .reference import IndexSummary, PartialResult, QueryResult, ReferenceIndex

__all__ = ["ReferenceIndex", "IndexSummary", "QueryResult", "PartialResult", "build_index", "open_index",
           "merge_indexes", "add_to_index", "compact_index"]
