"""Workspaces for the report tests (HTML, evidence, re-rendering, comparison), from real model
outputs and real human text: exact copies, passages inside long human documents, a document
full of markup and script, and a shard with a hostile name."""

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import HUMAN

HOSTILE = "<script>alert('pwned')</script>"
HOSTILE_SHARD = "c/q\"'<i>&amp;.jsonl"


def passage(text: str, start: int, length: int = 1300) -> str:
    """About ``length`` characters of ``text`` from ``start``, cut between words."""
    a = text.find(" ", start) + 1
    b = text.rfind(" ", a, a + length)
    return text[a:b]


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def build(root: Path, ai_table, variant: int = 0) -> Path:
    """A dataset under ``root`` to scan against :func:`references`.

    variant 0: ``a/web.parquet`` (human text, 8 exact copies, 4 passages inside long human
    documents), ``b/forum.jsonl`` (human text, a copy wrapped in script and markup with a
    hostile id), the hostile-named shard (human text only) and ``c/clean.jsonl``.
    variant 1: 30 exact copies in ``a/web.parquet``, ``b/forum.jsonl`` the same, the hostile
    shard and ``c/clean.jsonl`` gone, ``d/new.jsonl`` added (copies of other references).
    """
    refs = references(ai_table).to_pylist()
    short = pl.read_parquet([p for p in HUMAN if "detectgpt" in p.name]).select("id", "text").to_dicts()
    long = pl.read_parquet([p for p in HUMAN if p.stem in ("inaugural", "state_union", "wikitext2")])
    long = long.filter(pl.col("text").str.len_chars() > 6000).select("id", "text").to_dicts()
    data = root / "data"
    data.mkdir(parents=True)

    web = [{"id": f"web-h{i}", "text": r["text"]} for i, r in enumerate(short[:150])]
    copies = 8 if variant == 0 else 30
    for i in range(copies):
        ref = refs[(i * 7) % 40]  # several models
        web.insert(7 + i * 5, {"id": f"web-copy-{ref['id']}", "text": ref["text"]})
    for i in range(4):  # a passage of a reference inside a long human document
        host, ref = long[i]["text"], refs[40 + i]["text"]
        cut = host.find(" ", len(host) // 2)
        web.insert(3 + i * 11, {"id": f"web-passage-{refs[40 + i]['id']}",
                                "text": host[:cut] + " " + passage(ref, len(ref) // 3) + host[cut:]})
    (data / "a").mkdir()
    pq.write_table(pa.Table.from_pylist(web), data / "a" / "web.parquet")

    forum = [{"id": f"forum-h{i}", "text": r["text"]} for i, r in enumerate(short[200:300])]
    forum.insert(20, {"id": HOSTILE, "text": f"{HOSTILE}\n<b onmouseover=\"alert(2)\">hi</b> & {refs[60]['text']} "
                                              "<img src=x onerror=alert(3)>"})
    forum.insert(50, {"id": "forum-copy", "text": refs[61]["text"]})
    _jsonl(data / "b" / "forum.jsonl", forum)
    if variant == 0:
        _jsonl(data / HOSTILE_SHARD, [{"text": r["text"]} for r in short[300:340]])
        _jsonl(data / "c" / "clean.jsonl", [{"text": r["text"]} for r in short[340:400]])
    else:
        _jsonl(data / "d" / "new.jsonl", [{"text": r["text"]} for r in short[400:450]]
               + [{"text": refs[100 + i]["text"]} for i in range(5)])
    return data


def references(ai_table) -> pa.Table:
    """150 model outputs of many models (every 40th row)."""
    return ai_table.select(["id", "model", "text"]).take(list(range(0, 6000, 40)))


def refs_file(root: Path, ai_table) -> Path:
    path = root / "refs.parquet"
    if not path.exists():
        pq.write_table(references(ai_table), path)
    return path
