"""``contamscan index build|add|merge|compact|info``."""

from __future__ import annotations

import click

from ...config import BuildOptions, IndexParams
from ...index import add_to_index, build_index, compact_index, merge_indexes, open_index
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
        f"refs       {s.refs:,}  ({s.bytes_on_disk / 1e6:,.1f} MB on disk"
        + (f", {s.segments} segments: `contamscan index compact` makes one)" if s.segments > 1 else ")"),
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
    to INDEX, with its parameters. A local index grows by a segment: the new references'
    files are written beside the index's, nothing there is rewritten, and the manifest,
    replaced atomically last, lists them (`index compact` makes one segment of them all); a
    remote index is rewritten and uploaded. Queries give what one build of all the references
    gives."""
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


@index_group.command("compact")
@click.argument("index_path", metavar="INDEX")
def index_compact(index_path):
    """Rewrite INDEX, grown by `index add` into several segments, as one segment (beside
    itself, swapped in when complete). Queries give the same answers before and after."""
    print_index(compact_index(index_path).summary())


@index_group.command("info")
@click.argument("index_path", metavar="INDEX")
@click.option("--verify", "verify_all", is_flag=True,
              help="Checksum every file (opening checks sizes, array headers and the files up to 64 MiB).")
@click.option("--no-verify", is_flag=True, help="Skip checksum verification (sizes and headers are still checked).")
def index_info(index_path, verify_all, no_verify):
    """Print an index's parameters, counts per label, segments and size on disk."""
    if verify_all and no_verify:
        raise click.UsageError("give --verify or --no-verify, not both")
    print_index(open_index(index_path, verify="all" if verify_all else not no_verify).summary())
