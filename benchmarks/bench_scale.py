"""How contamscan scales: worker processes, shard size (peak memory).

* workers: the same scan of ``--mb`` MB in ``--shards`` shards with ``workers=1`` and
  ``workers=2`` (wall time includes starting the worker pool, measured apart as well);
* peak RSS: a scan with one worker, in a child process, of one ``--small-mb`` (50 MB), one
  ``--big-mb`` (500 MB) and one ``--huge-mb`` (2 GB; ``--huge-mb 0`` skips it) shard, same
  row-group size: peak RSS must not grow with the shard, and the 2 GB shard must scan in
  < 1 GB. Reported apart: the exact peak of all RSS (VmHWM, reset after the warm-up), and
  the peaks of its two parts, RssAnon (private memory: what the scan uses) and RssFile
  (pages of mapped files: shared libraries, the memory-mapped index; reclaimable, not
  memory use), sampled every 2 ms from /proc/self/status by a thread of the child (the
  kernels and Arrow release the GIL). Each shard is deleted once measured; the 2 GB one
  needs ~0.9 GB of disk in the work directory for about half a minute;
* index size: moved to ``benchmarks/bench_index.py`` (an index of 10,000,000 references
  built out of core, opened, scanned against vs 10,000, grown by ``index add``).

Everything but the workers=2 scan runs on one core, one thread. Progress goes to stderr;
one JSON line goes to stdout. MB are 10**6 bytes of UTF-8 text.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()

from _common import MB, Corpus, Timer, add_common_args, emit, log, machine, pin_arrow, rate, versions, workdir, write_dataset, write_refs  # noqa: E402

MiB = 1 << 20

# Runs in a child process: prints one JSON line with its memory figures (bytes).
CHILD = r"""
import json, sys, time

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) * 1024
    return out

import pyarrow as pa
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
from contamscan.config import ScanOptions
from contamscan.index import open_index
from contamscan import scan
from contamscan.discover import discover
from contamscan.formats import read_batches
from contamscan.model import Fields

mode, index_path = sys.argv[1], sys.argv[2]
res = {"imported": status()}


class Sampler:
    # peaks of RssAnon / RssFile / VmRSS, read every `every` s while running (VmHWM has no
    # per-part counterpart); a lower bound of the true peaks, exact for VmHWM's total
    def __init__(self, every=0.002):
        import threading
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self.every, self.stop = every, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            s = status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s[k])
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        s = status()  # the end state counts too
        for k in self.peak:
            self.peak[k] = max(self.peak[k], s[k])

index = open_index(index_path, verify=False)
res["opened"] = status()
# kernels loaded (or compiled) and the fold table read before measuring, then the peak
# (VmHWM) reset, so that it is the scan's own
index.query(index.hasher().signatures(["warm up the compiled kernels of hashing and query"]).values)
res["warm"] = status()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    res["hwm_reset"] = True
except OSError:
    res["hwm_reset"] = False
if mode == "scan":
    peak = [pa.total_allocated_bytes()]

    def progress(docs, nbytes):  # Arrow's own allocations, batch by batch
        peak[0] = max(peak[0], pa.total_allocated_bytes())

    with Sampler() as sampler:
        t0 = time.perf_counter()
        report = scan([sys.argv[3]], index, sys.argv[4], ScanOptions(workers=1), progress=progress)
        res["seconds"] = time.perf_counter() - t0
    res["sampled_peak"] = sampler.peak
    res["arrow_peak"] = peak[0]
    res["arrow_pool_max"] = pa.default_memory_pool().max_memory()
    res["bytes"] = report.totals["bytes"]
    res["flagged"] = report.totals["flagged_documents"]
elif mode == "query":
    shards, _ = discover([sys.argv[3]])
    batch = next(read_batches(shards[0], Fields(text="text")))
    sigs = index.hasher().signatures(batch.texts)
    res["hashed"] = status()
    t0 = time.perf_counter()
    q = index.query(sigs.values, skip=sigs.n_shingles == 0)
    res["seconds"] = time.perf_counter() - t0
    res["documents"] = len(batch.texts)
    res["flagged"] = int((q.best_ref >= 0).sum())
res["end"] = status()
print(json.dumps(res))
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=400, help="MB of text for the workers 1 vs 2 scan (default: %(default)s)")
    p.add_argument("--shards", type=int, default=4, help="shards of that dataset (default: %(default)s)")
    p.add_argument("--refs", type=int, default=3000, help="AI outputs in the index of the workers and RSS scans (default: %(default)s)")
    p.add_argument("--small-mb", type=float, default=50, help="MB of text of the small shard (default: %(default)s)")
    p.add_argument("--big-mb", type=float, default=500, help="MB of text of the big shard (default: %(default)s)")
    p.add_argument("--huge-mb", type=float, default=2000,
                   help="MB of text of the huge shard, the 2 GB of the memory target; 0 skips it "
                        "(default: %(default)s)")
    p.add_argument("--row-group-mb", type=float, default=32,
                   help="MB of text per Parquet row group, in every shard (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of each in-process scan; the best is reported (default: %(default)s)")
    add_common_args(p)
    return p.parse_args(argv)


def run_child(*args) -> dict:
    """Run CHILD with ``args`` and return its JSON.

    Peak RSS is the child's own VmHWM: getrusage(RUSAGE_CHILDREN) / wait4 are no use here,
    as Linux folds the forking parent's RSS (this process holds the corpus) into the
    child's ru_maxrss at exec.
    """
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def best_scan(paths, index, out, options, repeat):
    from contamscan import scan

    times, report = [], None
    for i in range(repeat):
        with Timer() as t:
            report = scan([str(p) for p in paths], index, out / f"run{i}", options)
        assert not report.failed_shards, report.failed_shards
        times.append(t.wall)
    return min(times), times, report


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    from contamscan import scan
    from contamscan.config import ScanOptions
    from contamscan.index import build_index

    result = {"bench": "scale"}
    with workdir(args.workdir, args.keep) as wd:
        log(f"work directory {wd}")
        corpus = Corpus(args.data, args.seed)
        log(f"corpus: {len(corpus.doc_texts)} documents, {corpus.unique_bytes / MB:.1f} MB of distinct text")
        refs_path = wd / "refs.parquet"
        n_refs, _ = write_refs(corpus, corpus.ref_rows(args.refs, args.seed), refs_path)
        index_path = wd / "index"
        with Timer() as t:
            index = build_index([str(refs_path)], index_path)
        log(f"index: {n_refs} references ({t.wall:.1f} s, includes compiling the kernels)")
        scan([str(refs_path)], index, wd / "warmup", ScanOptions(workers=1))  # kernels ready (and cached)

        # ------------------------------------------------------------ workers 1 vs 2
        shards, nbytes, ndocs = write_dataset(corpus, wd / "multi", args.mb, args.mb / args.shards + 1e-6,
                                              row_group_mb=args.row_group_mb)
        log(f"workers: {len(shards)} shards, {ndocs} documents, {nbytes / MB:.1f} MB")
        t1, t1s, r1 = best_scan(shards, index, wd / "w1", ScanOptions(workers=1), args.repeat)
        log(f"  workers=1: {t1:.2f} s ({rate(nbytes, t1)} MB/s) runs {[round(x, 2) for x in t1s]}")
        t2, t2s, r2 = best_scan(shards, index, wd / "w2", ScanOptions(workers=2), args.repeat)
        log(f"  workers=2: {t2:.2f} s ({rate(nbytes, t2)} MB/s) runs {[round(x, 2) for x in t2s]}")
        assert r1.totals == r2.totals, "workers=1 and workers=2 disagree"
        # the fixed cost of a pool: two tiny shards with two workers
        tiny, tiny_bytes, _ = write_dataset(corpus, wd / "tiny", 0.02, 0.01)
        ts, _, _ = best_scan(tiny, index, wd / "w2-tiny", ScanOptions(workers=2), args.repeat)
        log(f"  pool start-up (2 tiny shards, workers=2): {ts:.2f} s")
        result.update({
            "workers_text_mb": round(nbytes / MB, 2), "workers_shards": len(shards),
            "workers1_s": round(t1, 3), "workers1_mb_s": rate(nbytes, t1),
            "workers2_s": round(t2, 3), "workers2_mb_s": rate(nbytes, t2),
            "speedup": round(t1 / t2, 2), "workers2_startup_s": round(ts, 3),
            "speedup_without_startup": round(t1 / max(t2 - ts, 1e-9), 2),
        })

        # ------------------------------------------------------------ peak RSS vs shard size
        base = run_child("open", index_path)
        sizes = [("small", args.small_mb), ("big", args.big_mb)] + ([("huge", args.huge_mb)] if args.huge_mb > 0 else [])
        rss = {}
        for name, mb in sizes:
            with Timer() as t:
                paths, nb, nd = write_dataset(corpus, wd / name, mb, mb + 1, row_group_mb=args.row_group_mb, prefix=name)
            assert len(paths) == 1
            disk = paths[0].stat().st_size
            r = run_child("scan", index_path, paths[0], wd / f"rss-{name}")
            assert r["bytes"] == nb, (r["bytes"], nb)
            pk = r["sampled_peak"]
            log(f"  {name} shard: {nb / MB:.0f} MB of text ({nd} docs, {disk / MB:.0f} MB on disk, written in "
                f"{t.wall:.0f} s): peak RSS {r['end']['VmHWM'] / MiB:.0f} MiB = anon {pk['RssAnon'] / MiB:.0f} "
                f"+ file {pk['RssFile'] / MiB:.0f} (sampled); Arrow peak {r['arrow_pool_max'] / MiB:.0f} MiB; "
                f"{rate(r['bytes'], r['seconds'])} MB/s")
            rss[name] = {"text_bytes": nb, "disk_bytes": disk, "docs": nd, "res": r}
            for p in paths:
                p.unlink()  # gigabytes: not needed any more
        warm = rss["small"]["res"]["warm"]
        log(f"  after import, open and warm-up: RSS {warm['VmRSS'] / MiB:.0f} MiB (anon {warm['RssAnon'] / MiB:.0f}, "
            f"file {warm['RssFile'] / MiB:.0f})")
        hwm = {k: v["res"]["end"]["VmHWM"] for k, v in rss.items()}
        anon = {k: v["res"]["sampled_peak"]["RssAnon"] for k, v in rss.items()}
        growth = max(hwm.values()) - hwm["small"]
        anon_growth = max(anon.values()) - anon["small"]
        if growth > 64 * MiB or anon_growth > 64 * MiB:
            log(f"  WARNING: peak RSS grows with the shard (+{growth / MiB:.0f} MiB, anon +{anon_growth / MiB:.0f} MiB, "
                f"from {rss['small']['text_bytes'] / MB:.0f} MB to {max(v['text_bytes'] for v in rss.values()) / MB:.0f} MB)")
        result.update({
            "small_shard_mb": round(rss["small"]["text_bytes"] / MB, 1), "big_shard_mb": round(rss["big"]["text_bytes"] / MB, 1),
            "big_shard_disk_mb": round(rss["big"]["disk_bytes"] / MB, 1), "row_group_mb": args.row_group_mb,
            "rss_open_mb": round(base["end"]["VmHWM"] / MiB, 1), "rss_peak_reset_after_warmup": rss["small"]["res"]["hwm_reset"],
            "rss_warm_anon_mb": round(warm["RssAnon"] / MiB, 1), "rss_warm_file_mb": round(warm["RssFile"] / MiB, 1),
            "rss_small_mb": round(hwm["small"] / MiB, 1), "rss_big_mb": round(hwm["big"] / MiB, 1),
            "rss_growth_mb": round((hwm["big"] - hwm["small"]) / MiB, 1),
        })
        for name, v in rss.items():
            r = v["res"]
            result.update({
                f"{name}_shard_mb": round(v["text_bytes"] / MB, 1), f"{name}_shard_disk_mb": round(v["disk_bytes"] / MB, 1),
                f"rss_{name}_mb": round(r["end"]["VmHWM"] / MiB, 1),
                f"rss_anon_{name}_mb": round(r["sampled_peak"]["RssAnon"] / MiB, 1),
                f"rss_file_{name}_mb": round(r["sampled_peak"]["RssFile"] / MiB, 1),
                f"arrow_peak_{name}_mb": round(r["arrow_pool_max"] / MiB, 1),
                f"arrow_between_batches_{name}_mb": round(r["arrow_peak"] / MiB, 1),
                f"{name}_shard_scan_mb_s": rate(r["bytes"], r["seconds"]),
                f"{name}_flagged": r["flagged"],
            })
        result.update({
            "rss_max_growth_mb": round(growth / MiB, 1), "rss_anon_growth_mb": round(anon_growth / MiB, 1),
            "rss_bounded": growth <= 64 * MiB and anon_growth <= 64 * MiB,
        })
        if "huge" in rss:
            result["rss_huge_under_1gb"] = hwm["huge"] < 1 << 30

    result.update({**machine(), "versions": versions()})
    emit(result)


if __name__ == "__main__":
    main()
