"""Executors: run :func:`contamscan.scan.scan_shard` over many shards.

The local executor uses a pool of forked processes that inherit the opened index; its
arrays are memory-mapped, so all workers share one copy through the page cache. Results come back in shard order whatever
the order of completion, so reports do not depend on ``--workers``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from pathlib import Path
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from .config import ScanOptions

_worker = {}  # per worker process: the opened index, its hasher, the progress queue


def _init_worker(index, progress_queue) -> None:
    _worker.update(index=index, hasher=index.hasher(), queue=progress_queue)


def _report_batch(batch) -> None:
    q = _worker.get("queue")
    if q is not None:
        q.put((batch.n_records, batch.raw_bytes))


def _scan_in_worker(shard, options):
    from .scan import scan_shard

    return scan_shard(shard, _worker["index"], options, _worker["hasher"], progress=_report_batch)


def run_local(shards, index, options: ScanOptions, progress=None, on_result=None) -> list:
    """Scan ``shards`` with ``options.n_workers`` processes (in this process when 1).
    ``on_result(i, result)`` is called in this process as each shard finishes (checkpoints);
    what it returns is kept in place of the result (the scan keeps it without its matches)."""
    from .scan import scan_shard

    workers = min(options.n_workers, max(len(shards), 1))
    if workers <= 1:
        hasher = index.hasher()
        cb = (lambda b: progress(b.n_records, b.raw_bytes)) if progress else None
        results = []
        for i, s in enumerate(shards):
            results.append(scan_shard(s, index, options, hasher, progress=cb))
            if on_result:
                results[-1] = on_result(i, results[-1])
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
                    results[i] = on_result(i, results[i])
            _drain(q, progress)
    _drain(q, progress)
    return results


# --------------------------------------------------------------------------- Ray

_ray_indexes = {}  # per Ray worker process: opened indexes by path (memory-mapped, so one copy per node)


def _ray_scan(shard, options, index_path: str):
    from .index import open_index
    from .scan import scan_shard

    index = _ray_indexes.get(index_path)
    if index is None:  # first task in this worker process: map the index (its pages are shared on the node)
        index = _ray_indexes[index_path] = open_index(index_path, verify=False)
        _ray_indexes[index_path + "#hasher"] = index.hasher()
    return scan_shard(shard, index, options, _ray_indexes[index_path + "#hasher"])


def run_ray(shards, index, options: ScanOptions, progress=None, on_result=None, address: str | None = None) -> list:
    """Scan ``shards`` as Ray tasks, on the cluster at ``address`` (None: a local one with
    ``options.n_workers`` CPUs). Every node must see the index and the shards at the same
    paths (a shared file system), or they are remote URIs (contamscan.storage): a remote
    index is downloaded once per node, into its cache. A worker maps the index once and
    keeps it for its tasks. Results come back in shard order, as from :func:`run_local`."""
    try:
        import ray
    except ImportError:
        from .errors import ContamscanError

        raise ContamscanError("--executor ray needs Ray: pip install 'contamscan[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs = dict(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if address is None:  # a local cluster: on loopback only
            kwargs.update(num_cpus=options.n_workers, _node_ip_address="127.0.0.1")
        elif address.split(":")[0] in ("127.0.0.1", "localhost"):  # this driver joins it on loopback too
            kwargs.update(_node_ip_address="127.0.0.1")
        ray.init(**kwargs)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(_ray_scan)
        # a remote index by its URI: each node opens (downloads) it into its own cache
        index_path = index.uri or str(Path(index.path).resolve())
        pending = {task.remote(s, options, index_path): i for i, s in enumerate(shards)}
        results = [None] * len(shards)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                results[i] = ray.get(ref)
                if progress:
                    progress(results[i].documents + results[i].bad_records, shards[i].size)
                if on_result:
                    results[i] = on_result(i, results[i])
        return results
    finally:
        if started_here:
            ray.shutdown()


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
