"""contamscan: find near-copies of known AI model outputs in training corpora.

Public API::

    import contamscan
    index = contamscan.build_index(["refs/"], "index/", label_field="model")
    report = contamscan.scan(["dataset/"], index="index/", out="scan-out/")
    print(report.totals["contamination_rate"], report.totals["ci95"])

``shingle_hash`` is the hash function that makes signatures interoperate with
``datasketch.MinHash(scheme="affine32", hashfunc=contamscan.shingle_hash)``.
"""

__version__ = "0.1.0"

from .config import IndexParams, ScanOptions  # noqa: E402
from .errors import ContamscanError  # noqa: E402
from .text import shingle_hash  # noqa: E402


# The functions are imported eagerly: a lazy ``contamscan.scan`` would be replaced by the
# submodule of the same name as soon as anything imported it.
from .index import ReferenceIndex, build_index, open_index  # noqa: E402
from .report import ScanReport  # noqa: E402
from .scan import scan  # noqa: E402

__all__ = ["build_index", "open_index", "scan", "ScanReport", "ReferenceIndex", "shingle_hash",
           "IndexParams", "ScanOptions", "ContamscanError", "__version__"]
