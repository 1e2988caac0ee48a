"""The contamination scan done with datasketch or rensa, as a script: a competitor that
bench_process.py times from outside (``/usr/bin/time``), whole process, like ``contamscan scan``.

Two steps:

* ``build --lib LIB REFS.parquet LSH.pkl --bands B --rows R``: the references' MinHashes and
  an LSH of ``B`` bands x ``R`` rows (contamscan's index's), pickled (both libraries' LSH
  objects pickle). Untimed, a separate prior step, as ``contamscan index build`` is.
* ``scan --lib LIB LSH.pkl SHARD... --limit-mb N``: read the shards in order, in batches of
  512 rows with pyarrow, until ``N`` MB of text; per document: shingle, MinHash (128
  permutations; rensa: bands x rows, see num_perm), LSH query, the best candidate by estimated Jaccard, flagged at >= the
  threshold. Prints one JSON line: bytes, documents, flagged, and the flagged places
  ``[shard number, row]``.

The shingles are contamscan's (``contamscan.sketch.text``: normalised words, 5 per shingle).
datasketch gets them as UTF-8 bytes hashed with ``shingle_hash`` (xxh32, contamscan's) and
``scheme="affine32"``: its signatures are then contamscan's, bit for bit (bench_throughput
checks that). rensa gets the same words joined as ``str`` (what ``RMinHash.update`` takes;
it hashes them itself, so its signatures differ but estimate the same Jaccard).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys

NUM_PERM = 128
BATCH_ROWS = 512


def num_perm(lib: str, bands: int, rows: int) -> int:
    """Permutations of ``lib``'s MinHash: 128 for datasketch (contamscan's; its LSH uses the
    first bands x rows), bands x rows for rensa, whose LSH needs num_perm = bands x rows
    (25 x 5 = 125 with contamscan's defaults: the same LSH query, 3 fewer permutations)."""
    return NUM_PERM if lib == "datasketch" else bands * rows


def str_shingles(text: str, n: int = 5) -> list[str]:
    """contamscan's shingles as str (what rensa takes; bench_throughput's rensa uses it too)."""
    from contamscan.sketch.text import words

    ws = words(text)
    if not ws:
        return []
    if len(ws) < n:
        return [" ".join(ws)]
    return [" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)]


def minhasher(lib: str, perms: int):
    """text -> MinHash of ``perms`` permutations, or None for a text without shingles."""
    if lib == "datasketch":
        from datasketch import MinHash

        from contamscan.sketch.text import shingle_hash, shingles

        def mh(text):
            sh = shingles(text, 5)
            if not sh:
                return None
            m = MinHash(num_perm=perms, seed=1, scheme="affine32", hashfunc=shingle_hash)
            m.update_batch(sh)
            return m
        return mh
    if lib == "rensa":
        from rensa import RMinHash

        def mh(text):
            sh = str_shingles(text)
            if not sh:
                return None
            m = RMinHash(perms, 1)
            m.update(sh)
            return m
        return mh
    raise SystemExit(f"unknown library {lib!r}")


def build(args) -> None:
    import pyarrow.parquet as pq

    perms = num_perm(args.lib, args.bands, args.rows)
    mh = minhasher(args.lib, perms)
    tbl = pq.read_table(args.refs, columns=["id", "text"])
    ids, texts = tbl["id"].to_pylist(), tbl["text"].to_pylist()
    refs = []  # per key (a row number): the reference's MinHash
    if args.lib == "datasketch":
        from datasketch import LeanMinHash, MinHashLSH

        lsh = MinHashLSH(threshold=args.threshold, num_perm=perms, params=(args.bands, args.rows))
    else:
        from rensa import RMinHashLSH

        lsh = RMinHashLSH(args.threshold, perms, args.bands)
    for key, text in enumerate(texts):
        m = mh(text)
        if m is None:
            refs.append(None)
            continue
        if args.lib == "datasketch":
            m = LeanMinHash(m)
        refs.append(m)
        lsh.insert(key, m)
    with open(args.out, "wb") as f:
        pickle.dump({"lib": args.lib, "threshold": args.threshold, "ids": ids, "refs": refs, "lsh": lsh,
                     "bands": args.bands, "rows": args.rows, "num_perm": perms}, f, protocol=pickle.HIGHEST_PROTOCOL)
    print(json.dumps({"lib": args.lib, "refs": len(refs), "bands": args.bands, "rows": args.rows, "num_perm": perms}))


def scan(args) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with open(args.lsh, "rb") as f:
        state = pickle.load(f)
    if state["lib"] != args.lib:
        raise SystemExit(f"{args.lsh} holds a {state['lib']} LSH, not {args.lib}")
    lsh, refs, threshold = state["lsh"], state["refs"], state["threshold"]
    mh = minhasher(args.lib, state["num_perm"])
    limit = int(args.limit_mb * 1_000_000)
    n_bytes = n_docs = 0
    flagged = []
    done = False
    for s, path in enumerate(args.shards):
        row = 0
        for rb in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["text"], use_threads=False):
            for t in rb.column(0).to_pylist():
                if n_bytes >= limit:
                    done = True
                    break
                n_bytes += len(t.encode("utf-8"))
                n_docs += 1
                m = mh(t)
                if m is not None:
                    best_j = -1.0
                    for key in lsh.query(m):
                        j = m.jaccard(refs[key])
                        if j > best_j:
                            best_j = j
                    if best_j >= threshold:
                        flagged.append([s, row])
                row += 1
            if done:
                break
        if done:
            break
    print(json.dumps({"lib": args.lib, "bytes": n_bytes, "documents": n_docs, "flagged": len(flagged),
                      "flagged_places": flagged}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="references -> pickled LSH")
    b.add_argument("--lib", choices=("datasketch", "rensa"), required=True)
    b.add_argument("refs")
    b.add_argument("out")
    b.add_argument("--bands", type=int, required=True)
    b.add_argument("--rows", type=int, required=True)
    b.add_argument("--threshold", type=float, default=0.5)
    s = sub.add_parser("scan", help="shards -> flagged documents (one JSON line)")
    s.add_argument("--lib", choices=("datasketch", "rensa"), required=True)
    s.add_argument("lsh")
    s.add_argument("shards", nargs="+")
    s.add_argument("--limit-mb", type=float, default=float("inf"))
    args = p.parse_args(argv)
    (build if args.cmd == "build" else scan)(args)


if __name__ == "__main__":
    sys.exit(main())
