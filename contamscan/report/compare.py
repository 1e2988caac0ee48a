"""Two scans compared, as data: what changed per shard and per model (``contamscan report
--compare OLD NEW``).

A change is called out ("changed") when the 95% interval of the difference of the two rates
excludes zero: Newcombe's hybrid score interval, built from the two Wilson intervals the
reports already give, so a shard whose rate moved within its noise is not called changed.
Shards and models present in one scan only are listed as such.
"""

from __future__ import annotations

from .stats import diff_ci, wilson


def _side(docs: int, flagged: int) -> dict:
    return {"documents": docs, "flagged": flagged, "rate": flagged / docs if docs else 0.0,
            "ci95": list(wilson(flagged, docs))}


def _delta(old: dict, new: dict) -> dict:
    lo, hi = diff_ci(new["flagged"], new["documents"], old["flagged"], old["documents"])
    return {"delta": new["rate"] - old["rate"], "delta_ci95": [lo, hi], "changed": lo > 0 or hi < 0}


def _differences(old: dict, new: dict) -> list[str]:
    """What besides the data differs between the two scans (results are then not comparable as such)."""
    out = []
    oi, ni = old.get("index", {}), new.get("index", {})
    if oi.get("params") != ni.get("params"):
        keys = sorted(k for k in set(oi.get("params", {})) | set(ni.get("params", {}))
                      if oi.get("params", {}).get(k) != ni.get("params", {}).get(k))
        out.append(f"the indexes were built with different parameters ({', '.join(keys)})")
    if oi.get("labels") != ni.get("labels") or oi.get("refs") != ni.get("refs"):
        out.append(f"the indexes hold different references ({oi.get('refs', 0):,} vs {ni.get('refs', 0):,})")
    if old.get("match_rules") != new.get("match_rules"):
        out.append("the match rules differ (verify, min_anchors, min_words)")
    return out


def compare_reports(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> dict:
    """The comparison of two report.json documents, as data (rates are fractions).

    Args:
        old, new: two reports (:func:`contamscan.read_report`).
        old_name, new_name: how to name them in the comparison.

    Returns:
        ``{"totals", "shards", "models", "warnings", ...}``: per row both scans' flagged counts
        and rates, the difference, its 95% interval and whether it is a change.

    Example:
        >>> cmp = compare_reports(read_report("old-out"), read_report("new-out"))  # doctest: +SKIP
        >>> cmp["totals"]["changed"]  # doctest: +SKIP
        True
    """
    ot, nt = old["totals"], new["totals"]
    o_tot, n_tot = _side(ot["documents"], ot["flagged_documents"]), _side(nt["documents"], nt["flagged_documents"])
    totals = {"old": o_tot, "new": n_tot, **_delta(o_tot, n_tot)}

    o_shards = {s["shard"]: s for s in old["shards"]}
    n_shards = {s["shard"]: s for s in new["shards"]}
    shards = []
    for name in list(n_shards) + [s for s in o_shards if s not in n_shards]:
        o, n = o_shards.get(name), n_shards.get(name)
        row = {"shard": name, "presence": "both" if o and n else "new only" if n else "old only",
               "old": None, "new": None, "delta": None, "delta_ci95": None, "changed": False,
               "old_status": o["status"] if o else None, "new_status": n["status"] if n else None}
        if o and o["status"] == "ok":
            row["old"] = _side(o["documents"], o["flagged_documents"])
        if n and n["status"] == "ok":
            row["new"] = _side(n["documents"], n["flagged_documents"])
        if row["old"] and row["new"]:
            row.update(_delta(row["old"], row["new"]))
        shards.append(row)

    models = []
    o_lab, n_lab = ot["by_label"], nt["by_label"]
    for label in sorted(set(o_lab) | set(n_lab), key=lambda x: (-max(o_lab.get(x, 0), n_lab.get(x, 0)), x)):
        o, n = _side(ot["documents"], o_lab.get(label, 0)), _side(nt["documents"], n_lab.get(label, 0))
        models.append({"label": label, "presence": "both" if label in o_lab and label in n_lab
                       else "new only" if label in n_lab else "old only",
                       "old": o, "new": n,
                       "old_share": o["flagged"] / ot["flagged_documents"] if ot["flagged_documents"] else 0.0,
                       "new_share": n["flagged"] / nt["flagged_documents"] if nt["flagged_documents"] else 0.0,
                       **_delta(o, n)})
    return {"old_name": old_name, "new_name": new_name,
            "old_scanned": [old.get("started_at"), old.get("finished_at")],
            "new_scanned": [new.get("started_at"), new.get("finished_at")],
            "warnings": _differences(old, new), "totals": totals, "shards": shards, "models": models}


def shard_order(cmp: dict) -> list[dict]:
    """Shards in both scans, the changed ones first, then by the size of the change."""
    both = [r for r in cmp["shards"] if r["delta"] is not None]
    return sorted(both, key=lambda r: (not r["changed"], -abs(r["delta"]), r["shard"]))
