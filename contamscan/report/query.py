"""Questions asked of a finished scan's matches.parquet: which documents match this model,
this reference, these shards. Read lazily with polars (only the row groups and columns a
question needs), in the parent process (never in a forked worker)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ContamscanError
from ..io import Location

if TYPE_CHECKING:
    import polars as pl


def glob_regex(pattern: str) -> str:
    """A shard glob as an anchored regular expression (``*`` crosses ``/``, as ``exclude``
    globs do; ``?`` one character; ``[...]`` a class)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (j := pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)) > 0:
            body = pattern[i + 1:j]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "^" + "".join(out) + "$"


def query_matches(out, label: str | None = None, ref_id: str | None = None, shard: str | None = None,
                  min_similarity: float | None = None, flagging_only: bool = True) -> pl.LazyFrame:
    """The rows of a scan's matches.parquet that answer a question, as a polars LazyFrame
    (nothing is read until it is collected; filters are pushed down to the Parquet scan).

    Args:
        out: the scan's output directory (a path or a URI), or its matches.parquet.
        label: only matches of this model label.
        ref_id: only matches of this reference.
        shard: only shards whose relative path matches this glob (``web/*``; ``*`` crosses ``/``).
        min_similarity: only matches with at least this estimated Jaccard similarity.
        flagging_only: leave out the matches through known human text (which flag nothing).

    Returns:
        A ``polars.LazyFrame`` of matches.parquet's columns, in its order (shard, row, rank).

    Raises:
        ContamscanError: no matches.parquet there.

    Example:
        >>> query_matches("scan-out", label="gpt-4o", shard="web/*").collect()  # doctest: +SKIP
    """
    import polars as pl  # noqa: PLC0415 (only these queries need polars, not a scan)

    loc = Location.of(out)
    file = loc if loc.name.endswith(".parquet") else loc.join("matches.parquet")
    if not file.exists():
        raise ContamscanError(f"no matches.parquet in {loc.shown}: is it the output directory of a finished scan?")
    if file.remote:  # polars reads object stores with its own clients: read it through ours
        frame = pl.read_parquet(file.read_bytes()).lazy()
    else:
        frame = pl.scan_parquet(file.path)
    if flagging_only:
        frame = frame.filter(pl.col("kind") != "shared_with_known_human")
    if label is not None:
        frame = frame.filter(pl.col("label") == label)
    if ref_id is not None:
        frame = frame.filter(pl.col("ref_id") == ref_id)
    if shard is not None:
        frame = frame.filter(pl.col("shard").str.contains(glob_regex(shard)))
    if min_similarity is not None:
        frame = frame.filter(pl.col("similarity") >= min_similarity)
    return frame
