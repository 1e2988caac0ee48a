"""Field selectors (contamscan.formats.fields): the grammar, and the same texts from every
format and both JSON Lines paths, on chat SFT records holding real essays as turns."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ESSAYS
from contamscan.discover import discover
from contamscan.errors import ContamscanError, FieldMissingError, FieldTypeError
from contamscan.formats import check_fields, has_field, read_batches
from contamscan.formats import jsonl as J
from contamscan.formats.fields import parse
from contamscan.model import Fields


@pytest.fixture(scope="module")
def essays() -> list[str]:
    if not os.path.exists(ESSAYS):
        pytest.skip("shared data not available")
    return pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()


def shard_for(path):
    shards, _ = discover([str(path)])
    assert len(shards) == 1
    return shards[0]


# --------------------------------------------------------------------------- grammar


def test_parse_grammar():
    s = parse("messages[role=assistant].content")
    (p,) = s.paths
    assert [st.name for st in p.steps] == ["messages", "content"]
    assert p.steps[0].where == ("role", "assistant") and p.multi and not s.simple
    s = parse("text|messages[-1].content|doc.body")
    assert [str(p) for p in s.paths] == ["text", "messages[-1].content", "doc.body"]
    assert s.paths[1].steps[0].index == -1 and s.paths[2].plain
    assert parse("doc.body").simple and parse("text").simple
    assert parse("conversations[from=gpt].value").paths[0].steps[0].where == ("from", "gpt")
    for bad in ("", "messages[", "a..b", "messages[role=a][0]", ".text", "a|", "m[x=1].n[y=2].c"):
        with pytest.raises(ContamscanError, match="`text_field`"):
            parse(bad)


# --------------------------------------------------------------------------- the same texts everywhere

SELECTORS = {
    "messages[role=assistant].content":
        lambda r: [(i, m["content"]) for i, m in enumerate(r.get("messages") or [])
                   if m.get("role") == "assistant" and m.get("content") is not None],
    "messages[-1].content":
        lambda r: [(len(r["messages"]) - 1, r["messages"][-1]["content"])]
        if r.get("messages") and r["messages"][-1].get("content") is not None else [],
    "messages[0].content":
        lambda r: [(0, r["messages"][0]["content"])]
        if r.get("messages") and r["messages"][0].get("content") is not None else [],
}
SELECTORS["text|messages[role=assistant].content"] = \
    lambda r: [(-1, r["text"])] if r.get("text") is not None else SELECTORS["messages[role=assistant].content"](r)


def chat_records(essays: list[str], n: int = 400, seed: int = 7) -> list[dict]:
    """Chat SFT records: system / user / assistant turns holding real essays, with the odd
    record a selector picks nothing from (no assistant turn, no turns, null turns, a null
    content) and some with a plain ``text`` instead."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pick = lambda: essays[rng.randrange(len(essays))]  # noqa: E731
        kind = rng.random()
        msgs = [{"role": "system", "content": "You are helpful."}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": pick()[:300]})
            msgs.append({"role": "assistant", "content": pick()})
        rec = {"id": f"r{i}", "messages": msgs}
        if kind < 0.05:
            rec["messages"] = [m for m in msgs if m["role"] != "assistant"]  # no assistant turn
        elif kind < 0.08:
            rec["messages"] = []
        elif kind < 0.10:
            rec["messages"] = None
        elif kind < 0.14:
            msgs[-1]["content"] = None  # a null turn
        elif kind < 0.22:
            rec["text"] = pick()
        out.append(rec)
    return out


def write_all(tmp_path, records) -> dict:
    """The records as JSON Lines, Parquet (list<struct> column, small row groups) and Arrow IPC."""
    paths = {"jsonl": tmp_path / "sft.jsonl", "parquet": tmp_path / "sft.parquet", "arrow": tmp_path / "sft.arrow"}
    with open(paths["jsonl"], "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    keys = list(dict.fromkeys(k for r in records for k in r))  # every column (from_pylist looks at the first)
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records])
    assert pa.types.is_list(table.schema.field("messages").type)
    pq.write_table(table, paths["parquet"], row_group_size=57)
    with pa.ipc.new_file(paths["arrow"], table.schema) as w:
        for b in table.to_batches(max_chunksize=41):
            w.write_batch(b)
    return paths


def read_all(path, fields: Fields, **kw) -> dict:
    out = {"rows": [], "turns": [], "texts": [], "ids": [], "bad": [], "records": 0}
    for b in read_batches(shard_for(path), fields, batch_bytes=64 << 10, **kw) if not kw.get("_force_slow") else \
            J.read(shard_for(path), fields, 64 << 10, False, _force_slow=True):
        assert len(b.texts) == len(b.rows) == len(b.ids) and b.texts.null_count == 0
        out["rows"] += b.rows.tolist()
        out["texts"] += b.texts.to_pylist()
        out["ids"] += b.ids.to_pylist()
        out["turns"] += b.turns.tolist() if b.turns is not None else [None] * len(b.rows)
        out["bad"] += [(r.row, r.reason) for r in b.bad]
        out["records"] += b.n_records
    return out


@pytest.mark.parametrize("selector", sorted(SELECTORS))
def test_selector_gives_the_same_texts_in_every_format_and_path(tmp_path, essays, selector, monkeypatch):
    records = chat_records(essays)
    paths = write_all(tmp_path, records)
    want = [SELECTORS[selector](r) for r in records]
    joined = [(i, "\n\n".join(v for _, v in w)) for i, w in enumerate(want) if w]
    per_turn = [(i, t, v) for i, w in enumerate(want) for t, v in w]
    assert len(joined) < len(records) and any(len(w) > 1 for w in want) == ("role=" in selector)
    fast_blocks = []
    real_fast = J._fast_block
    monkeypatch.setattr(J, "_fast_block", lambda *a: fast_blocks.append(real_fast(*a)) or fast_blocks[-1])
    bad_by_format = {}
    for name, path in [*paths.items(), ("jsonl-slow", paths["jsonl"])]:
        kw = {"_force_slow": True} if name == "jsonl-slow" else {}
        got = read_all(path, Fields(text=selector, id="id"), **kw)
        assert list(zip(got["rows"], got["texts"])) == joined, name
        assert got["ids"] == [records[i]["id"] for i, _ in joined]
        assert got["records"] == len(records) == len(got["rows"]) + len(got["bad"])
        bad_by_format[name] = got["bad"]
        turns = read_all(path, Fields(text=selector, id="id", per_turn=True), **kw)
        assert list(zip(turns["rows"], turns["turns"], turns["texts"])) == \
            [(i, -1 if t < 0 else t, v) for i, t, v in per_turn], name
        assert turns["bad"] == got["bad"] and turns["records"] == len(records)
    assert any(b is not None for b in fast_blocks)  # the fast JSON path did the work
    assert bad_by_format["jsonl"] == bad_by_format["jsonl-slow"]  # the two JSON paths agree exactly
    assert bad_by_format["parquet"] == bad_by_format["arrow"]
    reasons = {r for _, r in bad_by_format["jsonl"]}
    assert "text_no_match" in reasons and "text_null" in reasons


def test_filter_on_a_number_and_a_nested_path(tmp_path, essays):
    """Keys compare as text (turn: 1 matches [turn=1]); a filter below a struct; fallbacks
    that skip a null value."""
    records = [
        {"chat": {"turns": [{"turn": 0, "text": essays[0]}, {"turn": 1, "text": essays[1]}]}, "body": None},
        {"chat": {"turns": [{"turn": 1, "text": essays[2]}, {"turn": 1, "text": essays[3]}]}, "body": essays[4]},
        {"chat": {"turns": [{"turn": 2, "text": essays[5]}]}, "body": None},
    ]
    pj = tmp_path / "n.jsonl"
    pj.write_text("".join(json.dumps(r) + "\n" for r in records))
    pp = tmp_path / "n.parquet"
    pq.write_table(pa.Table.from_pylist(records), pp)
    for path in (pj, pp):
        got = read_all(path, Fields(text="chat.turns[turn=1].text", id="body"))
        assert list(zip(got["rows"], got["texts"])) == [(0, essays[1]), (1, essays[2] + "\n\n" + essays[3])]
        assert got["bad"] == [(2, "text_no_match")]
        got = read_all(path, Fields(text="body|chat.turns[0].text", id="body"))
        assert got["texts"] == [essays[0], essays[4], essays[5]]
    slow = read_all(pj, Fields(text="chat.turns[turn=1].text", id="body"), _force_slow=True)
    assert slow["texts"] == [essays[1], essays[2] + "\n\n" + essays[3]]


# --------------------------------------------------------------------------- failing before work


def test_a_list_of_turns_as_the_text_is_a_type_error(tmp_path, essays):
    """`text_field=messages` on chat records used to read 0 documents: now a clear error
    saying it is a list and what to write instead, in every format."""
    paths = write_all(tmp_path, chat_records(essays, n=50))
    for path in paths.values():
        with pytest.raises(FieldTypeError, match=r"list.*`messages\[role=assistant\]\.content`"):
            check_fields(shard_for(path), Fields(text="messages"))
    for path in (paths["parquet"], paths["arrow"]):
        with pytest.raises(FieldTypeError, match="not a list"):
            check_fields(shard_for(path), Fields(text="id[0]"))
        with pytest.raises(FieldTypeError, match="no field 'speaker'"):
            check_fields(shard_for(path), Fields(text="messages[speaker=gpt].content"))


def test_a_selector_whose_field_is_absent_names_the_fields_present(tmp_path, essays):
    paths = write_all(tmp_path, chat_records(essays, n=50))
    for path in paths.values():
        shard = shard_for(path)
        with pytest.raises(FieldMissingError, match=r"'conversations\[from=gpt\]\.value' not found.*messages"):
            check_fields(shard, Fields(text="conversations[from=gpt].value"))
        check_fields(shard, Fields(text="conversations[from=gpt].value|messages[-1].content"))  # a fallback is there
        assert has_field(shard, "messages[role=assistant].content")
        assert has_field(shard, "nothing|id") and not has_field(shard, "nothing|nowhere")


def test_units_stay_in_bounded_batches(tmp_path, essays):
    """A long chat file streams: no batch holds much more than batch_bytes of text."""
    records = chat_records(essays, n=1500, seed=3)
    paths = write_all(tmp_path, records)
    for path in paths.values():
        sizes = [int(np.sum([len(t.encode()) for t in b.texts.to_pylist()]))
                 for b in read_batches(shard_for(path), Fields(text="messages[role=assistant].content"),
                                       batch_bytes=256 << 10)]
        assert len(sizes) > 4 and max(sizes) < 4 * (256 << 10) + 200_000
