"""Throughput of contamscan against datasketch and rensa, one process and one core each.

On the same texts (real AI and human texts from ../shared/data, repeated into Parquet
shards of ~64 MB of text):

* end to end: ``contamscan.scan`` with one worker over the whole dataset, and the same work
  done with datasketch (read Parquet in batches, Python shingling, ``MinHash.update_batch``,
  ``MinHashLSH.query``, verification with ``jaccard``) over the first ``--baseline-mb``;
* signatures alone on the first ``--sig-mb``: ``Hasher.signatures`` on Arrow arrays, rensa's
  ``RMinHash`` and datasketch's ``MinHash`` fed the same Python shingles (their rates
  include the shingling; hash-only rates are reported beside them); contamscan's
  signatures are checked equal to datasketch's on every document of that sample;
* index build against scan, timed the same way: the references repeated to ``--index-mb``
  in one Parquet file written in row groups of ``--row-group-mb`` like the dataset shards
  (not one huge row group: the two read paths then do the same work per byte), built
  ``--repeat`` times after the same kind of warm-up as the scan (a build of the small
  reference file right before, as the warm-up scan reads that file right before the scan
  runs), each time into a fresh directory; the best run is reported with all runs. The first large build of a process pays page faults and allocator growth that
  later ones do not (the first scan run does too), so a single cold build is not comparable
  with the best of several scans.

Progress goes to stderr; one JSON line goes to stdout. MB are 10**6 bytes of UTF-8 text.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()  # before numba, polars and Arrow start

from _common import (MB, Corpus, Timer, add_common_args, emit, log, machine, pin_arrow, rate,  # noqa: E402
                     versions, workdir, write_dataset, write_refs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=200, help="MB of text in the scanned dataset (default: %(default)s)")
    p.add_argument("--shard-mb", type=float, default=64, help="MB of text per Parquet shard (default: %(default)s)")
    p.add_argument("--row-group-mb", type=float, default=16,
                   help="MB of text per Parquet row group, in the shards and the reference files (default: %(default)s)")
    p.add_argument("--refs", type=int, default=3000, help="AI outputs in the reference index (default: %(default)s)")
    p.add_argument("--baseline-mb", type=float, default=20,
                   help="MB of the dataset (its first documents) scanned with datasketch (default: %(default)s)")
    p.add_argument("--sig-mb", type=float, default=20,
                   help="MB of text for the signatures-only comparison (default: %(default)s)")
    p.add_argument("--index-mb", type=float, default=50,
                   help="MB of reference text (references repeated) for the index-build rate (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed runs of the contamscan scan, signatures and index build; the best is reported "
                        "(default: %(default)s)")
    add_common_args(p)
    return p.parse_args(argv)


def read_sample(paths, limit_bytes):
    """The first documents of the shards, up to ``limit_bytes`` of text: (texts, places)
    where a place is (shard number, row)."""
    import pyarrow.parquet as pq

    texts, places, n = [], [], 0
    for s, path in enumerate(paths):
        pf = pq.ParquetFile(path)
        row = 0
        for rb in pf.iter_batches(batch_size=512, columns=["text"], use_threads=False):
            for t in rb.column(0).to_pylist():
                if n >= limit_bytes:
                    return texts, places, n
                texts.append(t)
                places.append((s, row))
                n += len(t.encode("utf-8"))
                row += 1
    return texts, places, n


def datasketch_scan(paths, lsh, ref_mh, limit_bytes, threshold):
    """The scan done with datasketch: returns (text bytes, documents, {place: (key, jaccard)})."""
    import pyarrow.parquet as pq
    from datasketch import MinHash

    from contamscan.sketch.text import shingle_hash, shingles

    flagged = {}
    n_bytes = n_docs = 0
    for s, path in enumerate(paths):
        pf = pq.ParquetFile(path)
        row = 0
        for rb in pf.iter_batches(batch_size=512, columns=["id", "text"], use_threads=False):
            for t in rb.column(1).to_pylist():
                if n_bytes >= limit_bytes:
                    return n_bytes, n_docs, flagged
                n_bytes += len(t.encode("utf-8"))
                n_docs += 1
                sh = shingles(t, 5)
                if sh:
                    m = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=shingle_hash)
                    m.update_batch(sh)
                    best, best_j = None, -1.0
                    for key in lsh.query(m):
                        j = m.jaccard(ref_mh[key])
                        if j > best_j:
                            best, best_j = key, j
                    if best is not None and best_j >= threshold:
                        flagged[(s, row)] = (best, best_j)
                row += 1
    return n_bytes, n_docs, flagged


def signatures_bench(texts, n_bytes, batch_bytes, repeat):
    """Signatures of the same texts with contamscan, rensa and datasketch. Returns a dict."""
    import numpy as np
    import pyarrow as pa
    from baselines.minhash_scan import str_shingles
    from datasketch import MinHash
    from rensa import RMinHash

    from contamscan.sketch.minhash import Hasher
    from contamscan.sketch.text import shingle_hash, shingles

    # contamscan: Arrow arrays of ~batch_bytes, as a scan reads them (conversion not timed)
    batches, cur, size = [], [], 0
    for t in texts:
        cur.append(t)
        size += len(t)
        if size >= batch_bytes:
            batches.append(pa.array(cur, pa.large_string()))
            cur, size = [], 0
    if cur:
        batches.append(pa.array(cur, pa.large_string()))
    hasher = Hasher(128, 1, 5)
    hasher.signatures(batches[0][:2])  # compiled kernels loaded before timing
    cs_times = []
    for _ in range(repeat):
        with Timer() as t:
            parts = [hasher.signatures(b).values for b in batches]
        cs_times.append(t.wall)
    cs = np.concatenate(parts)
    t_cs = min(cs_times)
    log(f"  contamscan signatures: {t_cs:.3f} s, {rate(n_bytes, t_cs)} MB/s (best of {repeat})")

    # rensa and datasketch, chunk by chunk: shingling and hashing timed apart
    t_sh_str = t_sh_bytes = t_rensa = t_ds = 0.0
    mismatches = 0
    chunk = 256
    for c0 in range(0, len(texts), chunk):
        part = texts[c0:c0 + chunk]
        with Timer() as t:
            toks = [str_shingles(x) for x in part]
        t_sh_str += t.wall
        with Timer() as t:
            for tk in toks:
                m = RMinHash(128, 1)
                if tk:
                    m.update(tk)
                m.digest()
        t_rensa += t.wall
        with Timer() as t:
            btoks = [shingles(x, 5) for x in part]
        t_sh_bytes += t.wall
        ds = []
        with Timer() as t:
            for bt in btoks:
                m = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=shingle_hash)
                m.update_batch(bt)
                ds.append(m.hashvalues)
        t_ds += t.wall
        ds = np.asarray(ds, dtype=np.uint32)
        mismatches += int(np.count_nonzero((ds != cs[c0:c0 + len(part)]).any(axis=1)))
    assert mismatches == 0, f"{mismatches} contamscan signatures differ from datasketch's"
    log(f"  python shingling: {t_sh_bytes:.2f} s (bytes), {t_sh_str:.2f} s (str)")
    log(f"  rensa: {t_sh_str + t_rensa:.2f} s with shingling ({t_rensa:.2f} s hashing)")
    log(f"  datasketch: {t_sh_bytes + t_ds:.2f} s with shingling ({t_ds:.2f} s hashing)")
    log(f"  signatures equal to datasketch's on all {len(texts)} documents")
    sig_cs = rate(n_bytes, t_cs)
    sig_rensa = rate(n_bytes, t_sh_str + t_rensa)
    sig_ds = rate(n_bytes, t_sh_bytes + t_ds)
    return {
        "sig_sample_mb": round(n_bytes / MB, 2),
        "sig_docs": len(texts),
        "sig_contamscan_mb_s": sig_cs,
        "sig_rensa_mb_s": sig_rensa,
        "sig_datasketch_mb_s": sig_ds,
        "sig_ratio_vs_rensa": round(sig_cs / sig_rensa, 2),
        "sig_ratio_vs_datasketch": round(sig_cs / sig_ds, 2),
        "sig_python_shingling_mb_s": rate(n_bytes, t_sh_bytes),
        "sig_rensa_hash_only_mb_s": rate(n_bytes, t_rensa),
        "sig_datasketch_hash_only_mb_s": rate(n_bytes, t_ds),
        "sig_equal_datasketch": True,
    }


def main(argv=None):
    args = parse_args(argv)
    pin_arrow()
    import numpy as np
    import pyarrow.parquet as pq
    from datasketch import MinHash, MinHashLSH

    from dataclasses import replace

    from contamscan.config import IndexParams, ScanOptions
    from contamscan.index import build_index
    from contamscan import scan
    from contamscan.sketch.text import shingle_hash, shingles

    result = {"bench": "throughput"}
    with workdir(args.workdir, args.keep) as wd:
        log(f"work directory {wd}")
        corpus = Corpus(args.data, args.seed)
        log(f"corpus: {len(corpus.doc_texts)} documents, {corpus.unique_bytes / MB:.1f} MB of distinct text")

        # ---------------------------------------------------------------- data and index
        with Timer() as t:
            shards, nbytes, ndocs = write_dataset(corpus, wd / "dataset", args.mb, args.shard_mb,
                                                  row_group_mb=args.row_group_mb)
        log(f"dataset: {len(shards)} shards, {ndocs} documents, {nbytes / MB:.1f} MB of text ({t.wall:.1f} s)")
        ref_rows = corpus.ref_rows(args.refs, args.seed)
        refs_path = wd / "refs.parquet"
        n_refs, ref_bytes = write_refs(corpus, ref_rows, refs_path, row_group_mb=args.row_group_mb)
        params = IndexParams()
        with Timer() as t:
            index = build_index([str(refs_path)], wd / "index", params=params)
        log(f"index: {len(index)} references, {ref_bytes / MB:.1f} MB ({t.wall:.1f} s, includes compiling/loading kernels)")

        # warm-up: the kernels are compiled (or loaded from numba's cache) before timing
        scan([str(refs_path)], index, wd / "warmup-out", ScanOptions(workers=1))

        # ---------------------------------------------------------------- contamscan end to end
        log(f"contamscan scan, 1 worker, {nbytes / MB:.1f} MB ...")
        runs = []
        for i in range(args.repeat):
            with Timer() as t:
                report = scan([str(p) for p in shards], index, wd / f"scan-out{i}", ScanOptions(workers=1))
            runs.append(t)
            log(f"  run {i + 1}: {t.wall:.2f} s")
        t = runs_best = min(runs, key=lambda r: r.wall)
        tot = report.totals
        assert tot["bytes"] == nbytes, (tot["bytes"], nbytes)
        assert not report.failed_shards, report.failed_shards
        cs_rate = rate(nbytes, t.wall)
        log(f"  {t.wall:.2f} s wall, {t.cpu:.2f} s CPU: {cs_rate} MB/s; "
            f"{tot['flagged_documents']} of {tot['documents']} documents flagged")
        result.update({
            "text_mb": round(nbytes / MB, 2), "shards": len(shards), "documents": tot["documents"], "refs": len(index),
            "contamscan_e2e_s": round(t.wall, 3), "contamscan_e2e_cpu_s": round(t.cpu, 3),
            "contamscan_e2e_mb_s": cs_rate, "contamscan_e2e_runs_s": [round(r.wall, 3) for r in runs],
            "contamscan_flagged": tot["flagged_documents"],
        })

        # ------------------------------------------- the cost of partial matches (anchors)
        # the same scan against an index without anchors: whole-document Jaccard only
        whole_index = build_index([str(refs_path)], wd / "index-whole", params=replace(params, anchor_bits=0))
        scan([str(refs_path)], whole_index, wd / "warmup-whole", ScanOptions(workers=1))
        runs = []
        for i in range(args.repeat):
            with Timer() as tw:
                whole = scan([str(p) for p in shards], whole_index, wd / f"scan-whole{i}", ScanOptions(workers=1))
            runs.append(tw)
        tw = min(runs, key=lambda r: r.wall)
        whole_rate = rate(nbytes, tw.wall)
        log(f"  whole documents only (no anchors): {tw.wall:.2f} s, {whole_rate} MB/s; "
            f"{whole.totals['flagged_documents']} flagged")
        result.update({
            "contamscan_whole_only_mb_s": whole_rate, "contamscan_whole_only_flagged": whole.totals["flagged_documents"],
            "default_vs_whole_only": round(cs_rate / whole_rate, 2),
        })

        # ---------------------------------------------------------------- datasketch end to end
        log("datasketch: signatures of the references and MinHashLSH ...")
        refs_tbl = pq.read_table(refs_path, columns=["id", "text"])
        lsh = MinHashLSH(threshold=params.threshold, num_perm=params.num_perm)
        ref_mh = {}
        with Timer() as t:
            for rid, text in zip(refs_tbl["id"].to_pylist(), refs_tbl["text"].to_pylist()):
                m = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=shingle_hash)
                m.update_batch(shingles(text, 5))
                ref_mh[rid] = m
                lsh.insert(rid, m)
        ds_index_rate = rate(ref_bytes, t.wall)
        log(f"  {t.wall:.1f} s ({ds_index_rate} MB/s); LSH bands x rows = {lsh.b} x {lsh.r}, "
            f"contamscan's = {index.bands} x {index.rows}")
        # the datasketch references must be the ones contamscan indexed
        for i, rid in enumerate(index.refs["ref_id"].to_list()):
            if not np.array_equal(np.asarray(ref_mh[rid].hashvalues, np.uint32), index.signatures[i]):
                raise AssertionError(f"reference {rid}: contamscan and datasketch signatures differ")

        limit = int(min(args.baseline_mb, args.mb) * MB)
        log(f"datasketch scan of the first {limit / MB:.1f} MB ...")
        with Timer() as t:
            ds_bytes, ds_docs, ds_flagged = datasketch_scan(shards, lsh, ref_mh, limit, params.threshold)
        ds_rate = rate(ds_bytes, t.wall)
        log(f"  {t.wall:.2f} s: {ds_rate} MB/s; {len(ds_flagged)} of {ds_docs} documents flagged")
        # contamscan's flags on the same documents
        matches = report.matches()
        names = {p.name: s for s, p in enumerate(shards)}
        cs_flagged = {}
        for m in matches.select(["shard", "row", "ref_id", "similarity"]).to_pylist():
            s = names[os.path.basename(m["shard"])]
            cs_flagged[(s, m["row"])] = (m["ref_id"], m["similarity"])
        _, places, _ = read_sample(shards, limit)
        in_sample = set(places)
        cs_sample = {k: v for k, v in cs_flagged.items() if k in in_sample}
        both = set(cs_sample) & set(ds_flagged)
        same_sim = sum(1 for k in both if abs(cs_sample[k][1] - ds_flagged[k][1]) < 1e-9)
        log(f"  on that sample: contamscan flagged {len(cs_sample)}, datasketch {len(ds_flagged)}, "
            f"both {len(both)} (same similarity: {same_sim})")
        result.update({
            "datasketch_sample_mb": round(ds_bytes / MB, 2), "datasketch_sample_docs": ds_docs,
            "datasketch_e2e_s": round(t.wall, 3), "datasketch_e2e_mb_s": ds_rate,
            "e2e_ratio": round(cs_rate / ds_rate, 1),
            "sample_flagged": {"contamscan": len(cs_sample), "datasketch": len(ds_flagged), "both": len(both),
                               "same_similarity": same_sim},
            "datasketch_index_build_mb_s": ds_index_rate,
        })

        # ---------------------------------------------------------------- signatures alone
        log(f"signatures only, first {args.sig_mb:.1f} MB ...")
        texts, _, sig_bytes = read_sample(shards, int(args.sig_mb * MB))
        result.update(signatures_bench(texts, sig_bytes, ScanOptions().batch_bytes, args.repeat))
        del texts

        # ---------------------------------------------------------------- index build
        # timed like the scan: a warm-up build of the small reference file (as the warm-up
        # scan reads that file before the scan runs), then --repeat builds of the big file,
        # each into a fresh directory; the best is kept
        big_refs = wd / "refs-big.parquet"
        n_big, big_bytes = write_refs(corpus, ref_rows, big_refs, min_mb=args.index_mb, row_group_mb=args.row_group_mb)
        n_rg = pq.ParquetFile(big_refs).metadata.num_row_groups
        build_index([str(refs_path)], wd / "index-warmup", params=params)
        log(f"index build over {n_big} references, {big_bytes / MB:.1f} MB in {n_rg} row groups "
            f"(best of {args.repeat}) ...")
        build_runs = []
        for i in range(args.repeat):
            with Timer() as t:
                big = build_index([str(big_refs)], wd / f"index-big{i}", params=params)
            assert len(big) == n_big, (len(big), n_big)
            build_runs.append(t)
            log(f"  run {i + 1}: {t.wall:.2f} s ({rate(big_bytes, t.wall)} MB/s)")
            del big
        t = min(build_runs, key=lambda r: r.wall)
        build_rate = rate(big_bytes, t.wall)
        scan_same_bytes = runs_best.wall * big_bytes / nbytes  # the scan's best time for as many bytes
        log(f"  {t.wall:.2f} s wall, {t.cpu:.2f} s CPU: {build_rate} MB/s; the scan: {cs_rate} MB/s, "
            f"{scan_same_bytes:.2f} s per {big_bytes / MB:.0f} MB")
        result.update({
            "index_build_refs": n_big, "index_build_mb": round(big_bytes / MB, 2), "index_build_row_groups": n_rg,
            "index_build_s": round(t.wall, 3), "index_build_cpu_s": round(t.cpu, 3), "index_build_mb_s": build_rate,
            "index_build_runs_s": [round(r.wall, 3) for r in build_runs],
            "index_build_first_mb_s": rate(big_bytes, build_runs[0].wall),
            "scan_s_same_bytes": round(scan_same_bytes, 3),
            "scan_vs_build_ratio": round(cs_rate / build_rate, 2),
        })
    result.update({"threads": 1, **machine(), "versions": versions()})
    emit(result)


if __name__ == "__main__":
    main()
