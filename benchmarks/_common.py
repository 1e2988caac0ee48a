"""Shared helpers of the benchmark scripts: single-thread setup, synthetic datasets built
from the real texts under ../shared/data, work directories, versions, logging.

The scripts import this module *after* :func:`pin_threads` has set the environment, so
numba, polars and Arrow start with one thread each.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

THREAD_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
}

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MB = 1_000_000  # throughput is reported in MB (10**6 bytes) of UTF-8 text per second


def pin_threads() -> None:
    """One thread for every library that would start a pool, and a private numba cache.
    Call before importing them.

    The kernels themselves are compiled ahead of time into contamscan's own cache
    (``contamscan.native``: entries named by a digest of their sources, safe to share); the
    private numba cache (unless NUMBA_CACHE_DIR is set) is for numba's JIT, which contamscan
    uses only where it cannot build them. Worker processes inherit the directory.
    """
    for k, v in THREAD_ENV.items():
        os.environ[k] = v
    if "NUMBA_CACHE_DIR" not in os.environ:
        import atexit

        d = tempfile.mkdtemp(prefix="contamscan-bench-numba-")
        os.environ["NUMBA_CACHE_DIR"] = d
        atexit.register(shutil.rmtree, d, True)


def pin_arrow() -> None:
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def log(*args) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    """The one line a benchmark prints to stdout."""
    print(json.dumps(result, sort_keys=False), flush=True)


def add_common_args(p) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with ai/slop_score.parquet and human/*.parquet (read only; default: %(default)s)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where generated shards, indexes and reports go (default: a fresh temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory at the end")
    p.add_argument("--seed", type=int, default=0, help="seed of the document order (default: %(default)s)")


@contextmanager
def workdir(path: Path | None, keep: bool):
    """A work directory: ``path`` (created if needed, never removed) or a fresh temporary one,
    removed at the end unless ``keep``."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    d = Path(tempfile.mkdtemp(prefix="contamscan-bench-"))
    try:
        yield d
    finally:
        if keep:
            log(f"kept work directory {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*extra: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("contamscan", "datasketch", "rensa", "pyarrow", "polars", "numpy", "numba", "xxhash", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    try:  # the source tree measured (read only)
        import subprocess

        root = Path(__file__).resolve().parents[1]
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "contamscan"], cwd=root,
                               capture_output=True, text=True)
        if rev.returncode == 0:
            out["contamscan_commit"] = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return out


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count()}


# --------------------------------------------------------------------------- real texts


class Corpus:
    """The real texts: AI outputs (with their model) and human texts, in one seeded order."""

    def __init__(self, data: Path, seed: int = 0):
        import pyarrow.parquet as pq

        ai_path = data / "ai" / "slop_score.parquet"
        human_paths = sorted((data / "human").glob("*.parquet"))
        if not ai_path.is_file() or not human_paths:
            raise SystemExit(f"real data not found under {data} (need ai/slop_score.parquet and human/*.parquet)")
        ai = pq.read_table(ai_path, columns=["id", "model", "text"])
        self.ai_ids = [str(x) for x in ai["id"].to_pylist()]
        self.ai_models = ai["model"].to_pylist()
        self.ai_texts = ai["text"].to_pylist()
        self.human_ids, self.human_texts = [], []
        for p in human_paths:
            t = pq.read_table(p, columns=["id", "text"])
            self.human_ids += [f"{p.stem}/{x}" for x in t["id"].to_pylist()]
            self.human_texts += t["text"].to_pylist()
        # documents of the dataset: every AI and human text, in a seeded order
        docs = [(f"ai/{i}", t) for i, t in zip(self.ai_ids, self.ai_texts) if t is not None]
        docs += [(f"human/{i}", t) for i, t in zip(self.human_ids, self.human_texts) if t is not None]
        random.Random(seed).shuffle(docs)
        self.doc_ids = [d[0] for d in docs]
        self.doc_texts = [d[1] for d in docs]
        self.doc_bytes = [len(t.encode("utf-8")) for t in self.doc_texts]
        self.unique_bytes = sum(self.doc_bytes)

    def ref_rows(self, n: int, seed: int = 0) -> list[int]:
        """``n`` AI outputs (row numbers), a seeded sample: the references of an index."""
        rows = [i for i, t in enumerate(self.ai_texts) if t is not None]
        if n > len(rows):
            raise SystemExit(f"asked for {n} references, the AI data has {len(rows)}")
        return sorted(random.Random(seed + 1).sample(rows, n))


def write_refs(corpus: Corpus, rows: list[int], path: Path, min_mb: float = 0.0,
               row_group_mb: float = 16) -> tuple[int, int]:
    """Write the references ``rows`` (id, model, text) to a Parquet file (zstd), repeated until
    it holds at least ``min_mb`` MB of text (repeats get distinct ids), in row groups of
    ~``row_group_mb`` MB of text like :func:`write_dataset`'s shards (so that reading it for
    an index build is the same work per byte as reading a dataset shard for a scan).
    Returns (refs, bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("model", pa.string()), ("text", pa.large_string())])
    rg_cap = int(row_group_mb * MB)
    n_refs = nbytes = 0
    ids, models, texts, rg = [], [], [], 0

    def flush(w):
        nonlocal ids, models, texts, rg
        if ids:
            w.write_table(pa.table({"id": pa.array(ids, pa.string()), "model": pa.array(models, pa.string()),
                                    "text": pa.array(texts, pa.large_string())}, schema=schema))
        ids, models, texts, rg = [], [], [], 0

    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        rep = 0
        while True:
            for r in rows:
                ids.append(corpus.ai_ids[r] if rep == 0 else f"{corpus.ai_ids[r]}#{rep}")
                models.append(corpus.ai_models[r])
                texts.append(corpus.ai_texts[r])
                b = len(corpus.ai_texts[r].encode("utf-8"))
                nbytes += b
                rg += b
                n_refs += 1
                if rg >= rg_cap:
                    flush(w)
            rep += 1
            if nbytes >= min_mb * MB:
                break
        flush(w)
    return n_refs, nbytes


def write_dataset(corpus: Corpus, out_dir: Path, total_mb: float, shard_mb: float, row_group_mb: float = 16,
                  prefix: str = "part", start: int = 0) -> tuple[list[Path], int, int]:
    """Parquet shards (zstd; columns id, text) of the corpus documents, cycled in order from
    document ``start`` until ``total_mb`` MB of text; a shard holds ~``shard_mb`` MB of text
    in row groups of ~``row_group_mb`` MB. Repeats keep their text and get distinct ids.
    Returns (paths, text bytes, documents). Memory: one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("text", pa.large_string())])
    total, docs = int(total_mb * MB), 0
    shard_cap, rg_cap = int(shard_mb * MB), int(row_group_mb * MB)
    n = len(corpus.doc_texts)
    written = 0
    k = start
    paths = []
    while written < total:
        path = out_dir / f"{prefix}-{len(paths):05d}.parquet"
        paths.append(path)
        in_shard = 0
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            while in_shard < shard_cap and written < total:
                ids, texts, rg = [], [], 0
                while rg < rg_cap and in_shard + rg < shard_cap and written + rg < total:
                    i = k % n
                    rep = k // n
                    ids.append(corpus.doc_ids[i] if rep == 0 else f"{corpus.doc_ids[i]}#{rep}")
                    texts.append(corpus.doc_texts[i])
                    rg += corpus.doc_bytes[i]
                    k += 1
                w.write_table(pa.table({"id": pa.array(ids, pa.string()),
                                        "text": pa.array(texts, pa.large_string())}, schema=schema))
                in_shard += rg
                written += rg
                docs += len(texts)
    return paths, written, docs


def text_bytes(paths) -> int:
    """UTF-8 bytes of the ``text`` column of Parquet files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for p in paths:
        pf = pq.ParquetFile(p)
        for rb in pf.iter_batches(columns=["text"], use_threads=False):
            total += pc.sum(pc.binary_length(rb.column(0))).as_py() or 0
    return total


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def rate(nbytes: int, seconds: float) -> float:
    return round(nbytes / MB / seconds, 2) if seconds > 0 else float("nan")


AI_POLISHED = ("TOEFL_gpt4polished", "HewlettStudentEssay_GPTsimplif")  # sources of AI-polished essays


def style_split(data: Path, seed: int):
    """The profile / test split of the style benchmarks (bench_style, bench_attribution), seeded:
    the 300 prompts shuffled into halves, and each human source (the AI-polished essays left
    out) shuffled into halves. Returns (AI rows with text: id, model, prompt_index, text; the
    profile half's prompts; {source: (profile rows, test rows)} of human rows: id, source, text;
    the seeded generator, to draw what follows from the same sequence)."""
    import random

    import pyarrow.parquet as pq

    ai = [r for r in pq.read_table(data / "ai" / "slop_score.parquet",
                                   columns=["id", "model", "prompt_index", "text"]).to_pylist() if r["text"]]
    human = []
    for p in sorted((data / "human").glob("*.parquet")):
        human += [r for r in pq.read_table(p, columns=["id", "source", "text"]).to_pylist()
                  if r["text"] and not r["source"].startswith(AI_POLISHED)]
    rng = random.Random(seed)
    prompts = sorted({r["prompt_index"] for r in ai})
    rng.shuffle(prompts)
    by_source: dict = {}
    for r in human:
        by_source.setdefault(r["source"], []).append(r)
    halves = {}
    for src in sorted(by_source):
        rows = sorted(by_source[src], key=lambda r: str(r["id"]))
        rng.shuffle(rows)
        halves[src] = (rows[:len(rows) // 2], rows[len(rows) // 2:])
    return ai, set(prompts[: len(prompts) // 2]), halves, rng


# --------------------------------------------------------------------------- controlled contamination


class MixedDocs:
    """An endless, seeded stream of dataset documents of which a share ``contamination`` (by
    documents) are verbatim copies of the indexed references ``ref_rows`` (AI outputs) and
    the rest non-indexed text: the human texts and the AI outputs *not* in the index.

    Each document is planted with probability ``contamination`` (a seeded Bernoulli draw per
    document, so the realised share is close to it and reported). Each pool is walked in a
    seeded shuffled order, reshuffled whenever it is used up (repeats allowed: the real data
    is ~24 MB); a repeat keeps its text and gets a distinct id. Ids say what a document is:
    ``planted/<ref id>#<n>`` for a copy of a reference, ``clean/<doc id>#<n>`` otherwise, so
    a scan's matches can be checked against what was planted. Two streams of the same
    corpus, references, share and seed yield the same documents: a smaller dataset is a
    prefix of a larger one. ``also_indexed``: ids (as ``corpus.doc_ids``) of other documents
    the index holds (human texts, say), kept out of the clean pool.
    """

    def __init__(self, corpus: Corpus, ref_rows: list[int], contamination: float, seed: int = 0,
                 also_indexed=()):
        self.contamination = contamination
        self.rng = random.Random(f"mixed-{seed}-{contamination}")
        indexed = {f"ai/{corpus.ai_ids[r]}" for r in ref_rows} | set(also_indexed)
        self.planted_pool = [(f"planted/{corpus.ai_ids[r]}", corpus.ai_texts[r]) for r in ref_rows]
        self.clean_pool = [(f"clean/{i}", t) for i, t in zip(corpus.doc_ids, corpus.doc_texts) if i not in indexed]
        self._orders = {}
        self._pos = {}
        self.n = 0

    def _next(self, name: str, pool: list):
        order, pos = self._orders.get(name), self._pos.get(name, 0)
        if order is None or pos >= len(order):
            order = list(range(len(pool)))
            self.rng.shuffle(order)
            self._orders[name], pos = order, 0
        self._pos[name] = pos + 1
        return pool[order[pos]]

    def __iter__(self):
        return self

    def __next__(self) -> tuple[str, str, bool]:
        """(id, text, planted)"""
        planted = self.rng.random() < self.contamination
        doc_id, text = self._next("planted", self.planted_pool) if planted else self._next("clean", self.clean_pool)
        self.n += 1
        return f"{doc_id}#{self.n}", text, planted


class MixStats:
    """What a mixed dataset holds: documents, text bytes, planted documents and their bytes."""

    def __init__(self):
        self.docs = self.bytes = self.planted_docs = self.planted_bytes = 0

    def add(self, planted: bool, nbytes: int) -> None:
        self.docs += 1
        self.bytes += nbytes
        if planted:
            self.planted_docs += 1
            self.planted_bytes += nbytes

    def as_dict(self) -> dict:
        return {"documents": self.docs, "text_bytes": self.bytes, "planted_documents": self.planted_docs,
                "planted_bytes": self.planted_bytes,
                "planted_doc_share": round(self.planted_docs / self.docs, 4) if self.docs else 0.0,
                "planted_byte_share": round(self.planted_bytes / self.bytes, 4) if self.bytes else 0.0}


def write_mixed_dataset(docs: MixedDocs, out_dir: Path, total_mb: float, shard_mb: float, row_group_mb: float = 16,
                        prefix: str = "part") -> tuple[list[Path], MixStats]:
    """Parquet shards (zstd; columns id, text) of the next documents of ``docs`` until
    ``total_mb`` MB of text, laid out like :func:`write_dataset`: ~``shard_mb`` MB of text
    per shard in row groups of ~``row_group_mb`` MB. Returns (paths, stats). Memory: one row
    group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("text", pa.large_string())])
    total, shard_cap, rg_cap = int(total_mb * MB), int(shard_mb * MB), int(row_group_mb * MB)
    stats = MixStats()
    paths: list[Path] = []
    while stats.bytes < total:
        path = out_dir / f"{prefix}-{len(paths):05d}.parquet"
        paths.append(path)
        in_shard = 0
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            while in_shard < shard_cap and stats.bytes < total:
                ids, texts, rg = [], [], 0
                while rg < rg_cap and in_shard + rg < shard_cap and stats.bytes < total:
                    doc_id, text, planted = next(docs)
                    b = len(text.encode("utf-8"))
                    ids.append(doc_id)
                    texts.append(text)
                    stats.add(planted, b)
                    rg += b
                w.write_table(pa.table({"id": pa.array(ids, pa.string()),
                                        "text": pa.array(texts, pa.large_string())}, schema=schema))
                in_shard += rg
    return paths, stats


def write_mixed_jsonl(docs: MixedDocs, path: Path, total_mb: float) -> MixStats:
    """One JSON Lines file (``{"id": ..., "text": ...}`` per line, uncompressed) of the next
    documents of ``docs`` until ``total_mb`` MB of text, written as it goes (memory: one
    line at a time, buffered). Returns its stats."""
    total = int(total_mb * MB)
    stats = MixStats()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", buffering=4 << 20) as f:
        while stats.bytes < total:
            doc_id, text, planted = next(docs)
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False))
            f.write("\n")
            stats.add(planted, len(text.encode("utf-8")))
    return stats
