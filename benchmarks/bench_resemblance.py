"""How far resemblance alone can go: a reference point for bench_attribution's accuracy.

bench_attribution asks the style estimate which family a left-out model's outputs resemble,
with the outputs mixed into human text. This script asks the same question in the most
favourable setting there is: the target's test-half outputs alone (no human text, no mixture
to fit), compared with every other model's profile-half outputs by a plain cosine. If a
model's outputs do not resemble its own siblings' here, no estimator built on word usage
can name its family; the accuracies below bound what issue 17's targets can reach on
../shared/data.

The comparison (same splits as bench_attribution: :func:`_common.style_split`): each
document is the set of features in its first 512 normalised words: its words, or its word
bigrams; a model (or the target) is the vector of log document-frequency ratios
``log((df_model + s) / (df_human + s))`` against the profile-half human text, over the
features found in at least 2% of the documents of the human baseline or of some model;
the target's answer is the family (and organisation) of the model at the highest cosine.

Run::

    python benchmarks/bench_resemblance.py

Progress and a per-target table go to stderr; one JSON line goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import pin_threads  # noqa: E402

pin_threads()

from _common import add_common_args, emit, log, machine, pin_arrow, style_split, versions  # noqa: E402
from bench_attribution import MODELS, TARGETS  # noqa: E402

MAX_WORDS = 512
MIN_SHARE = 0.02  # a feature is kept when this share of some side's documents holds it
SMOOTHING = 0.005
KINDS = ("words", "bigrams")


def document_features(texts: list[str], kind: str) -> list:
    """Each text's distinct features (uint64): word hashes, or hashes of adjacent word pairs."""
    import numpy as np
    import pyarrow as pa

    from contamscan.sketch.words import word_hashes

    w = word_hashes(pa.array(texts, pa.large_string()), max_words=MAX_WORDS)
    out = []
    for d in range(len(texts)):
        h = w.hash[w.offsets[d]:w.offsets[d + 1]].astype(np.uint64)
        if kind == "bigrams":
            h = (h[:-1] * np.uint64(0x9E3779B97F4A7C15)) ^ h[1:] if len(h) > 1 else h[:0]
        out.append(np.unique(h))
    return out


def doc_frequency(features: list) -> dict:
    """{feature: share of the documents holding it}."""
    import numpy as np

    if not features:
        return {}
    u, c = np.unique(np.concatenate(features), return_counts=True)
    return dict(zip(u.tolist(), (c / len(features)).tolist()))


def nearest(targets: dict, models: dict, human: dict):
    """For each target: the other models by cosine of their log-ratio vectors, best first."""
    import numpy as np

    vocab = {k for k, v in human.items() if v >= MIN_SHARE}
    for df in models.values():
        vocab |= {k for k, v in df.items() if v >= MIN_SHARE}
    vocab = sorted(vocab)
    base = np.array([human.get(k, 0.0) for k in vocab])

    def vector(df):
        x = np.log((np.array([df.get(k, 0.0) for k in vocab]) + SMOOTHING) / (base + SMOOTHING))
        return x / np.linalg.norm(x)

    prof = {m: vector(df) for m, df in models.items()}
    ranked = {}
    for t, df in targets.items():
        v = vector(df)
        sims = {m: float(v @ p) for m, p in prof.items() if m != t}
        ranked[t] = sorted(sims.items(), key=lambda kv: -kv[1])
    return ranked, len(vocab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    args = ap.parse_args()
    pin_arrow()
    ai, profile_prompts, halves, _ = style_split(args.data, args.seed)
    unknown = sorted({r["model"] for r in ai} - set(MODELS))
    if unknown:
        raise SystemExit(f"models without a family in MODELS: {unknown}")
    a_prof, a_test = defaultdict(list), defaultdict(list)
    for r in ai:
        (a_prof if r["prompt_index"] in profile_prompts else a_test)[r["model"]].append(r["text"])
    human = [r["text"] for prof, _ in halves.values() for r in prof]
    models = sorted(a_prof)
    log(f"{len(models)} models, {sum(map(len, a_prof.values()))} profile-half and "
        f"{sum(map(len, a_test.values()))} test-half outputs; {len(human)} profile-half human documents")
    result = {"bench": "resemblance", "seed": args.seed, "max_words": MAX_WORDS, "min_share": MIN_SHARE,
              "smoothing": SMOOTHING}
    rows = {m: {"model": m, "family": MODELS[m][0], "organisation": MODELS[m][1]} for m in models}
    for kind in KINDS:
        h = doc_frequency(document_features(human, kind))
        prof = {m: doc_frequency(document_features(a_prof[m], kind)) for m in models}
        test = {m: doc_frequency(document_features(a_test[m], kind)) for m in models}
        ranked, n_vocab = nearest(test, prof, h)
        fam_right = fam_n = org_right = org_n = 0
        for m in models:
            fam, org = MODELS[m]
            others = [x for x in models if x != m]
            best, sim = ranked[m][0]
            row = rows[m]
            row[f"{kind}_nearest"] = best
            row[f"{kind}_cosine"] = round(sim, 3)
            if any(MODELS[x][0] == fam for x in others):
                fam_n += 1
                row[f"{kind}_family_right"] = MODELS[best][0] == fam
                fam_right += row[f"{kind}_family_right"]
            if org and any(MODELS[x][1] == org for x in others):
                org_n += 1
                row[f"{kind}_organisation_right"] = MODELS[best][1] == org
                org_right += row[f"{kind}_organisation_right"]
        result[kind] = {"features": n_vocab, "family_right": fam_right, "family_targets": fam_n,
                        "family_accuracy": round(fam_right / fam_n, 3),
                        "organisation_right": org_right, "organisation_targets": org_n,
                        "organisation_accuracy": round(org_right / org_n, 3)}
        log(f"{kind}: {n_vocab} features; nearest model of the right family {fam_right}/{fam_n}, "
            f"organisation {org_right}/{org_n}")
    log(f"{'target':<46} {'family':<9} " + " ".join(f"{k + ': nearest':<48}" for k in KINDS))
    for m in models:
        r = rows[m]
        cells = []
        for k in KINDS:
            mark = {True: "ok", False: "WRONG", None: "-"}[r.get(f"{k}_family_right")]
            cells.append(f"{r[k + '_nearest']:<38} {r[k + '_cosine']:.2f} {mark:<5}")
        log(f"{m:<46} {r['family']:<9} " + " ".join(cells))
    result["targets_of_issue_17"] = {"family_accuracy": TARGETS["family_accuracy"],
                                     "organisation_accuracy": TARGETS["organisation_accuracy"]}
    result["per_target"] = list(rows.values())
    result["machine"] = machine()
    result["versions"] = versions()
    emit(result)


if __name__ == "__main__":
    main()
