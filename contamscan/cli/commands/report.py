"""``contamscan report OUT`` and ``contamscan report --compare OLD NEW``."""

from __future__ import annotations

import click

from ...io import Location
from ...report.compare import compare_reports
from ...report.render.markdown import render_comparison
from ...report.render.terminal import console, print_comparison, print_summary
from ...report.write import read_report, rerender


class ExistingLocation(click.ParamType):
    """A path or URI that must exist (a local path, ``file://``, or object storage alike)."""

    name = "path"

    def convert(self, value, param, ctx):
        if not Location.of(value).exists():
            self.fail(f"{value!r} does not exist", param, ctx)
        return value


@click.command("report")
@click.argument("out", required=False, type=click.Path(file_okay=False))
@click.option("--compare", nargs=2, type=ExistingLocation(), metavar="OLD NEW", default=None,
              help="Compare two scans (output directories or report.json files): per-shard and per-model changes.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None,
              help="With --compare: also write the comparison as Markdown to FILE.")
def report_cmd(out, compare, markdown_path):
    """Render report.md and report.html of a scan's output directory OUT again, from its
    report.json, matches.parquet and evidence.parquet; or, with --compare OLD NEW, show what
    changed between two scans (a change is called out when the 95% interval of the
    difference of the rates excludes zero)."""
    if (out is None) == (compare is None):
        raise click.UsageError("give either OUT (re-render a report) or --compare OLD NEW")
    if markdown_path is not None and compare is None:
        raise click.UsageError("--markdown goes with --compare")
    if compare is None:
        print_summary(rerender(out).report, out)
        return
    cmp = compare_reports(read_report(compare[0]), read_report(compare[1]), *(Location.of(c).shown for c in compare))
    print_comparison(cmp, console())
    if markdown_path is not None:
        Location.of(markdown_path).write_atomic(render_comparison(cmp).encode())
        click.echo(f"comparison: {markdown_path}")
