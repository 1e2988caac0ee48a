"""Accuracy of the style estimate (``scan --profile``): the AI-written share α of shards that
mix human text with model outputs nobody indexed, and the model family it resembles.

What it measures (real texts from ../shared/data, everything seeded by ``--seed``):

* The 300 prompts are split by a seeded shuffle into two halves. The profile's AI side is
  every model's outputs on the first half (one component per model, families by lineage:
  ``openai/o3`` -> ``gpt``, ``claude-sonnet-4-5`` -> ``claude``); test shards use outputs on
  the other half only, so no test output, and no test prompt, is in the profile.
* Human text: every human file but the AI-polished essays (sources ``TOEFL_gpt4polished`` and
  ``HewlettStudentEssay_GPTsimplify``), split per source by a seeded shuffle into a profile
  half and a test half. ``--leave-out SOURCE`` also removes one source from the profile
  altogether (its test half stays): a human source the profile has never seen.
* Shards (Parquet, documents shuffled): α in {0.05, 0.1, 0.25, 0.5} for each single family
  and for a mix of all families, plus ``--zero-shards`` shards at α = 0; up to
  ``--shard-docs`` documents each (single-family shards are smaller where a family has few
  test outputs: α·n of them must exist).
* One ``contamscan.scan`` of all shards with ``--profile`` and an index of the profile half's
  outputs (so the near-duplicate rate, which should be ~0 on never-seen outputs, is reported
  beside α).

Reported: per shard α, α̂, |α̂ - α|, the 95% interval, whether it covers α, the top family and
the near-duplicate rate; summary: max and mean |α̂ - α|, interval coverage, family accuracy on
single-family shards with α >= 0.1, the targets, profile build and scan times.

Run::

    python benchmarks/bench_style.py [--seed 1] [--leave-out writing] [--shard-docs 1000]

Progress and the per-shard table go to stderr; one JSON line goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()

from _common import add_common_args, emit, log, machine, pin_arrow, style_split, versions, workdir  # noqa: E402

ALPHAS = (0.05, 0.1, 0.25, 0.5)
TARGETS = {"max_abs_err": 0.03, "ci_coverage": 0.90, "family_accuracy": 0.80}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--shard-docs", type=int, default=1000, help="documents per shard (default: %(default)s)")
    ap.add_argument("--zero-shards", type=int, default=3, help="shards at alpha = 0 (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="scan workers (default: %(default)s)")
    ap.add_argument("--leave-out", default=None, help="a human source absent from the profile (default: none)")
    ap.add_argument("--clusters", type=int, default=None, help="human sub-components per group (default: the profile's)")
    args = ap.parse_args()
    pin_arrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from contamscan import scan
    from contamscan.config import ProfileParams, ScanOptions
    from contamscan.index import build_index
    from contamscan.style import build_profile, family_of

    data = args.data
    ai, profile_prompts, halves, rng = style_split(data, args.seed)
    h_profile, h_test = [], []
    for src, (prof, test) in halves.items():
        if src != args.leave_out:
            h_profile += prof
        h_test += test
    a_profile = [r for r in ai if r["prompt_index"] in profile_prompts and r["text"]]
    a_test = [r for r in ai if r["prompt_index"] not in profile_prompts and r["text"]]
    for r in a_test:
        r["family"] = family_of(r["model"])
    families = sorted({r["family"] for r in a_test})
    log(f"profile: {len(h_profile)} human, {len(a_profile)} AI; test pools: {len(h_test)} human, {len(a_test)} AI "
        f"in {len(families)} families")

    with workdir(args.workdir, args.keep) as wd:
        (wd / "profile-in").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("id", "source", "text")} for r in h_profile]),
                       wd / "profile-in" / "human.parquet")
        pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "model": r["model"], "text": r["text"]}
                                             for r in a_profile]), wd / "profile-in" / "ai.parquet")
        t0 = time.perf_counter()
        params = ProfileParams() if args.clusters is None else ProfileParams(clusters=args.clusters)
        profile = build_profile([str(wd / "profile-in" / "human.parquet")], [str(wd / "profile-in" / "ai.parquet")],
                                wd / "profile", params=params)
        t_profile = time.perf_counter() - t0
        log(f"profile built in {t_profile:.1f} s: {len(profile.words)} words, components {profile.components}")
        t0 = time.perf_counter()
        build_index([str(wd / "profile-in" / "ai.parquet")], wd / "index")
        t_index = time.perf_counter() - t0

        # shards
        ds = wd / "data"
        ds.mkdir(exist_ok=True)
        truth = {}
        specs = [(0.0, None, k) for k in range(args.zero_shards)]
        specs += [(a, fam, 0) for a in ALPHAS for fam in [None] + families]
        n_bytes = 0
        for alpha, fam, k in specs:
            pool = [r for r in a_test if fam is None or r["family"] == fam]
            n = args.shard_docs if alpha == 0 else min(args.shard_docs, int(len(pool) / alpha))
            n_ai = round(alpha * n)
            docs = [{"id": f"h/{r['source']}/{r['id']}", "text": r["text"]} for r in rng.sample(h_test, n - n_ai)]
            docs += [{"id": f"ai/{r['model']}/{r['id']}", "text": r["text"]} for r in rng.sample(pool, n_ai)]
            rng.shuffle(docs)
            name = f"a{alpha:.2f}-{fam or ('mixed' if alpha else 'none')}" + (f"-{k}" if alpha == 0 else "")
            name = name.replace("/", "_") + ".parquet"
            pq.write_table(pa.Table.from_pylist(docs), ds / name)
            n_bytes += sum(len(d["text"].encode()) for d in docs)
            truth[name] = {"alpha": n_ai / n, "family": fam, "documents": n}
        log(f"{len(truth)} shards, {n_bytes / 1e6:.1f} MB")

        t0 = time.perf_counter()
        report = scan([str(ds)], wd / "index", wd / "out", ScanOptions(workers=args.workers, profile=str(wd / "profile")))
        t_scan = time.perf_counter() - t0

    rows = []
    for s in report.shards:
        tr = truth[s["shard"]]
        sh = s["ai_share"]
        # the family the shard is attributed to ("none of these" counts as a miss), else the
        # heaviest family of the mixture (a report of a contamscan before attribution)
        att = sh.get("attribution")
        weights = sh.get("by_family", sh["by_label"])
        top = att["family"] if att is not None else \
            (max(weights.items(), key=lambda kv: (kv[1], kv[0]))[0] if weights else None)
        rows.append({"shard": s["shard"], "alpha": round(tr["alpha"], 4), "family": tr["family"],
                     "documents": s["documents"], "alpha_hat": round(sh["alpha"], 4),
                     "abs_err": round(abs(sh["alpha"] - tr["alpha"]), 4),
                     "ci95": [round(x, 4) for x in sh["ci95"]],
                     "covered": sh["ci95"][0] <= tr["alpha"] <= sh["ci95"][1], "top_family": top,
                     "near_duplicate_rate": round(s["contamination_rate"], 4), "warned": bool(sh.get("warnings"))})
    log(f"{'shard':<28} {'docs':>5} {'alpha':>6} {'est':>6} {'err':>6}  {'95% CI':<16} {'top family':<12} dup")
    for r in rows:
        log(f"{r['shard']:<28} {r['documents']:>5} {r['alpha']:>6.3f} {r['alpha_hat']:>6.3f} {r['abs_err']:>6.3f}  "
            f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]{'' if r['covered'] else ' !'} {str(r['top_family']):<12} "
            f"{r['near_duplicate_rate']:.3f}{' warned' if r['warned'] else ''}")
    single = [r for r in rows if r["family"] is not None and r["alpha"] >= 0.1]
    errs = [r["abs_err"] for r in rows]
    wrong = defaultdict(list)
    for r in single:
        if r["top_family"] != r["family"]:
            wrong[r["family"]].append(r["top_family"])
    summary = {
        "max_abs_err": max(errs),
        "mean_abs_err": round(sum(errs) / len(errs), 4),
        "ci_coverage": round(sum(r["covered"] for r in rows) / len(rows), 4),
        "family_accuracy": round(sum(r["top_family"] == r["family"] for r in single) / len(single), 4),
        "max_abs_err_alpha0": max([r["abs_err"] for r in rows if r["alpha"] == 0] or [0]),
        "max_near_duplicate_rate": max(r["near_duplicate_rate"] for r in rows),
        "warned": sum(r["warned"] for r in rows),  # baseline-coverage warnings: every shard here is in domain
    }
    t = report.totals
    emit({
        "bench": "style",
        "seed": args.seed,
        "leave_out": args.leave_out,
        "shards": len(rows),
        **summary,
        "targets": {"max_abs_err<=0.03": summary["max_abs_err"] <= TARGETS["max_abs_err"],
                    "ci_coverage>=0.90": summary["ci_coverage"] >= TARGETS["ci_coverage"],
                    "family_accuracy>=0.80": summary["family_accuracy"] >= TARGETS["family_accuracy"]},
        "family_errors": dict(wrong),
        "totals": {"documents": t["documents"], "alpha_true": round(sum(truth[r["shard"]]["alpha"] * r["documents"]
                                                                        for r in rows) / t["documents"], 4),
                   "alpha_hat": round(t["ai_share"]["alpha"], 4), "ci95": [round(x, 4) for x in t["ai_share"]["ci95"]],
                   "near_duplicate_rate": round(t["contamination_rate"], 4)},
        "profile": {"human_documents": len(h_profile), "ai_documents": len(a_profile), "words": len(profile.words),
                    "components": len(profile.components), "build_seconds": round(t_profile, 2)},
        "seconds": {"profile": round(t_profile, 2), "index": round(t_index, 2), "scan": round(t_scan, 2)},
        "scan_mb": round(n_bytes / 1e6, 1),
        "per_shard": rows,
        "machine": machine(),
        "versions": versions(),
    })


if __name__ == "__main__":
    main()
