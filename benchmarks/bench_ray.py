"""Scale-out: the Ray executor with 1 and 2 worker CPUs against the local executor, on the
same dataset in the same run (real texts from ../shared/data, repeated).

Ray runs as a local cluster on this machine (``ray.init(num_cpus=N)``), the same code path
as a multi-node cluster (``--ray-address``): one task per shard, each worker maps the index
once. The local executor's numbers are the reference. Reported: MB/s of text for each, the
2-vs-1 speed-ups, Ray with 2 CPUs against the local executor's one worker (``ray_2_vs_local_1``,
issue 19's target), the Ray start-up time (not in the scan times), and that the reports are equal.

Run::

    python benchmarks/bench_ray.py [--mb 200] [--shard-mb 25]

Progress goes to stderr; one JSON line goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()

from _common import (MB, Corpus, Timer, add_common_args, emit, log, machine, pin_arrow, rate, versions,  # noqa: E402
                     workdir, write_dataset, write_refs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--mb", type=float, default=200, help="MB of text to scan (default: %(default)s)")
    p.add_argument("--shard-mb", type=float, default=25, help="MB of text per shard (default: %(default)s)")
    p.add_argument("--refs", type=int, default=3000, help="references in the index (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per setting; the best is reported")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from contamscan.config import ScanOptions
    from contamscan.scanner.executors import warm_up
    from contamscan.index import build_index
    from contamscan import scan

    result = {"bench": "ray"}
    with workdir(args.workdir, args.keep) as wd:
        corpus = Corpus(args.data, args.seed)
        shards, nbytes, ndocs = write_dataset(corpus, wd / "dataset", args.mb, args.shard_mb)
        write_refs(corpus, corpus.ref_rows(args.refs, args.seed), wd / "refs.parquet")
        index = build_index([str(wd / "refs.parquet")], wd / "index")
        warm_up(index)  # kernels compiled (cached on disk) before any worker starts
        log(f"dataset: {len(shards)} shards, {ndocs} documents, {nbytes / MB:.1f} MB")
        paths = [str(p) for p in shards]
        reports = {}

        def timed(name, options):
            runs = []
            for i in range(args.repeat):
                with Timer() as t:
                    reports[name] = scan(paths, index, wd / f"out-{name}-{i}", options)
                runs.append(t.wall)
            best = min(runs)
            log(f"  {name}: {best:.2f} s, {rate(nbytes, best)} MB/s")
            return rate(nbytes, best)

        for workers in (1, 2):
            result[f"local_{workers}_mb_s"] = timed(f"local{workers}", ScanOptions(workers=workers))
        for cpus in (1, 2):
            with Timer() as t:
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            result[f"ray_start_{cpus}_s"] = round(t.wall, 2)
            timed(f"warm{cpus}", ScanOptions(executor="ray", workers=cpus))  # workers start, map the index
            result[f"ray_{cpus}_mb_s"] = timed(f"ray{cpus}", ScanOptions(executor="ray", workers=cpus))
            ray.shutdown()
        strip = lambda d: json.dumps({k: v for k, v in d.items() if k not in ("started_at", "finished_at")},
                                     sort_keys=True)
        result["reports_equal"] = len({strip(r.data) for n, r in reports.items() if not n.startswith("warm")}) == 1
        result.update({
            "text_mb": round(nbytes / MB, 1), "shards": len(shards), "documents": ndocs, "refs": len(index),
            "local_speedup_2_vs_1": round(result["local_2_mb_s"] / result["local_1_mb_s"], 2),
            "ray_speedup_2_vs_1": round(result["ray_2_mb_s"] / result["ray_1_mb_s"], 2),
            # issue 19's target: the Ray executor with 2 CPUs against the local executor's one worker
            "ray_2_vs_local_1": round(result["ray_2_mb_s"] / result["local_1_mb_s"], 2),
        })
        result["targets"] = {"ray_2_vs_local_1_ge_1_7": result["ray_2_vs_local_1"] >= 1.7,
                             "local_2_vs_1_ge_1_8": result["local_speedup_2_vs_1"] >= 1.8}
    result.update({**machine(), "versions": versions("ray")})
    emit(result)


if __name__ == "__main__":
    main()
