"""``contamscan index build|add|merge|info``."""

from __future__ import annotations

import click

from ...config import BuildOptions, IndexParams
from ...index import add_to_index, build_index, merge_indexes, open_index
from ..options import config_option, dataclass_from, dataclass_options
from ..progress import ProgressBar


@click.group("index")
def index_group():
    """Build and inspect reference indexes."""


@index_group.command("build")
@config_option
@click.argument("refs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Index directory to write (created; an index there is replaced).")
@dataclass_options(BuildOptions)
@dataclass_options(IndexParams)
def index_build(refs, out, **params):
    """Build an index from reference files, directories or globs (REFS).

    Any path, -o too, can be a URI (s3://bucket/refs/, gs://, hdfs://, abfs://): see
    "Remote paths" in the README."""
    options = dataclass_from(BuildOptions, params)
    index_params = dataclass_from(IndexParams, params)
    progress = ProgressBar("indexing")
    try:
        index = build_index(refs, out, options, params=index_params, progress=progress.batch)
    finally:
        progress.close()
    print_index(index.summary(), progress.rate)


def print_index(s, rate=None):
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
        f"known human {s.known_human_anchors:,} anchors of the references are also in known human text",
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
@click.argument("refs", nargs=-1)
@dataclass_options(BuildOptions, exclude=("store_text",))
def index_add(index_path, refs, **params):
    """Add references (REFS: files, directories, globs) and known human text (--known-human)
    to INDEX, with its parameters. The index is rewritten beside itself and swapped in when
    complete; checksums are updated."""
    options = dataclass_from(BuildOptions, params, exclude=("store_text",))
    if not refs and not options.known_human:
        raise click.UsageError("give references (REFS) or --known-human text to add")
    print_index(add_to_index(index_path, refs, options).summary())


@index_group.command("merge")
@click.argument("indexes", nargs=-1, required=True, metavar="INDEX...")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Directory of the merged index (not one of the inputs).")
def index_merge(indexes, out):
    """Merge indexes built with the same parameters into one (as if built at once)."""
    print_index(merge_indexes(list(indexes), out).summary())


@index_group.command("info")
@click.argument("index_path", metavar="INDEX")
@click.option("--no-verify", is_flag=True, help="Skip checksum verification (faster for large indexes).")
def index_info(index_path, no_verify):
    """Print an index's parameters, counts per label and size on disk."""
    print_index(open_index(index_path, verify=not no_verify).summary())
