"""Executors: run :func:`contamscan.scan.scan_shard` over many shards.

The local executor uses a pool of forked processes that inherit the opened index; its
arrays are memory-mapped, so all workers share one copy through the page cache. Results come back in shard order whatever
the order of completion, so reports do not depend on ``--workers``.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from .config import ScanOptions

_worker = {}  # per worker process: the opened index, its hasher, the progress queue


def _init_worker(index, progress_queue) -> None:
    _worker.update(index=index, hasher=index.hasher(), queue=progress_queue)


def _report_batch(batch) -> None:
    q = _worker.get("queue")
    if q is not None:
        q.put((len(batch.texts) + len(batch.bad), batch.raw_bytes))


def _scan_in_worker(shard, options):
    from .scan import scan_shard

    return scan_shard(shard, _worker["index"], options, _worker["hasher"], progress=_report_batch)


def run_local(shards, index, options: ScanOptions, progress=None, on_result=None) -> list:
    """Scan ``shards`` with ``options.n_workers`` processes (in this process when 1).
    ``on_result(i, result)`` is called in this process as each shard finishes (checkpoints)."""
    from .scan import scan_shard

    workers = min(options.n_workers, max(len(shards), 1))
    if workers <= 1:
        hasher = index.hasher()
        cb = (lambda b: progress(len(b.texts) + len(b.bad), b.raw_bytes)) if progress else None
        results = []
        for i, s in enumerate(shards):
            results.append(scan_shard(s, index, options, hasher, progress=cb))
            if on_result:
                on_result(i, results[-1])
        return results

    # fork: workers inherit the opened index (its arrays are memory-mapped, so the pages
    # are shared) and the compiled kernels, and start in milliseconds instead of a second.
    # Workers use only numpy, numba and pyarrow (which re-initialises its pools after a
    # fork), never polars, whose thread pool does not survive a fork.
    ctx = mp.get_context("fork")
    q = ctx.Queue() if progress else None
    results = [None] * len(shards)
    warm_up(index)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(index, q)) as pool:
        pending = {pool.submit(_scan_in_worker, s, options): i for i, s in enumerate(shards)}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                results[i] = f.result()
                if on_result:
                    on_result(i, results[i])
            _drain(q, progress)
    _drain(q, progress)
    return results


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
