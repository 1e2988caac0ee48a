"""Executors: run :func:`~contamscan.scanner.shard.scan_shard` over a scan's units of work.

Both take the same arguments and give the same results, in unit order whatever the order of
completion, so reports do not depend on the executor or on the number of workers:

* :class:`LocalExecutor`: a pool of forked processes on this machine that inherit the opened
  index (its arrays are memory-mapped, so all workers share one copy through the page cache);
  in this process when there is one worker.
* :class:`RayExecutor`: tasks on a Ray cluster (``pip install 'contamscan[ray]'``); a worker
  maps the index once and keeps it for its tasks.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Protocol

from ..config import ScanOptions
from ..errors import ContamscanError
from ..index import ReferenceIndex, open_index
from ..model import Shard, ShardResult
from .shard import scan_shard

Progress = Callable[[int, int], None]  # (records, bytes on disk) as work advances
OnResult = Callable[[int, ShardResult], ShardResult]  # (unit number, result) -> what to keep


class Executor(Protocol):
    def run(self, units: list[Shard], index: ReferenceIndex, options: ScanOptions, progress: Progress | None,
            on_result: OnResult | None) -> list[ShardResult]:
        """Scan ``units``; ``on_result(i, result)`` is called in this process as each finishes
        (checkpoints), and what it returns is kept in place of the result."""


def executor_for(options: ScanOptions) -> Executor:
    return RayExecutor(options.ray_address) if options.executor == "ray" else LocalExecutor()


# --------------------------------------------------------------------------- local

_worker = {}  # per worker process: the opened index, its hasher, the progress queue


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCHDOG_SECONDS = 0.5


def _init_worker(index, progress_queue, parent: int) -> None:
    die_with_parent(parent)
    _worker.update(index=index, hasher=index.hasher(), queue=progress_queue)


def die_with_parent(parent: int) -> None:
    """Make this forked worker end when its parent ends, however the parent ends (SIGKILL by
    the OOM killer, ``kill PID``, ``timeout``, a container stop): on Linux the kernel sends
    it SIGKILL (PR_SET_PDEATHSIG); everywhere, a watchdog thread that sees it re-parented
    (``getppid()`` changed) kills it. A worker left behind would keep scanning, hold the
    caller's pipes open, and write into an output directory whose scan is over. Ctrl-C at a
    terminal reaches the whole process group: the worker ignores it, the parent decides (it
    stops its workers and keeps the finished shards)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever the parent set up for itself
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still holds
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watchdog, args=(parent,), name="contamscan-watchdog", daemon=True).start()


def _watchdog(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def _report_batch(batch) -> None:
    q = _worker.get("queue")
    if q is not None:
        q.put((batch.n_records, batch.raw_bytes))


def _scan_in_worker(shard, options):
    return scan_shard(shard, _worker["index"], options, _worker["hasher"], progress=_report_batch)


class LocalExecutor:
    """``options.n_workers`` forked processes on this machine (this process when 1)."""

    def run(self, units, index, options, progress=None, on_result=None) -> list[ShardResult]:
        keep = on_result or (lambda i, r: r)
        workers = min(options.n_workers, max(len(units), 1))
        if workers <= 1:
            hasher = index.hasher()
            cb = (lambda b: progress(b.n_records, b.raw_bytes)) if progress else None
            return [keep(i, scan_shard(s, index, options, hasher, progress=cb)) for i, s in enumerate(units)]
        # fork: workers inherit the opened index (its arrays are memory-mapped, so the pages
        # are shared) and the compiled kernels, and start in milliseconds instead of a second.
        # Workers use only numpy, numba and pyarrow (which re-initialises its pools after a
        # fork), never polars, whose thread pool does not survive a fork.
        ctx = mp.get_context("fork")
        q = ctx.Queue() if progress else None
        results = [None] * len(units)
        warm_up(index)
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(index, q, os.getpid()))
        try:
            pending = {pool.submit(_scan_in_worker, s, options): i for i, s in enumerate(units)}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for f in done:
                    i = pending.pop(f)
                    results[i] = keep(i, f.result())
                _drain(q, progress)
        except BaseException:  # Ctrl-C, SIGTERM, a failed checkpoint: the workers stop now, not after their shards
            _kill_workers(pool)
            raise
        pool.shutdown(wait=True)
        _drain(q, progress)
        return results


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers at once (SIGKILL: what they were writing is temporary files,
    removed by the next scan) and wait until they are gone."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError):
            pass
    for p in processes:
        p.join(10)
    pool.shutdown(wait=False, cancel_futures=True)


def warm_up(index) -> None:
    """Load (or compile) every kernel of a scan in this process, so forked workers inherit them."""
    sigs = index.hasher().signatures(["warm up the kernels before forking: " + "every word " * 300])
    index.query(sigs.values)
    if sigs.anchors is not None:
        index.partial(sigs.anchors, 1, 2, 0.5)


def _drain(q, progress) -> None:
    if q is None:
        return
    while True:
        try:
            docs, nbytes = q.get_nowait()
        except queue.Empty:
            return
        progress(docs, nbytes)


# --------------------------------------------------------------------------- Ray

_ray_indexes = {}  # per Ray worker process: opened indexes by path (memory-mapped, so one copy per node)


def _ray_scan(shard, options, index_path: str):
    index = _ray_indexes.get(index_path)
    if index is None:  # first task in this worker process: map the index (its pages are shared on the node)
        index = _ray_indexes[index_path] = open_index(index_path, verify=False)
        _ray_indexes[index_path + "#hasher"] = index.hasher()
    return scan_shard(shard, index, options, _ray_indexes[index_path + "#hasher"])


class RayExecutor:
    """Tasks on the Ray cluster at ``address`` (None: a local one with ``options.n_workers``
    CPUs). Every node must see the index and the shards at the same paths (a shared file
    system), or they are URIs: a remote index is downloaded once per node, into its cache."""

    def __init__(self, address: str | None = None):
        self.address = address

    def run(self, units, index, options, progress=None, on_result=None) -> list[ShardResult]:
        try:
            import ray  # noqa: PLC0415 (optional: the ray extra)
        except ImportError:
            raise ContamscanError("the Ray executor needs Ray: pip install 'contamscan[ray]'") from None
        keep = on_result or (lambda i, r: r)
        started_here = not ray.is_initialized()
        if started_here:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs = dict(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            if self.address is None:  # a local cluster: on loopback only
                kwargs.update(num_cpus=options.n_workers, _node_ip_address="127.0.0.1")
            elif self.address.split(":")[0] in ("127.0.0.1", "localhost"):  # this driver joins it on loopback too
                kwargs.update(_node_ip_address="127.0.0.1")
            ray.init(**kwargs)
        try:
            task = ray.remote(num_cpus=1, max_retries=2)(_ray_scan)
            # an index by its absolute path or URI: each node opens (a remote one: downloads) it
            index_path = index.location.absolute().path
            pending = {task.remote(s, options, index_path): i for i, s in enumerate(units)}
            results = [None] * len(units)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    results[i] = ray.get(ref)
                    if progress:
                        progress(results[i].documents + results[i].bad_records, units[i].size)
                    results[i] = keep(i, results[i])
            return results
        finally:
            if started_here:
                ray.shutdown()
