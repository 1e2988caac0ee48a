"""A small contaminated corpus built from ../shared/data for the tests of the per-text API,
the integrations and the annotation files: an index of real model outputs, and shards of
real human text with copies of those outputs planted (whole, edited, as a passage inside a
human document), plus outputs of the same models that are not indexed (negatives)."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from contamscan.index import build_index


@dataclass(frozen=True)
class Workspace:
    root: Path
    refs: Path  # refs.parquet (id, model, text)
    index: Path
    data: Path  # the shards
    docs: list  # every document: {"id", "text", "planted": ref id or None, "model": label or None}
    parquet: Path  # data/web/part-0.parquet: the documents, all of them, in order (for the integrations)


def edit(text: str, share: float, rng: random.Random) -> str:
    """``share`` of the words replaced by others of the text (an edited copy)."""
    words = text.split()
    for i in rng.sample(range(len(words)), int(share * len(words))):
        words[i] = rng.choice(words)
    return " ".join(words)


def build(root: Path, ai_table: pa.Table, human_paths, n_refs: int = 150, n_human: int = 360) -> Workspace:
    rng = random.Random(18)
    ai = ai_table.select(["id", "model", "text"]).filter(pa.compute.is_valid(ai_table["text"]))
    rows = list(range(0, ai.num_rows, 9))[: 2 * n_refs]
    refs = ai.take(rows[:n_refs])
    negatives = ai.take(rows[n_refs:])  # outputs of the same models, not indexed
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(refs, root / "refs.parquet")
    build_index([str(root / "refs.parquet")], root / "refs.index")
    human = pl.read_parquet(human_paths).select("id", "text").filter(pl.col("text").str.len_chars() > 200)
    human = human.sample(n_human, seed=18).rows()
    ref_ids, ref_models, ref_texts = (refs[c].to_pylist() for c in ("id", "model", "text"))
    docs = [{"id": f"human/{i}", "text": t, "planted": None, "model": None} for i, t in human]
    for k in range(24):  # whole copies
        docs.append({"id": f"copy/{k}", "text": ref_texts[k], "planted": ref_ids[k], "model": ref_models[k]})
    for k in range(24, 36):  # 10% of the words edited
        docs.append({"id": f"edited/{k}", "text": edit(ref_texts[k], 0.1, rng), "planted": ref_ids[k],
                     "model": ref_models[k]})
    for k in range(36, 48):  # a 1,200-character passage inside a human document
        host = human[k][1]
        start = len(ref_texts[k]) // 4
        passage = ref_texts[k][start:start + 1200]
        docs.append({"id": f"passage/{k}", "text": host[: len(host) // 2] + "\n\n" + passage + "\n\n" +
                     host[len(host) // 2:], "planted": ref_ids[k], "model": ref_models[k]})
    for i, t in zip(negatives["id"].to_pylist()[:40], negatives["text"].to_pylist()):
        docs.append({"id": f"negative/{i}", "text": t, "planted": None, "model": None})
    rng.shuffle(docs)
    data = root / "data"
    (data / "web").mkdir(parents=True)
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    pq.write_table(table, data / "web" / "part-0.parquet", row_group_size=64)
    return Workspace(root, root / "refs.parquet", root / "refs.index", data, docs, data / "web" / "part-0.parquet")


def write_formats(ws: Workspace, out: Path) -> dict:
    """The workspace's documents in every layout a scan reads, with bad records among them
    (the same shard content split differently): returns {relative path: records in order,
    each {"id", "text", "bad": reason or None}}; a bad record's text is None."""
    out.mkdir(parents=True, exist_ok=True)
    docs = ws.docs
    chunks = [docs[i::5] for i in range(5)]
    layout = {}

    # Parquet, several row groups, a null text (a bad record)
    recs = [{"id": d["id"], "text": d["text"]} for d in chunks[0]]
    recs.insert(7, {"id": "null-text", "text": None})
    pq.write_table(pa.Table.from_pylist(recs, pa.schema([("id", pa.string()), ("text", pa.string())])),
                   out / "a.parquet", row_group_size=16)
    layout["a.parquet"] = [{**r, "bad": "text_null" if r["text"] is None else None} for r in recs]

    # JSON Lines with a malformed line, a missing text, and a blank line (not a record)
    lines, recs = [], []
    for k, d in enumerate(chunks[1]):
        lines.append(json.dumps({"id": d["id"], "text": d["text"]}))
        recs.append({"id": d["id"], "text": d["text"], "bad": None})
        if k == 3:
            lines.append('{"id": "broken", "text": ')
            recs.append({"id": None, "text": None, "bad": "malformed_json"})
            lines.append("")  # a blank line: not a record
        if k == 5:
            lines.append(json.dumps({"id": "no-text"}))
            recs.append({"id": "no-text", "text": None, "bad": "text_missing"})
    (out / "b.jsonl").write_text("\n".join(lines) + "\n")
    layout["b.jsonl"] = recs

    # gzip'd JSON Lines
    body = "".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in chunks[2])
    with gzip.open(out / "c.jsonl.gz", "wt") as f:
        f.write(body)
    layout["c.jsonl.gz"] = [{"id": d["id"], "text": d["text"], "bad": None} for d in chunks[2]]

    # Arrow IPC file
    feather.write_feather(pa.table({"id": [d["id"] for d in chunks[3]], "text": [d["text"] for d in chunks[3]]}),
                          out / "d.arrow", compression="uncompressed")
    layout["d.arrow"] = [{"id": d["id"], "text": d["text"], "bad": None} for d in chunks[3]]

    # one JSON array of records, an element that is not an object
    elems = [{"id": d["id"], "text": d["text"]} for d in chunks[4]]
    elems.insert(2, 42)
    (out / "e.json").write_text(json.dumps(elems, indent=1))
    layout["e.json"] = [{"id": None, "text": None, "bad": "not_an_object"} if not isinstance(e, dict)
                        else {**e, "bad": None} for e in elems]
    return layout
