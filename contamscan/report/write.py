"""A scan's output files: written at the end of a scan (each atomically, ``report.json``
last), read back (``contamscan report OUT``, :class:`ScanReport`), and re-rendered."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ContamscanError, FailedShardsError, GateError, NoDocumentsError
from ..io import Location
from ..model import EVIDENCE_SCHEMA, MATCH_SCHEMA, empty, read_parquet
from .build import match_kinds
from .render.html import render_html
from .render.markdown import render_markdown

FINAL_OUTPUTS = ("report.json", "report.md", "matches.parquet", "evidence.parquet", "report.html")
REPORT = "report.json"
MATCH_GROUP_ROWS = 65_536  # rows per row group of matches.parquet: a write per shard cost ~1 ms each


def write_outputs(out, report: dict, match_tables, evidence: pa.Table | None = None) -> None:
    """report.json, matches.parquet, evidence.parquet, report.md and report.html in the local
    directory ``out``, each written atomically, report.json last. matches.parquet is
    ``match_tables`` (an iterable of the shards' matches, in order, e.g. a generator reading
    them from files) written one table at a time: a scan's matches are never all in memory."""
    out = Location.of(out)
    out.mkdir()
    evidence = evidence if evidence is not None else empty(EVIDENCE_SCHEMA)
    kinds = Counter()

    def matches():  # the shards' tables gathered into row groups of MATCH_GROUP_ROWS or so
        group, rows = [], 0
        for t in match_tables:
            t = t.cast(MATCH_SCHEMA)
            kinds.update(match_kinds([t]))  # for the model chart, as the tables go by
            group.append(t)
            rows += t.num_rows
            if rows >= MATCH_GROUP_ROWS:
                yield pa.concat_tables(group)
                group, rows = [], 0
        if group:
            yield pa.concat_tables(group)

    out.join("matches.parquet").write_table_atomic(matches(), MATCH_SCHEMA)
    out.join("evidence.parquet").write_table_atomic(evidence)
    out.join("report.md").write_atomic(render_markdown(report).encode())
    out.join("report.html").write_atomic(render_html(report, kinds, evidence).encode())
    out.join(REPORT).write_atomic((json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())


def read_report(path) -> dict:
    """report.json of an output directory (or the file itself), local or remote.

    Args:
        path: a scan's output directory, or its report.json.

    Returns:
        report.json as a dict.

    Raises:
        ContamscanError: no report there, or not a contamscan report.

    Example:
        >>> read_report("scan-out")["totals"]["contamination_rate"]  # doctest: +SKIP
        0.0759
    """
    loc = Location.of(path)
    file = loc if loc.name.endswith(".json") and not loc.is_dir() else loc.join(REPORT)
    if not file.exists():
        raise ContamscanError(f"no report.json in {loc.shown}: is it the output directory of a finished scan?")
    try:
        report = json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ContamscanError(f"cannot read {file.shown}: {err}") from None
    except ContamscanError as err:
        raise ContamscanError(f"cannot read {file.shown}: {err}") from None
    if not isinstance(report, dict) or not {"totals", "shards", "index"} <= set(report):
        raise ContamscanError(f"{file.shown} is not a contamscan report")
    return report


def _batches(f: pq.ParquetFile, columns: list[str]):
    """Record batches of the ``columns`` the file has (an older output may lack some)."""
    return f.iter_batches(columns=[c for c in columns if c in f.schema_arrow.names])


def _read_parquet(loc: Location, read):
    """``read`` applied to a Parquet file; None if there is no such file."""
    if not loc.exists():
        return None
    f = loc.open_random()
    try:
        return read(f)
    except (OSError, pa.ArrowException) as err:
        raise ContamscanError(f"cannot read {loc.shown}: {err}") from None
    finally:
        f.close()


@dataclass(frozen=True)
class Outputs:
    report: dict
    kinds: Counter | None  # flagged documents per (label, kind) in matches.parquet; None: the file is missing
    evidence: pa.Table | None


def read_outputs(out) -> Outputs:
    """report.json, the model chart's counts of matches.parquet and evidence.parquet of ``out``."""
    loc = Location.of(out)
    report = read_report(loc)
    kinds = _read_parquet(loc.join("matches.parquet"),
                          lambda f: match_kinds(_batches(pq.ParquetFile(f), ["label", "kind", "row", "rank"])))
    return Outputs(report, kinds, _read_parquet(loc.join("evidence.parquet"), read_parquet))


def rerender(out) -> Outputs:
    """Write report.md and report.html of ``out`` again from its data files (each replaced whole).

    Args:
        out: a scan's output directory (a path or a URI).

    Returns:
        What was read: the report, the flagged documents per (label, kind), the evidence table.

    Raises:
        ContamscanError: no report there, or an unreadable data file.

    Example:
        >>> rerender("scan-out").report["totals"]["documents"]  # doctest: +SKIP
        2280
    """
    loc = Location.of(out)
    o = read_outputs(loc)
    loc.join("report.md").write_atomic(render_markdown(o.report).encode())
    loc.join("report.html").write_atomic(render_html(o.report, o.kinds, o.evidence).encode())
    return o


@dataclass(frozen=True)
class ScanReport:
    """The result of a scan: ``data`` is exactly what report.json holds.

    Example:
        >>> report = contamscan.scan(["crawl/"], "refs.index", "scan-out")  # doctest: +SKIP
        >>> report.contamination_rate, report.totals["ci95"]  # doctest: +SKIP
        (0.0759, [0.0657, 0.0875])
    """

    data: dict
    out: str | None  # the output directory (a path or a URI), if the scan wrote one

    @property
    def totals(self) -> dict:
        return self.data["totals"]

    @property
    def shards(self) -> list[dict]:
        return self.data["shards"]

    @property
    def contamination_rate(self) -> float:
        return self.totals["contamination_rate"]

    @property
    def failed_shards(self) -> list[str]:
        return [s["shard"] for s in self.shards if s["status"] == "failed"]

    @property
    def failed_inputs(self) -> list[str]:
        """Input paths that could not be read (a directory that cannot be listed): failed
        inputs, which fail the scan as failed shards do (report.json's ``failed_inputs``)."""
        return [s["path"] for s in self.totals["errors"].get("failed_inputs", [])]

    @property
    def unreadable(self) -> list[str]:
        """Input paths that discovery skipped because they could not be read or led nowhere
        (failed inputs, broken links, symbolic-link loops; not unknown extensions, excludes or
        non-data directories): no gate passes with one."""
        return [s["path"] for s in self.totals["errors"]["skipped_files"]
                if s["reason"].startswith(("unreadable", "broken symlink", "vanished", "symlink loop"))]

    def shards_above(self, rate: float) -> list[str]:
        """Shards whose contamination rate is above ``rate`` (a per-shard gate)."""
        return [s["shard"] for s in self.shards if s["status"] == "ok" and s["contamination_rate"] > rate]

    def matches(self) -> pa.Table:
        """matches.parquet: one row per flagged document."""
        return self._table("matches.parquet")

    def evidence(self) -> pa.Table:
        """The top matches of every shard with document and reference excerpts (evidence.parquet)."""
        return self._table("evidence.parquet")

    def _table(self, name: str) -> pa.Table:
        if self.out is None:
            raise ContamscanError("the scan wrote no output directory")
        return _read_parquet(Location.of(self.out).join(name), read_parquet)

    def check(self, fail_above: float | None = None, fail_above_shard: float | None = None) -> None:
        """Raise when the scan should fail a pipeline step: :class:`~contamscan.errors.FailedShardsError`
        (exit status 3) when shards failed or inputs could not be read (a directory that cannot
        be listed), or, with a gate, when input paths led nowhere (a broken link);
        else :class:`~contamscan.errors.NoDocumentsError` (exit status 5) when the scan read no
        document at all; else :class:`~contamscan.errors.GateError` (exit status 4) when the
        dataset's rate is above ``fail_above`` or a shard's above ``fail_above_shard``.

        Args:
            fail_above: the highest acceptable contamination rate of the dataset (a fraction).
            fail_above_shard: the same, for every shard.
        """
        if self.failed_shards or self.failed_inputs:
            raise FailedShardsError(self.failed_shards, failed_inputs=self.failed_inputs)
        gated = fail_above is not None or fail_above_shard is not None
        if gated and self.unreadable:
            raise FailedShardsError([], self.unreadable)
        if not self.totals["documents"]:
            raise NoDocumentsError(len(self.shards))
        above = self.shards_above(fail_above_shard) if fail_above_shard is not None else []
        rate = self.contamination_rate
        if fail_above is not None and rate > fail_above:
            message = f"contamination rate {rate:.4%} is above `fail_above` {fail_above:.4%}"
        elif above:
            message = f"{len(above)} shard(s) above `fail_above_shard` {fail_above_shard:.4%}: {', '.join(above[:5])}"
        else:
            return
        raise GateError(message, rate=rate, fail_above=fail_above, fail_above_shard=fail_above_shard,
                                    shards_above=above)
