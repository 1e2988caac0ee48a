"""Command line: parse, call the Python API, render. No logic of its own.

Exit status: 0 success; 1 error (bad arguments, bad input, bad index); 2 usage error;
3 the scan finished but some shards could not be read; 4 the contamination rate is above
``--fail-above``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import __version__
from .config import IndexParams, ScanOptions
from .errors import ContamscanError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILED_SHARDS, EXIT_GATE = 0, 1, 2, 3, 4
MAX_SHARD_ROWS = 40


class _Progress:
    """Documents and MB/s on a terminal (stderr); silent when stderr is not one."""

    def __init__(self, label: str):
        self.label, self.total_bytes = label, None
        self.docs = self.bytes = 0
        self.t0 = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(label, total=None, info="")
            self._bar.start()

    def __call__(self, docs: int, nbytes: int) -> None:
        self.docs += docs
        self.bytes += nbytes
        if self._bar is not None:
            rate = self.bytes / max(time.perf_counter() - self.t0, 1e-9) / 1e6
            self._bar.update(self._task, completed=self.bytes, total=self.total_bytes,
                             info=f"{self.docs:,} docs  {rate:,.1f} MB/s")

    def batch(self, b) -> None:
        """Count a Batch that was read (its records, good and bad, and its bytes on disk)."""
        self(b.n_records, b.raw_bytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _console():
    from rich.console import Console

    # not on a terminal (a log, a pipe): wide enough that tables do not wrap
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _fail(ctx: click.Context, err: Exception):
    if ctx.find_root().params.get("debug"):
        raise err
    _log(ctx, "error", {"message": str(err)}, f"error: {err}")
    ctx.exit(EXIT_ERROR)


def _log(ctx: click.Context, event: str, fields: dict, text: str | None) -> None:
    """One event on stderr: a JSON line with --log-format json, else ``text`` (if any)."""
    if ctx.find_root().params.get("log_format") == "json":
        from datetime import datetime, timezone

        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        click.echo(json.dumps(record, ensure_ascii=False, default=str), err=True)
    elif text is not None:
        click.echo(text, err=True)


def _load_config(ctx: click.Context, param: click.Parameter, path: str | None):
    """``--config FILE``: defaults for the command's options from a TOML file, under the
    flags' own names (``fail-above = 0.01``), in a ``[scan]`` / ``[index.build]`` table or at
    the top level. Flags given on the command line win."""
    if path is None:
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {e}", ctx=ctx, param=param) from e
    table = {"scan": data.get("scan"), "build": data.get("index", {}).get("build")}.get(ctx.command.name)
    if table is None:  # a flat file: its plain keys
        table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    names = {}
    for p in ctx.command.params:
        if p.name == "config":
            continue
        names[p.name] = p.name
        for opt in p.opts:
            names[opt.lstrip("-")] = p.name
    unknown = sorted(set(table) - set(names))
    if unknown:
        keys = sorted(k for k in names if "-" in k or k == names[k])
        raise click.BadParameter(f"{path}: unknown key(s) {', '.join(unknown)}; the keys are the command's flags: "
                                 f"{', '.join(keys)}", ctx=ctx, param=param)
    ctx.default_map = {**(ctx.default_map or {}), **{names[k]: v for k, v in table.items()}}
    return path


_config_option = click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                              callback=_load_config,
                              help="TOML file with defaults for this command's options, keyed by flag name.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="contamscan")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: events (scan started, each shard finished, scan finished, errors) as JSON lines on stderr.")
def cli(debug, log_format):
    """Find near-copies of known AI model outputs in training data.

    Build an index from reference texts (outputs of named models), then scan a dataset of
    Parquet / JSON Lines / Arrow shards against it. Exit status: 0 ok, 1 error, 2 usage,
    3 some shards failed, 4 rate above --fail-above.
    """


@cli.group("index")
def index_group():
    """Build and inspect reference indexes."""


@index_group.command("build")
@_config_option
@click.argument("refs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Index directory to write (created; an index there is replaced).")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text; a dotted path reaches nested fields.")
@click.option("--label-field", default="model", show_default=True, help="Field naming the model that wrote the text.")
@click.option("--id-field", default="id", show_default=True,
              help="Field with a unique reference id; where absent, ids are FILE:ROW.")
@click.option("--threshold", default=IndexParams.threshold, show_default=True, type=float,
              help="Estimated Jaccard similarity at which a document is flagged; sets the LSH bands.")
@click.option("--num-perm", default=IndexParams.num_perm, show_default=True, type=int, help="MinHash permutations.")
@click.option("--ngram", default=IndexParams.ngram, show_default=True, type=int, help="Words per shingle.")
@click.option("--seed", default=IndexParams.seed, show_default=True, type=int,
              help="Permutation seed (datasketch's default is 1).")
@click.option("--anchor-bits", default=IndexParams.anchor_bits, show_default=True, type=int,
              help="Partial matches: one shingle in 2**N is an anchor; 0 = whole-document matches only.")
@click.option("--store-text", is_flag=True,
              help="Keep reference texts in the index (for `scan --verify exact` and evidence in reports).")
@click.option("--strict", is_flag=True, help="Fail on the first bad record instead of counting and skipping it.")
@click.pass_context
def index_build(ctx, refs, out, text_field, label_field, id_field, threshold, num_perm, ngram, seed, anchor_bits,
                store_text, strict):
    """Build an index from reference files, directories or globs (REFS).

    Any path, -o too, can be a URI (s3://bucket/refs/, gs://, hdfs://, abfs://): see
    "Remote paths" in the README."""
    from .index import build_index

    progress = _Progress("indexing")
    try:
        params = IndexParams(threshold=threshold, num_perm=num_perm, ngram=ngram, seed=seed, anchor_bits=anchor_bits)
        index = build_index(refs, out, text_field=text_field, label_field=label_field, id_field=id_field or None,
                            params=params, store_text=store_text, strict=strict,
                            progress=progress.batch)
    except ContamscanError as e:
        _fail(ctx, e)
    finally:
        progress.close()
    _print_index(index.summary(), progress.bytes / max(time.perf_counter() - progress.t0, 1e-9))


def _print_index(s, rate=None):
    p = s.params
    lines = [
        f"index      {s.path}",
        f"refs       {s.refs:,}  ({s.bytes_on_disk / 1e6:,.1f} MB on disk)",
        f"shingles   {p['ngram']}-word, {p['normalization']}, Unicode {p['unicode_version']}, {p['shingle_hash']}",
        f"minhash    {p['scheme']}, num_perm {p['num_perm']}, seed {p['seed']}",
        f"lsh        threshold {p['threshold']}, {p['bands']} bands x {p['rows']} rows",
        "anchors    " + (f"1 in {2 ** p['anchor_bits']} shingles: {s.anchors:,} kept, {s.common_anchors:,} dropped "
                         f"(shared by more than {p['max_anchor_refs']} refs)" if p["anchor_bits"]
                         else "none (whole-document matches only)"),
        f"texts      {'stored' if s.stored_text else 'not stored'}",
    ]
    if s.skipped:
        lines.append("skipped    " + ", ".join(f"{k}: {v}" for k, v in sorted(s.skipped.items())))
    if rate:
        lines.append(f"speed      {rate / 1e6:,.1f} MB/s")
    lines.append("labels")
    lines += [f"  {label:<32} {n:>9,}" for label, n in sorted(s.labels.items(), key=lambda kv: (-kv[1], kv[0]))]
    click.echo("\n".join(lines))


@index_group.command("add")
@click.argument("index_path", metavar="INDEX")
@click.argument("refs", nargs=-1, required=True)
@click.option("--text-field", default="text", show_default=True, help="Field holding the text; a dotted path reaches nested fields.")
@click.option("--label-field", default="model", show_default=True, help="Field naming the model that wrote the text.")
@click.option("--id-field", default="id", show_default=True,
              help="Field with a unique reference id; where absent, ids are FILE:ROW.")
@click.option("--strict", is_flag=True, help="Fail on the first bad record instead of counting and skipping it.")
@click.pass_context
def index_add(ctx, index_path, refs, text_field, label_field, id_field, strict):
    """Add references (REFS: files, directories, globs) to INDEX, with its parameters. The
    index is rewritten beside itself and swapped in when complete; checksums are updated."""
    from .index import add_to_index

    try:
        index = add_to_index(index_path, refs, text_field=text_field, label_field=label_field,
                             id_field=id_field or None, strict=strict)
    except ContamscanError as e:
        _fail(ctx, e)
    _print_index(index.summary())


@index_group.command("merge")
@click.argument("indexes", nargs=-1, required=True, metavar="INDEX...")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Directory of the merged index (not one of the inputs).")
@click.pass_context
def index_merge(ctx, indexes, out):
    """Merge indexes built with the same parameters into one (as if built at once)."""
    from .index import merge_indexes

    try:
        index = merge_indexes(list(indexes), out)
    except ContamscanError as e:
        _fail(ctx, e)
    _print_index(index.summary())


@index_group.command("info")
@click.argument("index_path", metavar="INDEX")
@click.option("--no-verify", is_flag=True, help="Skip checksum verification (faster for large indexes).")
@click.pass_context
def index_info(ctx, index_path, no_verify):
    """Print an index's parameters, counts per label and size on disk."""
    from .index import open_index

    try:
        _print_index(open_index(index_path, verify=not no_verify).summary())
    except ContamscanError as e:
        _fail(ctx, e)


@cli.command("scan")
@_config_option
@click.argument("dataset", nargs=-1, required=True)
@click.option("--index", "index_path", required=True, type=click.Path(), help="Index directory from `index build`.")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Output directory for report.json, report.html, report.md, matches.parquet and evidence.parquet (never scanned).")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text; a dotted path reaches nested fields.")
@click.option("--id-field", default="id", show_default=True,
              help="Field copied into matches as doc_id, where present.")
@click.option("--workers", default=0, show_default=True, type=int, help="Worker processes; 0 = one per core.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool here; ray: tasks on a Ray cluster (pip install 'contamscan[ray]').")
@click.option("--ray-address", default=None, help="Ray cluster address (e.g. 10.0.0.5:6379); default: a local cluster.")
@click.option("--piece-mb", default=ScanOptions.piece_bytes / 2**20, show_default=True, type=float,
              help="A Parquet shard larger than this is scanned as pieces of whole row groups, in parallel.")
@click.option("--fail-above", type=float, default=None,
              help="Exit with status 4 when the dataset's contamination rate is above RATE (a fraction, e.g. 0.01).")
@click.option("--fail-above-shard", type=float, default=None,
              help="Exit with status 4 when any shard's contamination rate is above RATE.")
@click.option("--write-clean", type=click.Path(file_okay=False), default=None,
              help="Write each shard without its flagged documents to DIR (same relative path, format and schema).")
@click.option("--write-flagged", type=click.Path(file_okay=False), default=None,
              help="Write each shard's flagged documents only to DIR (same relative path, format and schema).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted scan into the same output directory (same inputs, index and options).")
@click.option("--strict", is_flag=True, help="A bad record fails its shard instead of being counted and skipped.")
@click.option("--batch-mb", default=16, show_default=True, type=int, help="Text per batch, in MB (bounds memory per worker).")
@click.option("--verify", type=click.Choice(["estimate", "exact"]), default="estimate", show_default=True,
              help="exact: re-check every flag on the exact shingle sets (needs `index build --store-text`).")
@click.option("--min-anchors", default=ScanOptions.min_anchors, show_default=True, type=float,
              help="Partial matches: score a run of shared anchors must reach (+1 shared, -0.5 unshared).")
@click.option("--min-words", default=ScanOptions.min_words, show_default=True, type=int,
              help="Partial matches: words a matched passage must span.")
@click.option("--threshold", "expect_threshold", type=float, default=None,
              help="Fail unless the index was built with this threshold.")
@click.option("--ngram", "expect_ngram", type=int, default=None, help="Fail unless the index was built with this ngram.")
@click.option("--num-perm", "expect_num_perm", type=int, default=None,
              help="Fail unless the index was built with this num_perm.")
@click.option("--profile", "profile_path", type=click.Path(), default=None,
              help="Style profile from `profile build`: also estimate each shard's share of AI-written documents "
                   "(alpha, with a 95% interval) and the model family it resembles.")
@click.pass_context
def scan_cmd(ctx, dataset, index_path, out, text_field, id_field, workers, executor, ray_address, piece_mb, fail_above,
             fail_above_shard, write_clean, write_flagged, resume, strict, batch_mb, verify, min_anchors, min_words,
             expect_threshold, expect_ngram, expect_num_perm, profile_path):
    """Scan DATASET files, directories (recursively) or globs against an index.

    Any path (DATASET, --index, -o, --write-clean, --write-flagged, --profile) can be a URI:
    s3://bucket/crawl/, gs://, hdfs://, abfs://, with options in the query string
    (?endpoint_override=HOST:PORT&scheme=http); see "Remote paths" in the README."""
    from .scan import scan

    progress = _Progress("scanning")
    json_log = ctx.find_root().params.get("log_format") == "json"

    def events(name: str, fields: dict) -> None:
        text = None
        if name == "shard_finished" and not sys.stderr.isatty():  # a log, not a terminal: a line per shard
            text = (f"{fields['shard']}: {fields['status']}, {fields['documents']:,} documents, "
                    f"{fields['flagged_documents']:,} flagged" + (f" ({fields['error']})" if fields["error"] else ""))
        _log(ctx, name, fields, text)

    try:
        for flag, rate in (("--fail-above", fail_above), ("--fail-above-shard", fail_above_shard)):
            if rate is not None and not 0 <= rate <= 1:
                raise ContamscanError(f"{flag} must be a fraction between 0 and 1, got {rate}")
        options = ScanOptions(text_field=text_field, id_field=id_field or None, workers=workers, executor=executor,
                              ray_address=ray_address, piece_bytes=max(1, int(piece_mb * 2**20)), strict=strict,
                              batch_bytes=batch_mb << 20, verify=verify, min_anchors=min_anchors, min_words=min_words,
                              write_clean=write_clean, write_flagged=write_flagged, expect_threshold=expect_threshold,
                              expect_ngram=expect_ngram, expect_num_perm=expect_num_perm, profile=profile_path)
        report = scan(list(dataset), index_path, out, options, progress=None if json_log else progress,
                      resume=resume, events=events)
    except ContamscanError as e:
        _fail(ctx, e)
    finally:
        progress.close()
    if not json_log:
        print_summary(report.data, out)
    status = exit_status(report, fail_above, fail_above_shard)
    if status == EXIT_FAILED_SHARDS:
        _log(ctx, "failed_shards", {"shards": report.failed_shards},
             f"error: {len(report.failed_shards)} shard(s) could not be read; see report.json")
    elif status == EXIT_GATE:
        above = report.shards_above(fail_above_shard) if fail_above_shard is not None else []
        _log(ctx, "gate", {"contamination_rate": report.contamination_rate, "fail_above": fail_above,
                           "fail_above_shard": fail_above_shard, "shards_above": above},
             (f"contamination rate {report.contamination_rate:.4%} is above --fail-above {fail_above:.4%}"
              if fail_above is not None and report.contamination_rate > fail_above else
              f"{len(above)} shard(s) above --fail-above-shard {fail_above_shard:.4%}: {', '.join(above[:5])}"))
    ctx.exit(status)


def exit_status(report, fail_above: float | None = None, fail_above_shard: float | None = None) -> int:
    """The scan's exit status: unreadable shards (3) first, then the gates (4), else 0."""
    if report.failed_shards:
        return EXIT_FAILED_SHARDS
    if fail_above is not None and report.contamination_rate > fail_above:
        return EXIT_GATE
    if fail_above_shard is not None and report.shards_above(fail_above_shard):
        return EXIT_GATE
    return EXIT_OK


def print_summary(report: dict, out) -> None:
    from rich.table import Table

    from .report import ci_text, pct, top_label

    t = report["totals"]
    table = Table(title="contamscan", title_justify="left")
    for col, just in (("shard", "left"), ("documents", "right"), ("flagged", "right"), ("rate", "right"),
                      ("95% CI", "right"), ("top model", "left"), ("bad", "right")):
        table.add_column(col, justify=just)
    for s in report["shards"][:MAX_SHARD_ROWS]:
        if s["status"] == "failed":
            table.add_row(s["shard"], "-", "-", "FAILED", "-", (s["error"] or "")[:60], "-")
        else:
            table.add_row(s["shard"], f"{s['documents']:,}", f"{s['flagged_documents']:,}", pct(s["contamination_rate"]),
                          ci_text(s["ci95"]), top_label(s["by_label"]), f"{s['errors']['bad_records']:,}")
    if len(report["shards"]) > MAX_SHARD_ROWS:
        table.add_row(f"… {len(report['shards']) - MAX_SHARD_ROWS} more shards in report.md", "", "", "", "", "", "")
    table.add_section()
    table.add_row("total", f"{t['documents']:,}", f"{t['flagged_documents']:,}", pct(t["contamination_rate"]),
                  ci_text(t["ci95"]), top_label(t["by_label"]), f"{t['errors']['bad_records']:,}")
    console = _console()
    console.print(table)
    if "style" in report:  # scan --profile: the AI-written share beside the near-duplicate rate
        from .style_report import style_table

        console.print(style_table(report))
    from .terminal import model_bars

    bars = model_bars(report)
    if bars is not None:
        console.print(bars)
    from .storage import display, is_remote, join

    html = display(join(out, "report.html")) if is_remote(out) else Path(out) / "report.html"
    console.print(f"report: {html} (and report.md, report.json, matches.parquet, evidence.parquet)", markup=False)


class _ExistingOrRemote(click.Path):
    """A local path that must exist, or a remote URI (checked when it is read)."""

    def convert(self, value, param, ctx):
        from .storage import is_remote

        return value if is_remote(value) else super().convert(value, param, ctx)


@cli.command("report")
@click.argument("out", required=False, type=click.Path(file_okay=False))
@click.option("--compare", nargs=2, type=_ExistingOrRemote(exists=True), metavar="OLD NEW", default=None,
              help="Compare two scans (output directories or report.json files): per-shard and per-model changes.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None,
              help="With --compare: also write the comparison as Markdown to FILE.")
@click.pass_context
def report_cmd(ctx, out, compare, markdown_path):
    """Render report.md and report.html of a scan's output directory OUT again, from its
    report.json, matches.parquet and evidence.parquet; or, with --compare OLD NEW, show what
    changed between two scans (a change is called out when the 95% interval of the
    difference of the rates excludes zero)."""
    if (out is None) == (compare is None):
        raise click.UsageError("give either OUT (re-render a report) or --compare OLD NEW")
    if markdown_path is not None and compare is None:
        raise click.UsageError("--markdown goes with --compare")
    try:
        if compare is None:
            from .outputs import rerender

            print_summary(rerender(out).report, out)
            return
        from .compare import compare_reports, render_markdown
        from .outputs import read_report
        from .terminal import print_comparison

        from .storage import display

        cmp = compare_reports(read_report(compare[0]), read_report(compare[1]), *map(display, compare))
        print_comparison(cmp, _console())
        if markdown_path is not None:
            from .report import atomic_write_bytes

            atomic_write_bytes(Path(markdown_path), render_markdown(cmp).encode())
            click.echo(f"comparison: {markdown_path}")
    except ContamscanError as e:
        _fail(ctx, e)


@cli.command("demo")
@click.argument("out", default="contamscan-demo", required=False)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes for the scan.")
@click.pass_context
def demo_cmd(ctx, out, workers):
    """Generate a demo workspace in OUT (references, a dataset with planted copies in several
    formats), build the index, scan, and print the summary. Needs no data or network."""
    from .demo import make_demo_workspace
    from .index import build_index
    from .scan import scan

    ws = make_demo_workspace(Path(out))
    click.echo(f"demo workspace: {ws.root}  (references: {ws.references}, dataset: {ws.dataset})")
    try:
        index = build_index([str(ws.references)], ws.root / "index", label_field="model", store_text=True)
        _print_index(index.summary())
        click.echo("")
        progress = _Progress("scanning")
        try:
            report = scan([str(ws.dataset)], index, ws.root / "scan", ScanOptions(workers=workers), progress=progress)
        finally:
            progress.close()
    except ContamscanError as e:
        _fail(ctx, e)
    print_summary(report.data, ws.root / "scan")
    click.echo(f"planted copies and bad records are listed in {ws.truth}")


@cli.group("profile")
def profile_group():
    """Build and inspect style profiles (for `scan --profile`)."""


@profile_group.command("build")
@click.option("--human", "human", multiple=True, required=True,
              help="Human text: files, directories or globs (repeatable).")
@click.option("--ai", "ai", multiple=True, required=True,
              help="AI text with a label per record (--label-field): files, directories or globs (repeatable).")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Profile directory to write (manifest.json and Parquet tables; a profile there is replaced).")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--label-field", default="model", show_default=True, help="(AI) field naming the model.")
@click.option("--family-by", type=click.Choice(["org", "label"]), default="org", show_default=True,
              help="AI components: org = one per organisation prefix (openai/o3 -> openai; claude-sonnet-4 -> "
                   "claude); label = one per model label.")
@click.option("--family", "families", multiple=True, metavar="NAME=GLOB[,GLOB]",
              help="Put labels matching the globs in family NAME (repeatable; checked before --family-by).")
@click.option("--group-field", default="source", show_default=True,
              help="(human) field grouping the baseline (each group gets its own components); files without it "
                   "are one group each.")
@click.option("--clusters", default=2, show_default=True, type=int,
              help="Human components per group, refined by classification EM.")
@click.option("--vocab-size", default=4000, show_default=True, type=int,
              help="Words chosen for human-vs-AI divergence (plus 100 per AI family).")
@click.option("--strict", is_flag=True, help="Fail on the first bad record instead of counting and skipping it.")
@click.pass_context
def profile_build(ctx, human, ai, out, text_field, label_field, family_by, families, group_field, clusters,
                  vocab_size, strict):
    """Build a style profile: word occurrence statistics of a human baseline and of each AI family."""
    from .profile import ProfileParams, build_profile, parse_family_rules

    progress = _Progress("profiling")
    try:
        params = ProfileParams(clusters=clusters, vocab_size=vocab_size)
        profile = build_profile(list(human), list(ai), out, text_field=text_field, label_field=label_field,
                                group_field=group_field or None, family_rules=parse_family_rules(families),
                                family_by=family_by, params=params, strict=strict,
                                progress=progress.batch)
    except ContamscanError as e:
        _fail(ctx, e)
    finally:
        progress.close()
    _print_profile(profile)


@profile_group.command("info")
@click.argument("profile_path", metavar="PROFILE")
@click.pass_context
def profile_info(ctx, profile_path):
    """Print a profile's components, vocabulary and parameters."""
    from .profile import open_profile

    try:
        _print_profile(open_profile(profile_path))
    except ContamscanError as e:
        _fail(ctx, e)


def _print_profile(profile) -> None:
    m = profile.manifest
    p = profile.params
    lines = [f"profile    {profile.path}",
             f"words      {len(profile.words):,}  ({m['normalization']}, {m['word_hash']})",
             f"windows    {', '.join(map(str, p.windows))} words, up to {p.max_windows} per document",
             f"documents  {m['documents']['human']:,} human, {m['documents']['ai']:,} AI",
             "components"]
    for c in m["components"]:
        members = m["labels"].get(c["name"], {}) if c["kind"] == "ai" else {}
        extra = f"  ({', '.join(sorted(members))})" if members else ""
        lines.append(f"  {c['kind']:<6} {c['name']:<40} {c['documents']:>7,}{extra}")
    click.echo("\n".join(lines))


def main():
    cli(prog_name="contamscan")
