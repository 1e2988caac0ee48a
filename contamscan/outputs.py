"""A scan's output directory read back: re-render report.md and report.html from
report.json, matches.parquet and evidence.parquet (``contamscan report OUT``). A remote
output (a URI, :mod:`contamscan.storage`) is read and written in place."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .errors import ContamscanError


@dataclass(frozen=True)
class Outputs:
    report: dict
    kinds: Counter | None  # flagged documents per (label, kind) in matches.parquet; None: the file is missing
    evidence: pa.Table | None


def read_report(path) -> dict:
    """report.json of an output directory (or the file itself)."""
    path = storage.localize(path)
    if storage.is_remote(path):
        return _read_remote_report(path)
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContamscanError(f"no report.json in {path}: is it the output directory of a finished scan?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ContamscanError(f"cannot read {file}: {err}") from None
    if not isinstance(report, dict) or not {"totals", "shards", "index"} <= set(report):
        raise ContamscanError(f"{file} is not a contamscan report")
    return report


def _read_remote_report(path: str) -> dict:
    file = path if storage.basename(path).endswith(".json") else storage.join(path, "report.json")
    try:
        data = storage.read_bytes(file)
    except ContamscanError:
        if not storage.exists(file):
            raise ContamscanError(f"no report.json in {storage.display(path)}: is it the output directory of a "
                                  "finished scan?") from None
        raise
    try:
        report = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ContamscanError(f"cannot read {storage.display(file)}: {err}") from None
    if not isinstance(report, dict) or not {"totals", "shards", "index"} <= set(report):
        raise ContamscanError(f"{storage.display(file)} is not a contamscan report")
    return report


def _read_parquet(path: Path | str, read):
    """``read`` applied to a Parquet file (local or remote); None if there is no such file."""
    if storage.is_remote(path):
        if not storage.exists(path):
            return None
        f = storage.open_input_file(path)
        try:
            return read(f)
        except (OSError, pa.ArrowException) as err:
            raise ContamscanError(f"cannot read {storage.display(path)}: {err}") from None
        finally:
            f.close()
    if not path.exists():
        return None
    try:
        return read(path)
    except (OSError, pa.ArrowException) as err:
        raise ContamscanError(f"cannot read {path}: {err}") from None


def _table(path: Path | str) -> pa.Table | None:
    return _read_parquet(path, pq.read_table)


def _kinds(path: Path | str) -> Counter | None:
    """:func:`contamscan.report_html.match_kinds` of a matches.parquet, read batch by batch."""
    from .report_html import match_kinds

    return _read_parquet(path, lambda f: match_kinds(pq.ParquetFile(f).iter_batches(columns=["label", "kind", "row"])))


def read_outputs(out) -> Outputs:
    out = storage.localize(out)
    if storage.is_remote(out):
        return Outputs(read_report(out), _kinds(storage.join(out, "matches.parquet")),
                       _table(storage.join(out, "evidence.parquet")))
    out = Path(out)
    report = read_report(out)
    return Outputs(report, _kinds(out / "matches.parquet"), _table(out / "evidence.parquet"))


def rerender(out) -> Outputs:
    """Write report.md and report.html of ``out`` again from its data files (atomically)."""
    from .report import atomic_write_bytes, render_markdown
    from .report_html import render_html

    out = storage.localize(out)
    if storage.is_remote(out):  # each object is replaced whole
        o = read_outputs(out)
        storage.write_bytes(storage.join(out, "report.md"), render_markdown(o.report).encode())
        storage.write_bytes(storage.join(out, "report.html"), render_html(o.report, o.kinds, o.evidence).encode())
        return o
    out = Path(out)
    o = read_outputs(out)
    atomic_write_bytes(out / "report.md", render_markdown(o.report).encode())
    atomic_write_bytes(out / "report.html", render_html(o.report, o.kinds, o.evidence).encode())
    return o


__all__ = ["Outputs", "read_report", "read_outputs", "rerender"]
