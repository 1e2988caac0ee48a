"""``scan --write-annotations``: per shard, exactly one row per input record, in order, for
every format (Parquet, JSON Lines plain and gzip'd, Arrow IPC, a JSON array, chat records),
bad records included (unflagged, with their reason); flagged as matches.parquet says; the
dolma attributes layout (JSON Lines, gzip, mirroring the shard paths) or Parquet; a shard
scanned in pieces and a resumed scan give the same files as one uninterrupted whole scan."""

import gzip
import json
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _locations import run_cli
from _workspace import build, write_formats
from conftest import HUMAN

import contamscan
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError
from contamscan.model import flagging
from contamscan.scanner.annotations import annotation_relpath


@pytest.fixture(scope="module")
def ws(tmp_path_factory, ai_table):
    ws = build(tmp_path_factory.mktemp("annotations"), ai_table, HUMAN)
    layout = write_formats(ws, ws.root / "formats")
    # chat records: the assistant turns are the text; one record has no assistant turn
    chat, recs = [], []
    for k, d in enumerate(ws.docs[:60]):
        msgs = [{"role": "user", "content": "Write something."}, {"role": "assistant", "content": d["text"]}]
        if k == 4:
            msgs = msgs[:1]
        chat.append(json.dumps({"id": d["id"], "messages": msgs}))
        recs.append({"id": d["id"], "text": d["text"] if k != 4 else None, "bad": "text_no_match" if k == 4 else None})
    (ws.root / "chat").mkdir()
    (ws.root / "chat" / "sft.jsonl").write_text("\n".join(chat) + "\n")
    return ws, layout, recs


def _read_jsonl(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _rows(path, fmt):
    """An annotation file as rows {row, id, flagged, label, ref_id, spans, error}."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    out = []
    for r in _read_jsonl(path):
        a = r["attributes"]
        out.append({"row": r["row"], "id": r["id"], **{k[len("contamscan__"):]: v for k, v in a.items()}})
    return out


def _check(out, ann, fmt, layout):
    matches = flagging(pq.read_table(out / "matches.parquet"))
    report = json.loads((out / "report.json").read_text())
    assert {s["shard"] for s in report["shards"]} == set(layout)
    for rel, records in layout.items():
        rows = _rows(ann / annotation_relpath(rel, fmt), fmt)
        assert len(rows) == len(records), rel
        assert [r["row"] for r in rows] == list(range(len(records)))
        for r, rec in zip(rows, records):
            assert r["error"] == rec["bad"], (rel, r["row"])
            if rec["bad"] is None:
                assert r["id"] == rec["id"]
            else:
                assert r["flagged"] is False
        mine = matches.filter(pc.equal(matches["shard"], rel))
        flagged_rows = set(mine["row"].to_pylist())
        assert {r["row"] for r in rows if r["flagged"]} == flagged_rows, rel
        strongest = {}
        for m in mine.to_pylist():
            strongest.setdefault(m["row"], (m["label"], m["ref_id"]))
        assert {r["row"]: (r["label"], r["ref_id"]) for r in rows if r["flagged"]} == strongest
        shard = next(s for s in report["shards"] if s["shard"] == rel)
        assert len(rows) == shard["documents"] + shard["errors"]["bad_records"]
    return matches


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_one_row_per_record_in_every_format(ws, tmp_path, fmt):
    ws, layout, _ = ws
    out, ann = tmp_path / "out", tmp_path / "attributes" / "contamscan"
    r = run_cli("scan", ws.root / "formats", "--index", ws.index, "-o", out, "--write-annotations", ann,
                "--annotations-format", fmt, "--max-bad-share", "1", "--workers", "2")
    assert r.returncode == 0, r.stderr
    matches = _check(out, ann, fmt, layout)
    assert matches.num_rows >= 40
    # the planted copies are flagged with the reference they copy
    planted = {d["id"]: d["planted"] for d in ws.docs if d["planted"]}
    for rel in layout:
        for row in _rows(ann / annotation_relpath(rel, fmt), fmt):
            if row["id"] in planted:
                assert row["flagged"] and row["ref_id"] == planted[row["id"]]
    if fmt == "jsonl":  # dolma spans: [start, end, score], in the text's characters
        rows = _read_jsonl(ann / "b.jsonl.gz")
        flagged = [r for r in rows if r["attributes"]["contamscan__flagged"]]
        assert flagged and all(len(s) == 3 and s[0] < s[1] for r in flagged for s in r["attributes"]["contamscan__spans"])
        assert not list(ann.rglob(".*"))  # no temporary or part left behind


@pytest.mark.parametrize("per_turn", [False, True])
def test_chat_records(ws, tmp_path, per_turn):
    ws, _, recs = ws
    out, ann = tmp_path / "out", tmp_path / "ann"
    r = run_cli("scan", ws.root / "chat", "--index", ws.index, "-o", out, "--write-annotations", ann,
                "--text-field", "messages[role=assistant].content", "--max-bad-share", "1", "--workers", "1",
                *(["--per-turn"] if per_turn else []))
    assert r.returncode == 0, r.stderr
    _check(out, ann, "jsonl", {"sft.jsonl": recs})
    rows = _read_jsonl(ann / "sft.jsonl.gz")
    if per_turn:  # each span names its turn: the assistant's, at position 1
        assert all(r["attributes"]["contamscan__turns"] == [1] * len(r["attributes"]["contamscan__spans"])
                   for r in rows)
        assert any(r["attributes"]["contamscan__flagged"] for r in rows)


def _files(ann):
    """Every file below ``ann``: JSON Lines byte for byte, Parquet by content (its row groups
    follow the batches that wrote it)."""
    return {p.relative_to(ann).as_posix(): pq.read_table(p).to_pylist() if p.suffix == ".parquet" else p.read_bytes()
            for p in sorted(ann.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_pieces_and_resume_give_the_whole_scans_files(ws, tmp_path, fmt):
    ws, layout, _ = ws
    data = tmp_path / "data"
    shutil.copytree(ws.root / "formats", data)
    shutil.copy(ws.parquet, data / "0big.parquet")  # first in shard order; 7 row groups, cut in pieces below
    whole = ScanOptions(workers=1, max_bad_share=1, write_annotations=str(tmp_path / "whole"), annotations_format=fmt)
    contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out-whole"), whole)
    pieces = ScanOptions(workers=2, max_bad_share=1, piece_bytes=200_000, write_annotations=str(tmp_path / "pieces"),
                         annotations_format=fmt)
    events = []
    contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out-pieces"), pieces,
                    events=lambda name, f: events.append((name, f)))
    assert sum(1 for n, f in events if n == "shard_finished" and "row_groups" in f) >= 3  # it was cut in pieces
    assert _files(tmp_path / "pieces") == _files(tmp_path / "whole")
    big = _rows(tmp_path / "whole" / annotation_relpath("0big.parquet", fmt), fmt)
    assert len(big) == len(ws.docs) and sum(r["flagged"] for r in big) >= 48

    # interrupted after two units (two pieces of 0big.parquet), then resumed
    resumed = ScanOptions(workers=1, max_bad_share=1, piece_bytes=200_000, write_annotations=str(tmp_path / "resumed"),
                          annotations_format=fmt)
    finished = []

    def stop_after_two(name, f):
        if name == "shard_finished":
            finished.append(f)
            if len(finished) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out-resumed"), resumed, events=stop_after_two)
    assert "row_groups" in finished[0]
    contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out-resumed"), resumed, resume=True)
    assert _files(tmp_path / "resumed") == _files(tmp_path / "whole")
    a = pq.read_table(tmp_path / "out-resumed" / "matches.parquet")
    assert a.equals(pq.read_table(tmp_path / "out-whole" / "matches.parquet"))


def test_refused_where_it_cannot_annotate_every_record(ws, tmp_path):
    ws, _, _ = ws
    with pytest.raises(ContamscanError, match="write_annotations"):
        ScanOptions(limit=10, write_annotations=str(tmp_path / "a"))
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ws.root / "formats" / "b.jsonl", data / "x.jsonl")
    shutil.copy(ws.root / "formats" / "a.parquet", data / "x.parquet")
    with pytest.raises(ContamscanError, match="both be written as x.jsonl.gz"):
        contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out"),
                        ScanOptions(workers=1, write_annotations=str(tmp_path / "ann")))
    with pytest.raises(ContamscanError, match="write_annotations"):  # never inside the output directory
        contamscan.scan([str(data / "x.jsonl")], str(ws.index), str(tmp_path / "out"),
                        ScanOptions(workers=1, write_annotations=str(tmp_path / "out" / "ann")))


def test_a_failed_shard_has_no_annotations(ws, tmp_path):
    ws, _, _ = ws
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ws.root / "formats" / "c.jsonl.gz", data / "good.jsonl.gz")
    (data / "bad.jsonl.gz").write_bytes(gzip.compress(b'{"id": 1, "text": "x"}\n' * 50)[:-20])  # truncated
    ann = tmp_path / "ann"
    (ann).mkdir()
    (ann / "bad.jsonl.gz").write_bytes(b"an old file")
    report = contamscan.scan([str(data)], str(ws.index), str(tmp_path / "out"),
                             ScanOptions(workers=1, write_annotations=str(ann)))
    assert report.failed_shards == ["bad.jsonl.gz"]
    assert sorted(p.name for p in ann.iterdir()) == ["good.jsonl.gz"]
