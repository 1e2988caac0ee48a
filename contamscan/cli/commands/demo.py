"""``contamscan demo``: a generated workspace, indexed and scanned."""

from __future__ import annotations

from pathlib import Path

import click

from ...config import ScanOptions
from ...demo import make_demo_workspace
from ...index import build_index
from ...report.render.terminal import print_summary
from ...scanner.run import scan
from ..progress import ProgressBar
from .index import print_index


@click.command("demo")
@click.argument("out", default="contamscan-demo", required=False)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes for the scan.")
def demo_cmd(out, workers):
    """Generate a demo workspace in OUT (references, a dataset with planted copies in several
    formats), build the index, scan, and print the summary. Needs no data or network."""
    ws = make_demo_workspace(Path(out))
    click.echo(f"demo workspace: {ws.root}  (references: {ws.references}, dataset: {ws.dataset})")
    index = build_index([str(ws.references)], ws.root / "index", label_field="model", store_text=True)
    print_index(index.summary())
    click.echo("")
    progress = ProgressBar("scanning")
    try:
        report = scan([str(ws.dataset)], index, ws.root / "scan", ScanOptions(workers=workers), progress=progress)
    finally:
        progress.close()
    print_summary(report.data, ws.root / "scan")
    click.echo(f"planted copies and bad records are listed in {ws.truth}")
