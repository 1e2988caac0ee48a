"""The scan timed the way a user times it: ``contamscan scan`` as a process, from outside.

Every figure named ``whole_*`` (and the competitors', and every RSS) is one process run
under ``/usr/bin/time -f '%e %M'``: wall seconds from exec to exit (interpreter start-up,
imports, loading the compiled kernels from their cache, opening the index, reading,
matching, writing report.json/.html/.md and the Parquet outputs) and the peak RSS of the
largest process of the run. The command is ``python -m contamscan scan DATASET --index
INDEX -o OUT --workers 1`` with this checkout first on PYTHONPATH (the code measured is this
tree's, whatever is installed). One worker and one thread per library (NUMBA_NUM_THREADS,
POLARS_MAX_THREADS, ... = 1, inherited by every child) unless said otherwise.

Corpora (real texts from ../shared/data, repeated; nothing of it is written to the repo):

* an index of ``--refs`` AI outputs (``contamscan index build`` as a process, timed apart);
* datasets of ``--mb`` MB of text (a list) for each ``--contamination`` share (a list, by
  documents): each document is, with that probability, a verbatim copy of an indexed
  reference, else a non-indexed text (a human text or an AI output not in the index),
  seeded (``_common.MixedDocs``), in Parquet shards of ``--shard-mb`` MB of text in row
  groups of ``--row-group-mb`` MB (like ``write_dataset``). The byte share is reported too
  (AI outputs are longer than most human texts), and how many documents the scan flagged
  against how many were planted (``flagged_planted_*``: planted documents flagged,
  ``flagged_clean_*``: others flagged, e.g. a human text an AI output quotes at length).

Runs, all in the same invocation so that the machine's load falls on all alike:

* warm-up: one untimed ``contamscan scan`` first (kernels compiled or loaded into the
  cache; the targets are for a warm cache), and one untimed in-process scan;
* ``whole_mb_s_<C>pct_<N>mb``: text MB / wall, best of ``--repeat`` (all runs listed);
  ``in_process_mb_s_*``: ``contamscan.scan`` called in this process (index by path, like the
  CLI), best of ``--repeat`` after a warm-up; ``fixed_cost_s_*``: whole minus in-process;
* competitors, whole process too: ``baselines/minhash_scan.py scan --lib datasketch|rensa``
  (pyarrow batches, contamscan's shingles, MinHash, LSH query with contamscan's bands x
  rows, best candidate verified at Jaccard >= 0.5; their LSH built from the references and
  pickled in a prior untimed step, unpickled inside the timed run; rensa uses 125 = 25 x 5
  permutations, as its LSH needs bands x rows = num_perm) over the first ``--baseline-mb`` of
  the smallest dataset of each share, best of ``--repeat``; ``ratio_vs_*`` divide
  contamscan's whole-process rate on that dataset (all of it) by theirs (``*_cpu_mb_s_*``:
  the same per CPU second of the process tree, user + sys, which other work on a shared
  machine disturbs less than the wall: wall well above CPU means the run waited for a core); ``prefix_flagged_*``
  compares what each flagged on that prefix;
* ``one_doc_scan_s``: median of ``--one-doc-runs`` whole-process scans of a Parquet file of
  one document (a copy of a reference), warm, best beside; with the bare interpreter,
  ``import contamscan.cli`` and the same scan in process, to show where the start-up goes;
* ``workers2_speedup``: ``--workers 1`` / ``--workers 2`` wall on the smallest dataset of the
  first share (``--shard-mb`` must make 4+ shards), whole process, the settings in turns,
  best of ``--repeat`` each; ``ray2_speedup``: ``--workers 1`` (local) / ``--executor ray
  --workers 2`` (a local Ray cluster that each process starts and stops: its start-up is
  in the wall time, as a user sees it), after one untimed Ray run; ``ray2_vs_ray1`` beside
  (for Ray, CPU and RSS cover only the processes the driver waits for, not Ray's workers);
  ``loadavg_*`` (before and after) shows how busy the shared machine was;
* RSS: ``rss_mb_parquet_<N>mb`` / ``rss_mb_jsonl_<N>mb``: one-worker scans of a single shard
  of ``--small-mb`` and ``--huge-mb`` MB (``--huge-mb 0`` skips it; each written streaming,
  deleted once measured); ``rss_mb_<C>pct``: the largest dataset of each share (flat in
  the number of flagged documents). RSS is in MiB (2**20 bytes) as /usr/bin/time's %M
  (KiB) / 1024; the shard targets are < 1 GiB and growth <= 64 MiB from small to huge.

Bytecode: the tree's modules are compiled to ``__pycache__`` first (``compileall``), as a
``pip install`` does and as any run writes them, unless PYTHONDONTWRITEBYTECODE is set (it is
on some machines, where every start would otherwise compile ~100 modules from source: 0.4 s
of a one-document scan).

Caches: the children inherit pin_threads' private NUMBA_CACHE_DIR (filled by the warm-up,
removed at exit) and use the tool's own cache directory as a user's would
($XDG_CACHE_HOME/contamscan, e.g. the fold table); whatever else the tool caches on its
first run is warm by the timed runs too.

``targets`` holds one boolean per target of the issue. Progress goes to stderr; one JSON
line goes to stdout. MB of text are 10**6 bytes of UTF-8.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's contamscan, in process as in the children

from _common import pin_threads  # noqa: E402

pin_threads()  # before numba, polars and Arrow start; the children inherit the settings

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
    rate,
    versions,
    workdir,
    write_mixed_dataset,
    write_mixed_jsonl,
    write_refs,
)

MiB = 1 << 20
BASELINE = Path(__file__).resolve().parent / "baselines" / "minhash_scan.py"
TIME = "/usr/bin/time"


def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=floats, default=None,
                   help="MB of text of the datasets, a comma-separated list (default: 300,1000)")
    p.add_argument("--contamination", type=floats, default=None,
                   help="shares of planted documents, a comma-separated list (default: 0.02,0.45)")
    p.add_argument("--refs", type=int, default=3000, help="AI outputs in the index (default: %(default)s)")
    p.add_argument("--shard-mb", type=float, default=None, help="MB of text per Parquet shard (default: 64)")
    p.add_argument("--row-group-mb", type=float, default=16,
                   help="MB of text per Parquet row group, in every shard (default: %(default)s)")
    p.add_argument("--baseline-mb", type=float, default=None,
                   help="MB of each share's smallest dataset scanned by the competitors (default: 30)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs of each setting; the best is reported (default: 2)")
    p.add_argument("--one-doc-runs", type=int, default=None, help="runs of the one-document scan (default: 5)")
    p.add_argument("--small-mb", type=float, default=None, help="MB of text of the small single shard (default: 50)")
    p.add_argument("--huge-mb", type=float, default=None,
                   help="MB of text of the huge single shard (Parquet and JSON Lines); 0 skips it (default: 2000)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray executor runs")
    p.add_argument("--no-baselines", action="store_true", help="skip datasketch and rensa")
    p.add_argument("--quick", action="store_true",
                   help="smoke configuration: 20 MB in 5 MB shards, baseline 2 MB, single shards of 5 MB, no huge "
                        "shard, one run each (explicit flags still win)")
    add_common_args(p)
    args = p.parse_args(argv)
    defaults = dict(mb=[300.0, 1000.0], contamination=[0.02, 0.45], shard_mb=64.0, baseline_mb=30.0, repeat=2,
                    one_doc_runs=5, small_mb=50.0, huge_mb=2000.0)
    if args.quick:
        defaults.update(mb=[20.0], shard_mb=5.0, baseline_mb=2.0, repeat=1, one_doc_runs=3, small_mb=5.0, huge_mb=0.0)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def label_c(c: float) -> str:
    return f"{c * 100:g}pct".replace(".", "_")


def label_mb(mb: float) -> str:
    return f"{mb:g}mb".replace(".", "_")


def child_env() -> dict:
    env = os.environ.copy()  # the thread settings and the numba cache of pin_threads
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


ENV = child_env()


class Proc:
    """One process run under /usr/bin/time: wall (its %e), peak RSS (its %M), CPU, stdout."""

    def __init__(self, cmd, log_path: Path, check: bool = True):
        tf = log_path.with_suffix(".time")
        with open(log_path, "wb") as lf, Timer() as t:
            proc = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", str(tf), *map(str, cmd)],
                                  stdout=subprocess.PIPE, stderr=lf, env=ENV)
        self.stdout = proc.stdout.decode(errors="replace")
        self.rc = proc.returncode
        fields = tf.read_text().split()[-4:]  # a non-zero exit adds a line before the figures
        self.wall, self.rss_kib, self.user, self.sys = float(fields[0]), int(fields[1]), float(fields[2]), float(fields[3])
        self.outer = t.wall  # seen from here: adds the fork/exec of /usr/bin/time (a few ms)
        if check and self.rc != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({self.rc}); log: "
                               f"{log_path.read_text(errors='replace')[-3000:]}")

    @property
    def rss_mib(self) -> float:
        return round(self.rss_kib / 1024, 1)


def scan_cmd(dataset, index, out, *extra):
    return [sys.executable, "-m", "contamscan", "scan", *map(str, dataset if isinstance(dataset, list) else [dataset]),
            "--index", str(index), "-o", str(out), *extra]


class Runs:
    """A setting run ``repeat`` times: the best (least wall) and all."""

    def __init__(self):
        self.procs: list[Proc] = []

    def add(self, p: Proc):
        self.procs.append(p)

    @property
    def best(self) -> Proc:
        return min(self.procs, key=lambda p: p.wall)

    def walls(self) -> list[float]:
        return [p.wall for p in self.procs]

    def max_rss_mib(self) -> float:
        return max(p.rss_mib for p in self.procs)


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages: other work on a shared machine shows here
    (on 2 cores, a load near 2 before a --workers 2 run means its second worker had no core)."""
    return [round(x, 2) for x in os.getloadavg()]


def report_totals(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())["totals"]


def flagged_places(out: Path, shard_names: list[str]):
    """{(shard number, row): doc_id} of a scan's flagged documents (best match per document)."""
    import polars as pl

    m = pl.read_parquet(out / "matches.parquet", columns=["shard", "row", "doc_id", "rank"])
    m = m.filter(pl.col("rank") == 1)
    names = {n: i for i, n in enumerate(shard_names)}
    return {(names[os.path.basename(s)], r): d for s, r, d in zip(m["shard"], m["row"], m["doc_id"])}


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    import pyarrow.parquet as pq

    import contamscan
    from contamscan import scan
    from contamscan.config import ScanOptions

    if not Path(contamscan.__file__).resolve().is_relative_to(ROOT):
        raise SystemExit(f"contamscan imported from {contamscan.__file__}, not from {ROOT}")
    py = sys.executable
    mbs = sorted(args.mb)
    shares = args.contamination
    compileall.compile_dir(str(ROOT / "contamscan"), quiet=1)  # as an install would (module doc: Bytecode)
    result = {"bench": "process", "quick": args.quick, "refs": args.refs, "mb": mbs, "contamination": shares,
              "shard_mb": args.shard_mb, "row_group_mb": args.row_group_mb, "repeat": args.repeat}
    targets = {}
    with workdir(args.workdir.resolve() if args.workdir else None, args.keep) as wd:
        log(f"work directory {wd}; contamscan from {Path(contamscan.__file__).parent}")
        logs = wd / "logs"
        logs.mkdir(exist_ok=True)
        result["loadavg_start"] = loadavg()
        corpus = Corpus(args.data, args.seed)
        ref_rows = corpus.ref_rows(args.refs, args.seed)
        log(f"corpus: {len(corpus.doc_texts)} documents, {corpus.unique_bytes / MB:.1f} MB of distinct text")

        # ------------------------------------------------------------ index, warm-up
        refs_path = wd / "refs.parquet"
        n_refs, ref_bytes = write_refs(corpus, ref_rows, refs_path, row_group_mb=args.row_group_mb)
        index = wd / "index"
        b = Proc([py, "-m", "contamscan", "index", "build", refs_path, "-o", index], logs / "index-build.log")
        log(f"index: {n_refs} references, {ref_bytes / MB:.1f} MB, built in {b.wall:.1f} s whole process "
            f"(cold: includes compiling the kernels), peak RSS {b.rss_mib:.0f} MiB")
        w = Proc(scan_cmd(refs_path, index, wd / "warmup-out", "--workers", "1"), logs / "warmup.log")
        log(f"warm-up scan of the references (untimed): {w.wall:.1f} s")
        scan([str(refs_path)], str(index), wd / "warmup-inproc", ScanOptions(workers=1))
        result.update({"index_build_whole_s": round(b.wall, 2), "index_build_rss_mb": b.rss_mib,
                       "warmup_whole_s": round(w.wall, 2)})
        bands_rows = json.loads((index / "manifest.json").read_text())["params"]
        bands, rows = bands_rows["bands"], bands_rows["rows"]

        # ------------------------------------------------------------ start-up: one document
        one = wd / "one-doc.parquet"
        import pyarrow as pa

        one_text = corpus.ai_texts[ref_rows[0]]
        pq.write_table(pa.table({"id": ["one"], "text": pa.array([one_text], pa.large_string())}), one)
        Proc(scan_cmd(one, index, wd / "one-warm", "--workers", "1"), logs / "one-warm.log")
        one_runs = Runs()
        for i in range(args.one_doc_runs):
            one_runs.add(Proc(scan_cmd(one, index, wd / f"one-{i}", "--workers", "1"), logs / f"one-{i}.log"))
        assert report_totals(wd / "one-0")["flagged_documents"] == 1
        bare = min((Proc([py, "-c", "pass"], logs / f"bare-{i}.log") for i in range(3)), key=lambda p: p.wall)
        imp = min((Proc([py, "-c", "import contamscan.cli"], logs / f"import-{i}.log") for i in range(3)),
                  key=lambda p: p.wall)
        imp_scan = min((Proc([py, "-c", "import contamscan.cli, contamscan.scanner.run, contamscan.index, "
                                        "contamscan.report.write"], logs / f"import-scan-{i}.log") for i in range(3)),
                       key=lambda p: p.wall)
        inproc_one = []
        for i in range(max(3, args.one_doc_runs)):
            with Timer() as t:
                scan([str(one)], str(index), wd / f"one-inproc-{i}", ScanOptions(workers=1))
            inproc_one.append(t.wall)
        one_med = statistics.median(one_runs.walls())
        log(f"one-document scan, whole process: median {one_med:.2f} s, best {one_runs.best.wall:.2f} s "
            f"(runs {one_runs.walls()}); bare interpreter {bare.wall:.2f} s, import contamscan.cli {imp.wall:.2f} s, "
            f"imports of a scan {imp_scan.wall:.2f} s; the same scan in process {min(inproc_one):.3f} s")
        result.update({
            "one_doc_scan_s": round(one_med, 3), "one_doc_scan_best_s": round(one_runs.best.wall, 3),
            "one_doc_scan_runs_s": one_runs.walls(), "one_doc_scan_rss_mb": one_runs.max_rss_mib(),
            "one_doc_scan_cpu_s": round(one_runs.best.user + one_runs.best.sys, 2),
            "startup_python_s": bare.wall, "startup_import_cli_s": imp.wall, "startup_import_scan_s": imp_scan.wall,
            "one_doc_in_process_s": round(min(inproc_one), 4),
        })
        targets["one_doc_le_0_6"] = one_med <= 0.6

        # ------------------------------------------------------------ competitors' LSH (untimed)
        pickles = {}
        if not args.no_baselines:
            for lib in ("datasketch", "rensa"):
                pickles[lib] = wd / f"{lib}-lsh.pkl"
                with Timer() as t:
                    bp = Proc([py, BASELINE, "build", "--lib", lib, refs_path, pickles[lib], "--bands", bands,
                               "--rows", rows], logs / f"{lib}-build.log")
                info = json.loads(bp.stdout.strip().splitlines()[-1])
                log(f"{lib}: LSH of {info['refs']} references, {bands} x {rows}, {info['num_perm']} permutations, "
                    f"pickled in {t.wall:.1f} s ({pickles[lib].stat().st_size / MB:.1f} MB)")
                result[f"{lib}_num_perm"] = info["num_perm"]
            result["lsh_bands_rows"] = [bands, rows]

        # ------------------------------------------------------------ datasets
        kept = {}  # share -> (paths, stats, out dir of a whole-process scan): each share's smallest dataset
        whole_rates = {}
        for c in shares:
            for mb in mbs:
                key = f"{label_c(c)}_{label_mb(mb)}"
                with Timer() as t:
                    paths, stats = write_mixed_dataset(MixedDocs(corpus, ref_rows, c, args.seed), wd / f"data-{key}",
                                                       mb, args.shard_mb, row_group_mb=args.row_group_mb)
                st = stats.as_dict()
                disk = sum(p.stat().st_size for p in paths)
                log(f"dataset {key}: {len(paths)} shards, {st['documents']} documents, {stats.bytes / MB:.1f} MB of "
                    f"text ({disk / MB:.0f} MB on disk), planted {st['planted_documents']} documents "
                    f"({st['planted_doc_share']:.2%}; {st['planted_byte_share']:.2%} of bytes), written in {t.wall:.0f} s")
                runs = Runs()
                for i in range(args.repeat):
                    p = Proc(scan_cmd(paths[0].parent, index, wd / f"out-{key}-{i}", "--workers", "1"),
                             logs / f"scan-{key}-{i}.log")
                    runs.add(p)
                    log(f"  whole process run {i + 1}: {p.wall:.2f} s ({rate(stats.bytes, p.wall)} MB/s), "
                        f"CPU {p.user + p.sys:.1f} s, peak RSS {p.rss_mib:.0f} MiB")
                out = wd / f"out-{key}-0"
                tot = report_totals(out)
                assert tot["bytes"] == stats.bytes and tot["documents"] == stats.docs, (tot, st)
                placed = flagged_places(out, [p.name for p in paths])
                hit = sum(1 for d in placed.values() if d.startswith("planted/"))
                inproc = []
                for i in range(args.repeat):
                    with Timer() as t:
                        rep = scan([str(paths[0].parent)], str(index), wd / f"inproc-{key}-{i}", ScanOptions(workers=1))
                    inproc.append(t)
                    shutil.rmtree(wd / f"inproc-{key}-{i}", ignore_errors=True)
                assert rep.totals["flagged_documents"] == tot["flagged_documents"]
                ti = min(inproc, key=lambda x: x.wall)
                best = runs.best
                whole_rates[key] = rate(stats.bytes, best.wall)
                log(f"  {key}: whole process {whole_rates[key]} MB/s (best of {args.repeat}), in process "
                    f"{rate(stats.bytes, ti.wall)} MB/s ({ti.wall:.2f} s); flagged {tot['flagged_documents']}: "
                    f"{hit} of {st['planted_documents']} planted + {len(placed) - hit} others")
                result.update({
                    f"whole_mb_s_{key}": whole_rates[key], f"whole_s_{key}": best.wall,
                    f"whole_runs_s_{key}": runs.walls(), f"whole_cpu_s_{key}": round(best.user + best.sys, 2),
                    f"whole_cpu_mb_s_{key}": rate(stats.bytes, best.user + best.sys),
                    f"in_process_mb_s_{key}": rate(stats.bytes, ti.wall), f"in_process_s_{key}": round(ti.wall, 3),
                    f"in_process_runs_s_{key}": [round(x.wall, 3) for x in inproc],
                    f"fixed_cost_s_{key}": round(best.wall - ti.wall, 3),
                    f"rss_mb_{key}": runs.max_rss_mib(),
                    f"text_mb_{key}": round(stats.bytes / MB, 2), f"shards_{key}": len(paths),
                    f"documents_{key}": stats.docs, f"planted_{key}": st["planted_documents"],
                    f"planted_doc_share_{key}": st["planted_doc_share"],
                    f"planted_byte_share_{key}": st["planted_byte_share"],
                    f"flagged_{key}": tot["flagged_documents"], f"flagged_planted_{key}": hit,
                    f"flagged_clean_{key}": len(placed) - hit,
                })
                floor = 150 if c <= 0.1 else 100
                targets[f"whole_{key}_ge_{floor}"] = whole_rates[key] >= floor
                for i in range(1, args.repeat):
                    shutil.rmtree(wd / f"out-{key}-{i}", ignore_errors=True)
                if mb == mbs[0]:
                    kept[c] = (paths, stats, out)
                else:
                    shutil.rmtree(paths[0].parent, ignore_errors=True)
            result[f"rss_mb_{label_c(c)}"] = result[f"rss_mb_{label_c(c)}_{label_mb(mbs[-1])}"]
        for c in shares:
            floor = 150 if c <= 0.1 else 100
            targets[f"whole_{label_c(c)}_ge_{floor}"] = all(targets[f"whole_{label_c(c)}_{label_mb(m)}_ge_{floor}"]
                                                           for m in mbs)
        if len(shares) > 1:
            lo, hi = (f"rss_mb_{label_c(min(shares))}", f"rss_mb_{label_c(max(shares))}")
            result["rss_growth_mb_flagged"] = round(result[hi] - result[lo], 1)
            targets["rss_flat_in_flagged"] = result[hi] - result[lo] <= 64

        # ------------------------------------------------------------ competitors, whole process
        if not args.no_baselines:
            for c, (paths, stats, out) in kept.items():
                lc = label_c(c)
                key = f"{lc}_{label_mb(mbs[0])}"
                limit_mb = min(args.baseline_mb, stats.bytes / MB)
                found = {}
                for lib in ("datasketch", "rensa"):
                    runs = Runs()
                    for i in range(args.repeat):
                        runs.add(Proc([py, BASELINE, "scan", "--lib", lib, pickles[lib], *paths, "--limit-mb", limit_mb],
                                      logs / f"{lib}-{lc}-{i}.log"))
                    res = json.loads(runs.best.stdout.strip().splitlines()[-1])
                    found[lib] = {tuple(x) for x in res["flagged_places"]}
                    r = rate(res["bytes"], runs.best.wall)
                    log(f"{lib} on the first {res['bytes'] / MB:.1f} MB of {key}: {runs.best.wall:.2f} s, {r} MB/s "
                        f"whole process (runs {runs.walls()}), peak RSS {runs.max_rss_mib():.0f} MiB; "
                        f"{res['flagged']} of {res['documents']} flagged")
                    ratio = round(whole_rates[key] / r, 1)
                    result.update({f"{lib}_mb_s_{lc}": r, f"{lib}_s_{lc}": runs.best.wall,
                                   f"{lib}_cpu_s_{lc}": round(runs.best.user + runs.best.sys, 2),
                                   f"{lib}_cpu_mb_s_{lc}": rate(res["bytes"], runs.best.user + runs.best.sys),
                                   f"{lib}_runs_s_{lc}": runs.walls(), f"{lib}_rss_mb_{lc}": runs.max_rss_mib(),
                                   f"ratio_vs_{lib}_{lc}": ratio})
                    result[f"{lib}_prefix_mb_{lc}"] = round(res["bytes"] / MB, 2)
                    result[f"{lib}_prefix_docs_{lc}"] = res["documents"]
                    floor = 25 if lib == "datasketch" else 10
                    targets[f"ratio_vs_{lib}_{lc}_ge_{floor}"] = ratio >= floor
                # what contamscan flagged on the same prefix (its scan of the whole dataset); both
                # competitors read the same prefix
                assert result[f"datasketch_prefix_docs_{lc}"] == result[f"rensa_prefix_docs_{lc}"]
                n_prefix = res["documents"]
                rows_per = [pq.ParquetFile(p).metadata.num_rows for p in paths]
                start, acc = [], 0
                for n in rows_per:
                    start.append(acc)
                    acc += n
                cs = {k for k in flagged_places(out, [p.name for p in paths]) if start[k[0]] + k[1] < n_prefix}
                both = cs & found["datasketch"] & found["rensa"]
                pf = {"contamscan": len(cs), "datasketch": len(found["datasketch"]), "rensa": len(found["rensa"]),
                      "all_three": len(both), "contamscan_and_datasketch": len(cs & found["datasketch"]),
                      "contamscan_and_rensa": len(cs & found["rensa"])}
                log(f"  flagged on that prefix: {pf}")
                result[f"prefix_flagged_{lc}"] = pf
            # the headline names of the issue: the first (lowest) share
            c0 = label_c(min(shares))
            for lib in ("datasketch", "rensa"):
                result[f"{lib}_mb_s"] = result[f"{lib}_mb_s_{c0}"]

        # ------------------------------------------------------------ workers 1 vs 2, Ray
        paths, stats, _ = kept[shares[0]]
        data_dir = paths[0].parent
        wkey = f"{label_c(shares[0])}_{label_mb(mbs[0])}"
        if len(paths) < 4:
            log(f"  WARNING: the workers' dataset has {len(paths)} shards (fewer than 4)")
        settings = [("workers1", ["--workers", "1"]), ("workers2", ["--workers", "2"])]
        if not args.no_ray:
            p = Proc(scan_cmd(data_dir, index, wd / "ray-warm", "--executor", "ray", "--workers", "2"),
                     logs / "ray-warm.log")
            log(f"Ray warm-up run (untimed): {p.wall:.2f} s")
            result["ray2_first_run_s"] = p.wall
            settings += [("ray1", ["--executor", "ray", "--workers", "1"]), ("ray2", ["--executor", "ray", "--workers", "2"])]
        by = {name: Runs() for name, _ in settings}
        result["loadavg_before_workers"] = loadavg()
        for i in range(args.repeat):  # the settings in turns: drift falls on all
            for name, extra in settings:
                out = wd / f"par-{name}-{i}"
                by[name].add(Proc(scan_cmd(data_dir, index, out, *extra), logs / f"par-{name}-{i}.log"))
                assert report_totals(out)["flagged_documents"] == result[f"flagged_{wkey}"], name
                shutil.rmtree(out, ignore_errors=True)
        for name, r in by.items():
            log(f"  {name}: {r.best.wall:.2f} s ({rate(stats.bytes, r.best.wall)} MB/s), runs {r.walls()}, "
                f"CPU {r.best.user + r.best.sys:.1f} s, peak RSS {r.max_rss_mib():.0f} MiB")
            result[f"{name}_s"] = r.best.wall
            result[f"{name}_runs_s"] = r.walls()
            result[f"{name}_mb_s"] = rate(stats.bytes, r.best.wall)
            result[f"{name}_cpu_s"] = round(r.best.user + r.best.sys, 2)
        result["loadavg_after_workers"] = loadavg()
        result["workers_dataset"] = wkey
        result["workers_shards"] = len(paths)
        t1 = by["workers1"].best.wall
        result["workers2_speedup"] = round(t1 / by["workers2"].best.wall, 2)
        targets["workers2_ge_1_8"] = result["workers2_speedup"] >= 1.8
        if not args.no_ray:
            result["ray2_speedup"] = round(t1 / by["ray2"].best.wall, 2)
            result["ray2_vs_ray1"] = round(by["ray1"].best.wall / by["ray2"].best.wall, 2)
            targets["ray2_ge_1_7"] = result["ray2_speedup"] >= 1.7
        for c, (paths, _, _) in kept.items():
            shutil.rmtree(paths[0].parent, ignore_errors=True)

        # ------------------------------------------------------------ peak RSS against shard size
        sizes = [args.small_mb] + ([args.huge_mb] if args.huge_mb > 0 else [])
        rss = {}
        for fmt in ("parquet", "jsonl"):
            for mb in sizes:
                key = f"{fmt}_{label_mb(mb)}"
                d = wd / f"single-{key}"
                docs = MixedDocs(corpus, ref_rows, shares[0], args.seed)
                with Timer() as t:
                    if fmt == "parquet":
                        ps, stats = write_mixed_dataset(docs, d, mb, mb + 1, row_group_mb=args.row_group_mb,
                                                        prefix="single")
                        assert len(ps) == 1
                        path = ps[0]
                    else:
                        path = d / "single.jsonl"
                        stats = write_mixed_jsonl(docs, path, mb)
                disk = path.stat().st_size
                p = Proc(scan_cmd(path, index, wd / f"out-{key}", "--workers", "1"), logs / f"rss-{key}.log")
                tot = report_totals(wd / f"out-{key}")
                assert tot["bytes"] == stats.bytes, (tot["bytes"], stats.bytes)
                log(f"single {fmt} shard of {stats.bytes / MB:.0f} MB of text ({disk / MB:.0f} MB on disk, written in "
                    f"{t.wall:.0f} s): peak RSS {p.rss_mib:.0f} MiB, {p.wall:.1f} s ({rate(stats.bytes, p.wall)} MB/s), "
                    f"{tot['flagged_documents']} flagged")
                rss[key] = p.rss_mib
                result.update({f"rss_mb_{key}": p.rss_mib, f"single_mb_s_{key}": rate(stats.bytes, p.wall),
                               f"single_disk_mb_{key}": round(disk / MB, 1)})
                shutil.rmtree(d, ignore_errors=True)
                shutil.rmtree(wd / f"out-{key}", ignore_errors=True)
            if args.huge_mb > 0:
                small, huge = rss[f"{fmt}_{label_mb(args.small_mb)}"], rss[f"{fmt}_{label_mb(args.huge_mb)}"]
                result[f"rss_growth_mb_{fmt}"] = round(huge - small, 1)
                targets[f"rss_{fmt}_huge_lt_1gib"] = huge < 1024
                targets[f"rss_{fmt}_flat_in_shard"] = huge - small <= 64
    result["loadavg_end"] = loadavg()
    result["targets"] = targets
    result["targets_met"] = sum(targets.values())
    result["targets_total"] = len(targets)
    result.update({"threads": 1, **machine(), "versions": versions("ray")})
    emit(result)


if __name__ == "__main__":
    main()
