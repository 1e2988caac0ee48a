"""The integrations against the scan: same documents flagged, and their throughput, in one run.

On the same Parquet shards (real AI and human texts from ../shared/data, repeated to
``--mb``; the index holds a sample of the AI outputs, so the dataset holds copies of them),
one process and one core each, best of ``--repeat``:

* ``scan``: ``contamscan.scan`` with one worker (reads, matches, writes the report);
* ``scan --write-annotations``: the same scan also writing the annotation files (the CLI
  flag's option; its flagged documents read back from the files);
* ``Matcher``: ``Matcher.annotate`` over each shard's text column, read with pyarrow in
  batches of the scan's size;
* ``datasets``: ``Dataset.map(annotator(index), batched=True)`` over the shards loaded with
  ``Dataset.from_parquet`` (loading not timed: it is a one-off conversion into datasets'
  cache), then ``filter`` on ``contamscan_flagged`` (timed);
* ``datatrove``: a ``LocalPipelineExecutor`` pipeline (one task) of ``ParquetReader`` and
  ``ContamscanFilter`` with a ``JsonlWriter`` (uncompressed) as its exclusion writer (the
  flagged documents); also the filter step's own time as datatrove's stats give it, and the
  same reader alone (``datatrove_reader_only``): what contamscan adds to such a pipeline is
  its time less the reader's (``datatrove_added``), datatrove's reader being a cost of the
  pipeline whatever its steps; and against a scan that also writes its flagged documents
  (``--write-flagged``, as the pipeline's exclusion writer does: ``datatrove_vs_scan_write_flagged``).

Each must flag exactly the scan's documents (``same_documents``); rates are MB of UTF-8 text
per second, and ``vs_scan`` each one's rate over the scan's (target >= 0.8). Progress goes to
stderr; one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()  # before numba, polars and Arrow start

from _common import (MB, Corpus, Timer, add_common_args, emit, log, machine, pin_arrow, rate,  # noqa: E402
                     versions, workdir, write_dataset, write_refs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=64, help="MB of text in the dataset (default: %(default)s)")
    p.add_argument("--shard-mb", type=float, default=16, help="MB of text per Parquet shard (default: %(default)s)")
    p.add_argument("--refs", type=int, default=3000, help="AI outputs in the index (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is reported (default: %(default)s)")
    add_common_args(p)
    return p.parse_args(argv)


def best(repeat: int, run):
    """(best wall seconds, the result of the last run)."""
    times, result = [], None
    for i in range(repeat):
        with Timer() as t:
            result = run(i)
        times.append(t.wall)
    return min(times), result, [round(x, 3) for x in times]


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    import datasets
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter

    import contamscan
    from contamscan.config import ScanOptions
    from contamscan.index import build_index
    from contamscan.integrations.datatrove import ContamscanFilter
    from contamscan.integrations.hf import annotator
    from contamscan.model import flagging
    from contamscan.scanner.annotations import annotation_relpath

    datasets.disable_progress_bars()
    corpus = Corpus(args.data, args.seed)
    with workdir(args.workdir, args.keep) as wd:
        refs_path = wd / "refs.parquet"
        write_refs(corpus, corpus.ref_rows(args.refs, args.seed), refs_path)
        shards, nbytes, ndocs = write_dataset(corpus, wd / "data", args.mb, args.shard_mb)
        names = [p.name for p in shards]
        index = build_index([str(refs_path)], wd / "index")
        index_path = str(wd / "index")
        contamscan.scan([str(refs_path)], index, wd / "warmup", ScanOptions(workers=1))  # kernels loaded before timing
        result = {"benchmark": "integrations", "mb": round(nbytes / MB, 1), "documents": ndocs, "shards": len(shards),
                  "refs": args.refs, "repeat": args.repeat}
        rates, flagged_sets = {}, {}

        log(f"scan, 1 worker, {nbytes / MB:.1f} MB ...")
        t, report, runs = best(args.repeat, lambda i: contamscan.scan([str(p) for p in shards], index, wd / f"scan{i}",
                                                                         ScanOptions(workers=1)))
        assert report.totals["bytes"] == nbytes
        m = flagging(report.matches())
        scan_set = set(zip(m["shard"].to_pylist(), m["row"].to_pylist()))
        id_of = dict(zip(zip(m["shard"].to_pylist(), m["row"].to_pylist()), m["doc_id"].to_pylist()))
        rates["scan"] = rate(nbytes, t)
        result["flagged"] = len(scan_set)
        result["runs"] = {"scan": runs}
        log(f"  {t:.2f} s, {rates['scan']} MB/s, {len(scan_set)} flagged")

        def annotated(i):
            ann = wd / f"ann{i}"
            contamscan.scan([str(p) for p in shards], index, wd / f"scan-ann{i}",
                            ScanOptions(workers=1, write_annotations=str(ann)))
            return ann

        t, ann, runs = best(args.repeat, annotated)
        got = set()
        for name in names:
            with gzip.open(ann / annotation_relpath(name, "jsonl"), "rt") as f:
                got |= {(name, r["row"]) for r in map(json.loads, f) if r["attributes"]["contamscan__flagged"]}
        rates["scan_write_annotations"], flagged_sets["scan_write_annotations"] = rate(nbytes, t), got
        result["runs"]["scan_write_annotations"] = runs
        log(f"  --write-annotations: {t:.2f} s, {rates['scan_write_annotations']} MB/s")

        def matcher_run(i):
            matcher = contamscan.Matcher(index_path)
            found = set()
            for p in shards:
                pf = pq.ParquetFile(p)
                row = 0
                for g in range(pf.num_row_groups):  # row groups of ~16 MB of text: the scan's batch size
                    texts = pf.read_row_group(g, columns=["text"], use_threads=False).column(0)
                    flags = matcher.annotate(texts).column("flagged").to_numpy(zero_copy_only=False)
                    found |= {(p.name, row + int(k)) for k in flags.nonzero()[0]}
                    row += len(texts)
            return found

        t, got, runs = best(args.repeat, matcher_run)
        rates["matcher"], flagged_sets["matcher"] = rate(nbytes, t), got
        result["runs"]["matcher"] = runs
        log(f"  Matcher.annotate: {t:.2f} s, {rates['matcher']} MB/s")

        frames = [datasets.Dataset.from_parquet(str(p), cache_dir=str(wd / "hf-cache"), keep_in_memory=False)
                  for p in shards]

        def hf_run(i):
            fn = annotator(index_path)
            found = set()
            for p, ds in zip(shards, frames):
                out = ds.map(fn, batched=True, batch_size=2000, load_from_cache_file=False)
                kept = out.filter(lambda f: not f, input_columns="contamscan_flagged", batched=False,
                                  load_from_cache_file=False)
                flags = out.data.column("contamscan_flagged")
                found |= {(p.name, int(k)) for k in pc.indices_nonzero(flags).to_pylist()}
                assert kept.num_rows == ds.num_rows - pc.sum(flags).as_py()
            return found

        t, got, runs = best(args.repeat, hf_run)
        rates["datasets"], flagged_sets["datasets"] = rate(nbytes, t), got
        result["runs"]["datasets"] = runs
        log(f"  datasets map + filter: {t:.2f} s, {rates['datasets']} MB/s")

        def datatrove_run(i):
            removed = wd / f"dt-removed{i}"
            # the exclusion writer uncompressed: datatrove's gzip (level 9) of the removed
            # documents is work of the pipeline's choosing, which the scan does not do
            pipeline = [ParquetReader(str(wd / "data"), text_key="text", id_key="id"),
                        ContamscanFilter(index_path, exclusion_writer=JsonlWriter(str(removed), compression=None))]
            LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=str(wd / f"dt-logs{i}")).run()
            ids = set()
            for f in removed.glob("*.jsonl"):
                with open(f) as fh:
                    ids |= {json.loads(line)["id"] for line in fh}
            stats = json.loads((wd / f"dt-logs{i}" / "stats.json").read_text())
            step = next(s for s in stats if "contamscan" in s["name"])
            return ids, step["time_stats"]["total"] if isinstance(step.get("time_stats"), dict) else None

        t, (ids, step_seconds), runs = best(args.repeat, datatrove_run)
        rates["datatrove"] = rate(nbytes, t)
        if step_seconds:  # the filter step alone, as datatrove times it (its batches, not the reader's)
            result["datatrove_filter_step_mb_per_s"] = rate(nbytes, step_seconds)
        flagged_sets["datatrove"] = ids
        result["runs"]["datatrove"] = runs
        log(f"  datatrove ParquetReader + ContamscanFilter: {t:.2f} s, {rates['datatrove']} MB/s")

        # the like-for-like scan: it too writes the flagged documents (--write-flagged), as
        # the pipeline's exclusion writer does
        t_wf, _, runs = best(args.repeat, lambda i: contamscan.scan(
            [str(p) for p in shards], index, wd / f"scan-wf{i}", ScanOptions(workers=1, write_flagged=str(wd / f"wf{i}"))))
        result["runs"]["scan_write_flagged"] = runs
        result["scan_write_flagged_mb_per_s"] = rate(nbytes, t_wf)
        result["datatrove_vs_scan_write_flagged"] = round(rate(nbytes, t) / rate(nbytes, t_wf), 3)
        log(f"  scan --write-flagged: {t_wf:.2f} s; datatrove against it: {result['datatrove_vs_scan_write_flagged']}")

        def reader_only(i):  # datatrove's own cost: the same reader, no step after it
            LocalPipelineExecutor(pipeline=[ParquetReader(str(wd / "data"), text_key="text", id_key="id")], tasks=1,
                                  workers=1, logging_dir=str(wd / f"dt-reader-logs{i}")).run()

        t_reader, _, runs = best(args.repeat, reader_only)
        result["runs"]["datatrove_reader_only"] = runs
        result["datatrove_reader_only_mb_per_s"] = rate(nbytes, t_reader)
        # what contamscan adds to a datatrove pipeline (the filter step and its exclusion writer),
        # as a rate over the same bytes: the pipeline's time less the reader's
        result["datatrove_added_mb_per_s"] = rate(nbytes, max(t - t_reader, 1e-9))
        log(f"  datatrove ParquetReader alone: {t_reader:.2f} s; what the filter adds: "
            f"{result['datatrove_added_mb_per_s']} MB/s")

        scan_ids = {id_of[k] for k in scan_set}
        result["same_documents"] = {k: (v == scan_ids if k == "datatrove" else v == scan_set)
                                    for k, v in flagged_sets.items()}
        result["mb_per_s"] = rates
        result["vs_scan"] = {k: round(v / rates["scan"], 3) for k, v in rates.items() if k != "scan"}
        result["vs_scan"]["datatrove_added"] = round(result["datatrove_added_mb_per_s"] / rates["scan"], 3)
        result["target_vs_scan"] = 0.8
        result["versions"] = versions("datasets", "datatrove")
        result["machine"] = machine()
        emit(result)
        if not all(result["same_documents"].values()):
            sys.exit(1)


if __name__ == "__main__":
    main()
