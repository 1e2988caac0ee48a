"""The documented public API; ``contamscan/__init__.py`` re-exports it, and the CLI is a thin
shell over it.

Example:
    >>> import contamscan
    >>> index = contamscan.build_index(["refs/"], "refs.index", label_field="model")  # doctest: +SKIP
    >>> report = contamscan.scan(["crawl/"], index, "scan-out", contamscan.ScanOptions(workers=8))  # doctest: +SKIP
    >>> report.contamination_rate, report.totals["ci95"], report.totals["by_label"]  # doctest: +SKIP
    >>> matcher = contamscan.Matcher(index)  # doctest: +SKIP
    >>> matcher.match(["text one", "text two"])  # doctest: +SKIP
    >>> contamscan.query_matches("scan-out", label="gpt-4o").collect()  # doctest: +SKIP
"""

from __future__ import annotations

from .config import BuildOptions, IndexParams, ProfileBuildOptions, ProfileParams, ScanOptions
from .errors import ContamscanError, FailedShardsError, GateError, NoDocumentsError
from .index import ReferenceIndex, add_to_index, build_index, merge_indexes, open_index
from .report.compare import compare_reports
from .report.query import query_matches
from .report.write import ScanReport, read_report, rerender
from .scanner.matcher import Matcher, lookup
from .scanner.run import scan
from .sketch.text import shingle_hash
from .style import Profile, build_profile, open_profile
from .version import __version__

__all__ = ["build_index", "open_index", "merge_indexes", "add_to_index", "scan", "build_profile", "open_profile",
           "read_report", "rerender", "compare_reports", "query_matches", "lookup", "shingle_hash", "Matcher",
           "ReferenceIndex", "ScanReport", "Profile",
           "IndexParams", "BuildOptions", "ScanOptions", "ProfileParams", "ProfileBuildOptions", "ContamscanError",
           "FailedShardsError", "GateError", "NoDocumentsError", "__version__"]
