"""``contamscan scan``."""

from __future__ import annotations

import json
import signal
import sys

import click

from ...config import ScanOptions
from ...errors import ContamscanError, Interrupted
from ...report.render.terminal import print_summary, summary_json
from ...scanner.run import scan
from ..options import config_option, dataclass_from, dataclass_options, spelled
from ..progress import ProgressBar, log


@click.command("scan")
@config_option
@click.argument("dataset", nargs=-1, required=True)
@click.option("--index", "index_path", required=True, type=click.Path(), help="Index directory from `index build`.")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Output directory for report.json, report.html, report.md, matches.parquet and evidence.parquet "
                   "(never scanned).")
@click.option("--fail-above", type=float, default=None,
              help="Exit with status 4 when the dataset's contamination rate is above RATE (a fraction, e.g. 0.01).")
@click.option("--fail-above-shard", type=float, default=None,
              help="Exit with status 4 when any shard's contamination rate is above RATE.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary (totals, each shard, flagged documents by model) as JSON on stdout instead of "
                   "the tables.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted scan into the same output directory (same inputs, index and options).")
@dataclass_options(ScanOptions)
@click.pass_context
def scan_cmd(ctx, dataset, index_path, out, fail_above, fail_above_shard, as_json, resume, **params):
    """Scan DATASET files, directories (recursively) or globs against an index.

    Any path (DATASET, --index, -o, --write-clean, --write-flagged, --profile) can be a URI:
    s3://bucket/crawl/, gs://, hdfs://, abfs://, with options in the query string
    (?endpoint_override=HOST:PORT&scheme=http); see "Remote paths" in the README."""
    for name, rate in (("fail_above", fail_above), ("fail_above_shard", fail_above_shard)):
        if rate is not None and not 0 <= rate <= 1:
            raise ContamscanError(f"`{name}` must be a fraction between 0 and 1, got {rate}")
    options = dataclass_from(ScanOptions, params)
    json_log = ctx.find_root().params.get("log_format") == "json"

    def events(name: str, fields: dict) -> None:
        if fields.get("error"):  # a shard's reason, with options spelled as flags
            fields = {**fields, "error": spelled(fields["error"])}
        if name == "scan_started":
            progress.shards_total = fields["pieces"] - fields["resumed_shards"]
        elif name == "shard_finished":
            progress.shard_finished()
        text = None
        if name == "shard_finished" and not sys.stderr.isatty():  # a log, not a terminal: a line per shard
            text = (f"{fields['shard']}: {fields['status']}, {fields['documents']:,} documents, "
                    f"{fields['flagged_documents']:,} flagged" + (f" ({fields['error']})" if fields["error"] else ""))
        log(ctx, name, fields, text)

    progress = ProgressBar("scanning")
    try:
        report = scan(list(dataset), index_path, out, options, progress=None if json_log else progress,
                      resume=resume, events=events)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the finished shards are on disk
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        raise Interrupted(signum, f"the finished shards are kept in {out}; continue with --resume") from None
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(summary_json(report.data), indent=2, ensure_ascii=False))
    elif not json_log:
        print_summary(report.data, out)
    report.check(fail_above, fail_above_shard)  # FailedShardsError, NoDocumentsError or GateError end the command
