"""contamscan: find near-copies of known AI model outputs in training corpora, and estimate
the share of AI-written text.

Example::

    import contamscan
    index = contamscan.build_index(["refs/"], "refs.index", label_field="model")
    report = contamscan.scan(["dataset/"], index, "scan-out")
    print(report.contamination_rate, report.totals["ci95"])

``shingle_hash`` is the hash function that makes signatures interoperate with
``datasketch.MinHash(scheme="affine32", hashfunc=contamscan.shingle_hash)``.
"""

from .api import *  # noqa: F401,F403  (the public API, documented in contamscan.api)
from .api import __all__, __version__  # noqa: F401
