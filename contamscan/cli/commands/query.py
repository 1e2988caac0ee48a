"""``contamscan matches OUT`` (which documents match a model, a reference, shards) and
``contamscan lookup INDEX TEXT`` (which references one text holds a copy of)."""

from __future__ import annotations

import io
import json
import sys

import click

from ...config import ScanOptions
from ...errors import ContamscanError
from ...io import Location
from ...report.query import query_matches
from ...report.render.terminal import console, rows_table
from ...scanner.matcher import LOOKUP_FIELDS, lookup

TABLE_COLUMNS = ["shard", "row", "doc_id", "label", "ref_id", "similarity", "containment", "kind", "rank"]


def _emit(data: bytes, output: str | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Location.of(output).write_atomic(data)


@click.command("matches")
@click.argument("out", type=click.Path())
@click.option("--label", default=None, help="Only matches of this model label.")
@click.option("--ref", "ref_id", default=None, help="Only matches of this reference id.")
@click.option("--shard", default=None, metavar="GLOB", help="Only shards whose relative path matches GLOB (* crosses /).")
@click.option("--min-similarity", type=float, default=None, help="Only matches with at least this estimated Jaccard similarity.")
@click.option("--include-known-human", is_flag=True,
              help="Also the matches through known human text (kind shared_with_known_human), which flag nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "parquet", "csv"]), default="table", show_default=True,
              help="table: on the terminal (the first --limit rows); json: a list of rows; parquet, csv: a file.")
@click.option("--limit", type=int, default=None, help="At most N rows (table: default 50).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write to FILE instead of stdout (parquet needs it on a terminal).")
def matches_cmd(out, label, ref_id, shard, min_similarity, include_known_human, fmt, limit, output):
    """The rows of OUT/matches.parquet (OUT: a scan's output directory) that match the filters:
    which documents hold a copy of this model's outputs, of this reference, in these shards.
    Read lazily (only what the filters need)."""
    frame = query_matches(out, label=label, ref_id=ref_id, shard=shard, min_similarity=min_similarity,
                          flagging_only=not include_known_human)
    if fmt == "table":
        n = limit if limit is not None else 50
        head = frame.head(n + 1).collect()
        import polars as pl  # noqa: PLC0415 (the matches query's; a scan needs no polars)

        total = frame.select(pl.len()).collect().item() if len(head) > n else len(head)
        console().print(rows_table(head.head(n).to_dicts(), TABLE_COLUMNS, more=total - min(n, len(head))))
        return
    if limit is not None:
        frame = frame.head(limit)
    df = frame.collect()
    if fmt == "json":
        _emit((json.dumps(df.to_dicts(), ensure_ascii=False, indent=1) + "\n").encode(), output)
    elif fmt == "csv":
        _emit(df.write_csv().encode(), output)
    else:
        if output is None and sys.stdout.isatty():
            raise ContamscanError("--format parquet writes binary: give -o FILE or redirect stdout")
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd")
        _emit(buf.getvalue(), output)


@click.command("lookup")
@click.argument("index", type=click.Path())
@click.argument("text", required=False, default="-")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: a list of {ref_id, label, similarity, containment, char_start, char_end}.")
def lookup_cmd(index, text, fmt):
    """Which references of INDEX the TEXT holds a copy of (whole or in part), and where
    (the span in characters). TEXT "-" (the default) reads the text from stdin. Exit status
    0 either way; an empty list (json) or "no match" when it holds none."""
    if text == "-":
        text = sys.stdin.read()
    found = lookup(index, text, ScanOptions())
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False))
    elif not found:
        click.echo("no match")
    else:
        console().print(rows_table(found, list(LOOKUP_FIELDS)))
