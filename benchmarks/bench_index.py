"""How the index scales: an index of ``--refs`` references (default 10,000,000) built out of
core, opened, scanned against, and grown by ``index add``.

* the small index: ``--small-refs`` real references (AI outputs and human texts), built with
  ``build_index``;
* the big index: the same real references plus random uint32 signatures and anchors (as many
  anchors per reference as the real ones have: their lookups then cost what a real index's
  would), written by :class:`contamscan.index.format.IndexWriter` in a child process from
  parts generated as it goes (never all in memory) with a ``--memory`` budget; peak RSS is
  the child's VmHWM (/proc/self/status), so that it is the build's alone;
* opening it: in fresh child processes, the default open (sizes, headers, checksums of the
  files up to 64 MiB), without checksums, and (``--verify-all``) with every checksum; the
  page cache holds what the build wrote (warm), as it would on the machine that built it;
* the same scan (a ``--small-mb`` shard, the index opened beforehand) against the small and
  the big index, in turns, best of ``--repeat`` (the machine's drift falls on both); the
  flagged documents must be the same. Three shards: the corpus cycled (its AI outputs and
  most of its human texts are references of the small index, so ~78% of its documents are
  copies: the lookups' worst case, ``scan_ratio``), and ``--contamination`` shares of planted
  copies among human texts of files the index holds none of, as bench_process builds them
  (``scan_mixed``);
* ``index add`` of ``--add-refs`` synthetic references to the big index, in a child (time,
  peak RSS, the files it wrote; the files there before must be untouched: same inode, size
  and mtime), then the scan against the grown index (two segments) and the small one, in
  turns, and its open time.

One thread per process. Progress goes to stderr; one JSON line goes to stdout. ``--quick``:
200,000 references, 20,000 added, a 10 MB shard.
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

from _common import (  # noqa: E402
    MB,
    Corpus,
    MixedDocs,
    Timer,
    add_common_args,
    emit,
    log,
    machine,
    pin_arrow,
    versions,
    workdir,
    write_dataset,
    write_mixed_dataset,
)

MiB = 1 << 20

# Child processes: each prints one JSON line. Common part: memory figures and synthetic parts.
CHILD_COMMON = r"""
import json, sys, time
import numpy as np
import pyarrow as pa
pa.set_cpu_count(1)
pa.set_io_thread_count(1)

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out

def synthetic(writer, first, n, per_ref, prefix, seed, num_perm, chunk=250_000):
    # n random references numbered from `first` in the writer: signatures, anchors, metadata
    rng = np.random.default_rng(seed)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        ids = pa.array([f"{prefix}-{i:08d}" for i in range(lo, lo + m)], pa.large_string())
        table = pa.table({"ref_id": ids, "label": pa.array(["synthetic"] * m, pa.large_string()),
                          "source": pa.array(["synthetic"] * m, pa.large_string()),
                          "n_shingles": pa.array(rng.integers(100, 3000, m), pa.int64()),
                          "n_chars": pa.array(rng.integers(600, 18000, m), pa.int64())})
        writer.add_refs(table, rng.integers(0, 1 << 32, size=(m, num_perm), dtype=np.uint32))
        writer.add_anchors(rng.integers(0, 1 << 32, size=m * per_ref, dtype=np.uint32),
                           np.repeat(np.arange(first + lo, first + lo + m, dtype=np.int64), per_ref),
                           np.tile(np.arange(per_ref, dtype=np.uint32) * 8, m))
"""

CHILD_BUILD = CHILD_COMMON + r"""
from contamscan.index import open_index
from contamscan.index.format import IndexWriter, write_index
small_path, out, n_big, seed, memory = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
small = open_index(small_path, verify=False)
t0 = time.perf_counter()
writer = IndexWriter(out, small.params, memory=memory)
n_real = len(small)
writer.add_refs(small.refs.drop("n_anchors").to_arrow(), np.asarray(small.signatures))
keys, refs, words = small.anchors()
per_ref = max(1, round(len(keys) / n_real))
writer.add_anchors(keys, refs, words.astype(np.uint32))
del keys, refs, words
synthetic(writer, n_real, n_big - n_real, per_ref, "synthetic", seed, small.params.num_perm)
write_index(out, writer)
print(json.dumps({"seconds": time.perf_counter() - t0, "per_ref": per_ref, "end": status()}))
"""

CHILD_OPEN = CHILD_COMMON + r"""
from contamscan.index import open_index
path, verify = sys.argv[1], sys.argv[2]
verify = {"true": True, "false": False}.get(verify, verify)
t0 = time.perf_counter()
ix = open_index(path, verify=verify)
print(json.dumps({"seconds": time.perf_counter() - t0, "refs": len(ix), "segments": len(ix.segments),
                  "end": status()}))
"""

CHILD_ADD = CHILD_COMMON + r"""
from contamscan.index import open_index
from contamscan.index.build import add_segment
path, n_add, per_ref, seed, memory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
ix = open_index(path, verify=False)
t_open = time.perf_counter() - t0

def feed(writer):
    synthetic(writer, 0, n_add, per_ref, "added", seed, ix.params.num_perm)
    return {}

grown = add_segment(ix, feed, memory=memory)
print(json.dumps({"seconds": time.perf_counter() - t0, "open_seconds": t_open, "refs": len(grown),
                  "segments": len(grown.segments), "end": status()}))
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", type=int, default=10_000_000, help="references of the big index (default: %(default)s)")
    p.add_argument("--small-refs", type=int, default=10_000, help="real references of the small index (default: %(default)s)")
    p.add_argument("--add-refs", type=int, default=1_000_000, help="references `index add` adds (default: %(default)s)")
    p.add_argument("--memory", type=float, default=4.0, help="GiB budget of the build's sorts and buffers (default: %(default)s)")
    p.add_argument("--small-mb", type=float, default=50, help="MB of text of the scanned shard (default: %(default)s)")
    p.add_argument("--row-group-mb", type=float, default=32, help="MB of text per Parquet row group (default: %(default)s)")
    p.add_argument("--contamination", type=lambda s: [float(x) for x in s.split(",")], default=[0.02, 0.45],
                   help="shares of planted copies of the mixed scan shards (default: 0.02,0.45)")
    p.add_argument("--repeat", type=int, default=5, help="scans of each index, in turns; the best is reported (default: %(default)s)")
    p.add_argument("--verify-all", action="store_true", help="also time an open that checksums every file")
    p.add_argument("--quick", action="store_true", help="200,000 references, 20,000 added, a 10 MB shard, 3 runs")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.refs, args.add_refs, args.small_mb, args.repeat = 200_000, 20_000, 10, 3
    return args


def run_child(code: str, *args) -> dict:
    """Run ``code`` in a child process; its peak RSS is its own VmHWM (Linux folds the forking
    parent's RSS into a child's ru_maxrss at exec)."""
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def dir_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def alternating_scans(paths, runs, options, repeat):
    """Scan ``paths`` with each (index, out) of ``runs`` in turn, ``repeat`` rounds. Returns
    (best, times, report) per run."""
    from contamscan import scan

    times = [[] for _ in runs]
    reports = [None] * len(runs)
    for i in range(repeat):
        for k, (index, out) in enumerate(runs):
            with Timer() as t:
                reports[k] = scan([str(p) for p in paths], index, out / f"run{i}", options)
            assert not reports[k].failed_shards, reports[k].failed_shards
            times[k].append(t.wall)
    return [(min(ts), ts, r) for ts, r in zip(times, reports)]


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    import polars as pl

    from contamscan import scan
    from contamscan.config import ScanOptions
    from contamscan.index import build_index, open_index

    result = {"bench": "index"}
    memory = int(args.memory * (1 << 30))
    with workdir(args.workdir, args.keep) as wd:
        log(f"work directory {wd}")
        corpus = Corpus(args.data, args.seed)
        n_small = args.small_refs
        ids, labels, texts, ai_rows = [], [], [], []
        for i, x in enumerate(corpus.ai_texts):
            if len(ids) < n_small and x is not None:
                ai_rows.append(i)
                ids.append(f"ai/{corpus.ai_ids[i]}")
                labels.append(corpus.ai_models[i])
                texts.append(x)
        for i, x in enumerate(corpus.human_texts):
            if len(ids) >= n_small:
                break
            if x is not None:
                ids.append(f"human/{corpus.human_ids[i]}")
                labels.append("human")
                texts.append(x)
        if len(ids) < n_small:
            raise SystemExit(f"only {len(ids)} real texts for --small-refs {n_small}")
        real_path = wd / "refs-real.parquet"
        pl.DataFrame({"id": ids, "model": labels, "text": texts}).write_parquet(real_path, compression="zstd")
        del texts
        with Timer() as t:
            idx_small = build_index([str(real_path)], wd / "index-small")
        n_real = len(idx_small)
        log(f"index of {n_real} real references built in {t.wall:.1f} s, {dir_bytes(idx_small.path) / MB:.1f} MB")
        shard, shard_bytes, shard_docs = write_dataset(corpus, wd / "shard", args.small_mb, args.small_mb + 1,
                                                       row_group_mb=args.row_group_mb, prefix="small")
        log(f"scan shard: {shard_bytes / MB:.1f} MB, {shard_docs} documents")
        # the clean texts of the mixed shards: human files none of whose texts are indexed (a
        # file's texts have near-duplicates among themselves, which would be flagged)
        files = {i.split("/")[1] for i in ids if i.startswith("human/")}
        indexed_files = [d for d in corpus.doc_ids if d.startswith("human/") and d.split("/")[1] in files]
        mixed = {}
        for c in args.contamination:
            paths, stats = write_mixed_dataset(MixedDocs(corpus, ai_rows, c, args.seed, also_indexed=indexed_files),
                                               wd / f"mixed-{c}", args.small_mb, args.small_mb + 1,
                                               row_group_mb=args.row_group_mb)
            mixed[c] = (paths, stats.as_dict())
            log(f"mixed shard {c}: {stats.docs} documents, {mixed[c][1]['planted_doc_share']:.1%} planted")
        scan([str(shard[0])], idx_small, wd / "warmup", ScanOptions(workers=1))  # kernels compiled and cached

        # ------------------------------------------------------------ the big index, out of core
        big = wd / "index-big"
        log(f"building an index of {args.refs:,} references out of core (memory budget {args.memory} GiB)")
        b = run_child(CHILD_BUILD, idx_small.path, big, args.refs, args.seed, memory)
        disk_big = dir_bytes(big)
        log(f"  built in {b['seconds']:.0f} s, peak RSS {b['end']['VmHWM'] / MiB:.0f} MiB, "
            f"{disk_big / MB:,.0f} MB on disk, {b['per_ref']} anchors per reference")
        opens = {"default": run_child(CHILD_OPEN, big, "true"), "no_checksums": run_child(CHILD_OPEN, big, "false")}
        if args.verify_all:
            opens["all_checksums"] = run_child(CHILD_OPEN, big, "all")
        log("  open: " + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in opens.items()))

        # ------------------------------------------------------------ the same scan against both
        opts = ScanOptions(workers=1)
        idx_big = open_index(big, verify=False)
        (ts_small, all_small, rep_s), (ts_big, all_big, rep_b) = alternating_scans(
            shard, [(idx_small, wd / "scan-small"), (idx_big, wd / "scan-big")], opts, args.repeat)
        assert rep_s.totals["flagged_documents"] == rep_b.totals["flagged_documents"]
        log(f"  scan of {shard_bytes / MB:.0f} MB: {ts_small:.2f} s with {n_real:,} refs, {ts_big:.2f} s with "
            f"{args.refs:,} ({ts_big / ts_small:.3f}x; runs {[round(x, 2) for x in all_small]} / "
            f"{[round(x, 2) for x in all_big]}); {rep_s.totals['flagged_documents']} flagged")
        scan_mixed = {}
        for c, (paths, stats) in mixed.items():
            (ms, _, r_s), (mb, _, r_b) = alternating_scans(
                paths, [(idx_small, wd / f"scan-small-{c}"), (idx_big, wd / f"scan-big-{c}")], opts, args.repeat)
            assert r_s.totals["flagged_documents"] == r_b.totals["flagged_documents"]
            scan_mixed[str(c)] = {"small_s": round(ms, 3), "big_s": round(mb, 3), "ratio": round(mb / ms, 3),
                                  "flagged": r_s.totals["flagged_documents"], **stats}
            log(f"  scan of the {c:.0%} shard: {ms:.2f} s with {n_real:,} refs, {mb:.2f} s with {args.refs:,} "
                f"({mb / ms:.3f}x); {r_s.totals['flagged_documents']} flagged")
        del idx_big

        # ------------------------------------------------------------ index add, without rewriting
        before = {f.name: (f.stat().st_ino, f.stat().st_size, f.stat().st_mtime_ns) for f in big.iterdir()}
        log(f"index add of {args.add_refs:,} references")
        a = run_child(CHILD_ADD, big, args.add_refs, b["per_ref"], args.seed + 1, memory)
        after = {f.name: f.stat() for f in big.iterdir()}
        untouched = all(n in after and (after[n].st_ino, after[n].st_size, after[n].st_mtime_ns) == v
                        for n, v in before.items() if n != "manifest.json")
        written = sorted(n for n in after if n not in before)
        written_bytes = sum(after[n].st_size for n in written) + after["manifest.json"].st_size
        log(f"  added in {a['seconds']:.0f} s (open {a['open_seconds']:.2f} s), peak RSS "
            f"{a['end']['VmHWM'] / MiB:.0f} MiB; wrote {len(written)} files, {written_bytes / MB:,.0f} MB, and the "
            f"manifest; files there before untouched: {untouched}")
        open_grown = run_child(CHILD_OPEN, big, "true")
        idx_grown = open_index(big, verify=False)
        (ts_small2, _, rep_s2), (ts_grown, all_grown, rep_g) = alternating_scans(
            shard, [(idx_small, wd / "scan-small2"), (idx_grown, wd / "scan-grown")], opts, max(2, args.repeat - 2))
        assert rep_s2.totals["flagged_documents"] == rep_g.totals["flagged_documents"]
        log(f"  grown index ({len(idx_grown):,} refs, {len(idx_grown.segments)} segments): open "
            f"{open_grown['seconds']:.2f} s; scan {ts_grown:.2f} s vs {ts_small2:.2f} s with {n_real:,} refs "
            f"({ts_grown / ts_small2:.3f}x)")
        result.update({
            "refs": args.refs, "small_refs": n_real, "anchors_per_ref": b["per_ref"], "memory_budget_gib": args.memory,
            "build_s": round(b["seconds"], 1), "build_peak_rss_mb": round(b["end"]["VmHWM"] / MiB, 1),
            "disk_mb": round(disk_big / MB, 1), "bytes_per_ref_disk": round(disk_big / args.refs, 1),
            **{f"open_{k}_s": round(v["seconds"], 3) for k, v in opens.items()},
            "open_rss_mb": round(opens["default"]["end"]["VmRSS"] / MiB, 1),
            "scan_mb": round(shard_bytes / MB, 1), "scan_small_s": round(ts_small, 3), "scan_big_s": round(ts_big, 3),
            "scan_ratio": round(ts_big / ts_small, 3), "flagged": rep_s.totals["flagged_documents"],
            "scan_mixed": scan_mixed,
            "add_refs": args.add_refs, "add_s": round(a["seconds"], 1), "add_peak_rss_mb": round(a["end"]["VmHWM"] / MiB, 1),
            "add_files_written": written, "add_bytes_written_mb": round(written_bytes / MB, 1),
            "add_old_files_untouched": untouched, "grown_segments": len(idx_grown.segments),
            "open_grown_s": round(open_grown["seconds"], 3), "scan_grown_s": round(ts_grown, 3),
            "scan_grown_ratio": round(ts_grown / ts_small2, 3),
        })
        del idx_grown
    result.update({**machine(), "versions": versions()})
    emit(result)


if __name__ == "__main__":
    main()
