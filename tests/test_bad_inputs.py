"""Bad inputs, end to end: every case goes through the real CLI (``contamscan scan``).

Each test writes a small dataset (real human text, usually with one verbatim copy of an
indexed model output planted in it), scans it, and checks the documented outcome: the bad
record or file is counted and skipped, or the scan fails with a clear message and the right
exit status, never a traceback. Wherever records are read, the counts prove that nothing was
lost: documents + bad records == records written, and the planted copy is flagged.

The index (30 real model outputs) is built once for the module.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import HUMAN
from contamscan.cli import EXIT_ERROR, EXIT_FAILED_SHARDS, EXIT_OK, cli
from contamscan.io.artifact import manifest_self_digest

N_REFS = 30


# ---------------------------------------------------------------------------------------
# data and index, once per module
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refs(ai_table) -> list[dict]:
    """30 real model outputs, a spread over models and prompts."""
    rows = ai_table.select(["id", "model", "text"]).to_pylist()
    return rows[:: len(rows) // N_REFS][:N_REFS]


@pytest.fixture(scope="module")
def human() -> list[str]:
    """Real human texts, none of which is in the index."""
    essays = [p for p in HUMAN if p.name == "essays.parquet"]
    if not essays:
        pytest.skip("human data not found")
    return pq.read_table(essays[0], columns=["text"])["text"].to_pylist()[:60]


@pytest.fixture(scope="module")
def index(tmp_path_factory, refs) -> str:
    root = tmp_path_factory.mktemp("bad-inputs-index")
    pq.write_table(pa.Table.from_pylist(refs), root / "refs.parquet")
    result = CliRunner().invoke(
        cli, ["index", "build", str(root / "refs.parquet"), "-o", str(root / "index"), "--label-field", "model"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return str(root / "index")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def line(record) -> bytes:
    """One JSON Lines record: a dict is encoded (non-ASCII kept as is), bytes/str as given."""
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode("utf-8")
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def write_jsonl(path, records, *, newline: bytes = b"\n", final_newline: bool = True, opener=open,
                head: bytes = b"") -> str:
    """Write records (see :func:`line`) one per line; returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    body = head + newline.join(line(r) for r in records) + (newline if final_newline else b"")
    with opener(path, "wb") as f:
        f.write(body)
    return str(path)


def write_parquet(path, columns: dict) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return str(path)


@dataclass
class Scan:
    status: int
    report: dict | None  # report.json, None when none was written
    out: str  # output directory
    stdout: str
    stderr: str

    @property
    def totals(self) -> dict:
        return self.report["totals"]

    def shard(self, name: str) -> dict:
        found = [s for s in self.report["shards"] if s["shard"] == name]
        assert len(found) == 1, [s["shard"] for s in self.report["shards"]]
        return found[0]

    def matches(self) -> list[dict]:
        return pq.read_table(os.path.join(self.out, "matches.parquet")).to_pylist()

    def flagged(self) -> dict:
        """(shard, row) -> (ref_id, kind) for every flagged document."""
        return {(m["shard"], m["row"]): (m["ref_id"], m["kind"]) for m in self.matches()}


def _report(out) -> dict | None:
    path = os.path.join(out, "report.json")
    return json.load(open(path)) if os.path.exists(path) else None


# the suite plants a few bad records of one kind in shards of a few records, and checks how
# each is counted: far above the default `--max-bad-share` (1%), whose failures are tested on
# their own (tests/scanner/test_loud_failures.py), so its scans allow any share
ANY_BAD_SHARE = ("--max-bad-share", "1")


def scan(data, index, out, *args, workers: int = 1) -> Scan:
    """``contamscan scan DATA --index INDEX -o OUT`` through click, in this process."""
    argv = ["scan", *map(str, data if isinstance(data, list) else [data]), "--index", str(index),
            "-o", str(out), "--workers", str(workers), *ANY_BAD_SHARE, *map(str, args)]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert "Traceback" not in result.output
    return Scan(result.exit_code, _report(out), str(out), result.stdout, result.stderr)


def scan_process(data, index, out, *args, workers: int = 1, timeout: float = 120) -> Scan:
    """The same with ``python -m contamscan`` in a subprocess: real stderr, real exit status."""
    argv = [sys.executable, "-m", "contamscan", "scan", *map(str, data if isinstance(data, list) else [data]),
            "--index", str(index), "-o", str(out), "--workers", str(workers), *ANY_BAD_SHARE, *map(str, args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return Scan(p.returncode, _report(out), str(out), p.stdout, p.stderr)


def assert_nothing_lost(s: Scan, written: int, flagged: int | None = None) -> None:
    """Every record written is either a document or a counted bad record."""
    t = s.totals
    assert t["documents"] + t["errors"]["bad_records"] == written, t
    ok = [sh for sh in s.report["shards"] if sh["status"] == "ok"]
    assert sum(sh["documents"] for sh in ok) == t["documents"]
    assert sum(sh["errors"]["bad_records"] for sh in ok) == t["errors"]["bad_records"]
    if flagged is not None:
        assert t["flagged_documents"] == flagged, s.matches()
        assert len(s.matches()) == flagged


def truncate(path, keep: float = 0.5) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


def human_records(human, n, prefix="h"):
    return [{"id": f"{prefix}{i}", "text": human[i % len(human)]} for i in range(n)]


# ---------------------------------------------------------------------------------------
# bad records in JSON Lines
# ---------------------------------------------------------------------------------------


def test_malformed_json_lines(tmp_path, index, refs, human):
    records = human_records(human, 6)
    records[1] = b'{"id": "m1", "text": "unterminated string'
    records[3] = b'{"id": "m3", "text": "two" "strings"}'  # looks like an object: the fast path is tried
    records[4] = {"id": "copy", "text": refs[0]["text"]}
    write_jsonl(tmp_path / "data" / "a.jsonl", records)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK, s.stderr
    a = s.shard("a.jsonl")
    assert a["status"] == "ok" and a["documents"] == 4
    assert a["errors"]["by_reason"] == {"malformed_json": 2}
    assert [(e["file"], e["row"], e["line"], e["reason"]) for e in a["errors"]["examples"]] == [
        ("a.jsonl", 1, 2, "malformed_json"), ("a.jsonl", 3, 4, "malformed_json")]
    assert_nothing_lost(s, written=6, flagged=1)
    assert s.flagged() == {("a.jsonl", 4): (refs[0]["id"], "whole")}

    # --strict: the first bad record fails the shard, with its line
    s = scan(tmp_path / "data", index, tmp_path / "out-strict", "--strict")
    assert s.status == EXIT_FAILED_SHARDS
    a = s.shard("a.jsonl")
    assert a["status"] == "failed" and "line 2: malformed_json" in a["error"]


def test_text_null_number_list_object(tmp_path, index, refs, human):
    records = human_records(human, 3) + [
        {"id": "n", "text": None},
        {"id": "i", "text": 42},
        {"id": "l", "text": ["a", "list"]},
        {"id": "o", "text": {"an": "object"}},
        {"id": "copy", "text": refs[1]["text"]},
    ]
    write_jsonl(tmp_path / "data" / "t.jsonl", records)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    t = s.shard("t.jsonl")
    assert t["documents"] == 4
    assert t["errors"]["by_reason"] == {"text_null": 1, "text_not_string": 3}
    assert [(e["row"], e["reason"], e["detail"]) for e in t["errors"]["examples"]] == [
        (3, "text_null", "null"), (4, "text_not_string", "number"),
        (5, "text_not_string", "list"), (6, "text_not_string", "object")]
    assert_nothing_lost(s, written=8, flagged=1)
    assert s.flagged() == {("t.jsonl", 7): (refs[1]["id"], "whole")}


def test_invalid_utf8_in_jsonl(tmp_path, index, refs, human):
    records = human_records(human, 4)
    records[1] = b'{"id": "latin1", "text": "caf\xe9 au lait, cr\xe8me br\xfbl\xe9e"}'
    records[2] = b'{"id": "bad-id-\xff", "text": "the id field is not UTF-8"}'
    records.append({"id": "copy", "text": refs[2]["text"]})
    write_jsonl(tmp_path / "data" / "u.jsonl", records)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    u = s.shard("u.jsonl")
    assert u["errors"]["by_reason"] == {"invalid_utf8": 2}
    assert [(e["row"], e["line"]) for e in u["errors"]["examples"]] == [(1, 2), (2, 3)]
    assert_nothing_lost(s, written=5, flagged=1)
    assert s.flagged() == {("u.jsonl", 4): (refs[2]["id"], "whole")}


def test_invalid_utf8_in_parquet_string_column(tmp_path, index, refs, human):
    # Arrow does not validate strings it writes from raw buffers: build such a column
    raw = [human[0].encode(), b"caf\xe9 au lait \xff\xfe", refs[3]["text"].encode(), human[1].encode()]
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int32)
    text = pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(offsets.tobytes()),
                                                         pa.py_buffer(b"".join(raw))])
    write_parquet(tmp_path / "data" / "p.parquet", {"id": ["p0", "p1", "p2", "p3"], "text": text})
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    p = s.shard("p.parquet")
    assert p["errors"]["by_reason"] == {"invalid_utf8": 1}
    assert p["errors"]["examples"][0]["row"] == 1
    assert_nothing_lost(s, written=4, flagged=1)
    assert s.flagged() == {("p.parquet", 2): (refs[3]["id"], "whole")}


# ---------------------------------------------------------------------------------------
# empty files, blank lines, line ends, BOM
# ---------------------------------------------------------------------------------------


def test_empty_jsonl_file(tmp_path, index, refs, human):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "empty.jsonl").write_bytes(b"")
    write_jsonl(tmp_path / "data" / "good.jsonl", human_records(human, 2) + [{"text": refs[4]["text"]}])
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    e = s.shard("empty.jsonl")
    assert e["status"] == "ok" and e["documents"] == 0 and e["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=3, flagged=1)


def test_zero_byte_parquet_fails_alone(tmp_path, index, refs, human):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "empty.parquet").write_bytes(b"")
    write_jsonl(tmp_path / "data" / "good.jsonl", human_records(human, 2) + [{"text": refs[4]["text"]}])
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_FAILED_SHARDS  # not a Parquet file: no footer (a crashed write?)
    e = s.shard("empty.parquet")
    assert e["status"] == "failed" and e["error"].startswith("empty.parquet: ") and "0 bytes" in e["error"]
    assert "1 shard(s) could not be read" in s.stderr
    assert s.shard("good.jsonl")["status"] == "ok"
    assert s.totals["errors"]["failed_shards"] == 1
    assert_nothing_lost(s, written=3, flagged=1)


def test_blank_and_whitespace_only_lines(tmp_path, index, refs, human):
    recs = human_records(human, 4)
    lines = [b"", b"  ", recs[0], b"", recs[1], b"\t", b" \t ", {"id": "copy", "text": refs[5]["text"]},
             b"", recs[2], b"   ", recs[3], b""]
    write_jsonl(tmp_path / "data" / "b.jsonl", lines)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.shard("b.jsonl")["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=5, flagged=1)
    # rows count records, not lines: the copy is the third record
    assert s.flagged() == {("b.jsonl", 2): (refs[5]["id"], "whole")}
    assert s.matches()[0]["doc_id"] == "copy"


def test_utf8_bom(tmp_path, index, refs, human):
    records = [{"id": "copy", "text": refs[6]["text"]}] + human_records(human, 3)
    write_jsonl(tmp_path / "data" / "bom.jsonl", records, head=b"\xef\xbb\xbf")
    write_jsonl(tmp_path / "data" / "bom.jsonl.gz", records, head=b"\xef\xbb\xbf", opener=gzip.open)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert_nothing_lost(s, written=8, flagged=2)
    assert s.totals["errors"]["bad_records"] == 0  # the first record is not malformed
    assert s.flagged() == {("bom.jsonl", 0): (refs[6]["id"], "whole"),
                           ("bom.jsonl.gz", 0): (refs[6]["id"], "whole")}
    assert {m["doc_id"] for m in s.matches()} == {"copy"}


def test_crlf_line_ends(tmp_path, index, refs, human):
    records = human_records(human, 3) + [{"id": "copy", "text": refs[7]["text"]}, b"", {"id": "last", "text": "x"}]
    write_jsonl(tmp_path / "data" / "crlf.jsonl", records, newline=b"\r\n")
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.totals["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=5, flagged=1)
    [m] = s.matches()
    assert (m["row"], m["doc_id"], m["kind"], m["similarity"]) == (3, "copy", "whole", 1.0)


def test_u2028_u2029_stay_inside_the_text(tmp_path, index, refs, human):
    # raw (not escaped) line and paragraph separators, and the other characters that
    # str.splitlines() would break on, inside JSON strings: they are not line ends
    copy = refs[8]["text"].replace("\n\n", "\u2029").replace(". ", ".\u2028 ")
    assert "\u2028" in copy and "\u2029" in copy
    records = [
        {"id": "h0", "text": human[0]},
        {"id": "seps", "text": "a\u2028b\u2029c\x85d\x1ce\x1df\x1eg\x0bh\x0ci"},
        {"id": "copy", "text": copy},
        {"id": "h1", "text": human[1].replace(" ", "\u2028", 50)},
        {"id": "copy2", "text": refs[9]["text"]},
    ]
    write_jsonl(tmp_path / "data" / "sep.jsonl", records)
    raw = (tmp_path / "data" / "sep.jsonl").read_bytes()
    assert raw.count(b"\n") == 5 and "\u2028".encode() in raw  # written raw, one line per record
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.totals["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=5, flagged=2)
    assert s.flagged() == {("sep.jsonl", 2): (refs[8]["id"], "whole"), ("sep.jsonl", 4): (refs[9]["id"], "whole")}


def test_empty_text_is_a_document(tmp_path, index, refs, human):
    records = [{"id": "e", "text": ""}, {"id": "ws", "text": " \n\t "}, {"id": "punct", "text": "!!! ..."}]
    records += human_records(human, 2) + [{"id": "copy", "text": refs[10]["text"]}]
    write_jsonl(tmp_path / "data" / "e.jsonl", records)
    write_parquet(tmp_path / "data" / "e.parquet", {"text": ["", refs[11]["text"], ""]})
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.shard("e.jsonl")["documents"] == 6 and s.shard("e.parquet")["documents"] == 3
    assert s.totals["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=9, flagged=2)
    assert s.flagged() == {("e.jsonl", 5): (refs[10]["id"], "whole"), ("e.parquet", 1): (refs[11]["id"], "whole")}


def test_last_line_without_trailing_newline(tmp_path, index, refs, human):
    records = human_records(human, 3) + [{"id": "copy", "text": refs[12]["text"]}]
    write_jsonl(tmp_path / "data" / "a.jsonl", records, final_newline=False)
    write_jsonl(tmp_path / "data" / "b.jsonl", records, newline=b"\r\n", final_newline=False)
    write_jsonl(tmp_path / "data" / "c.jsonl.gz", records, final_newline=False, opener=gzip.open)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.totals["errors"]["bad_records"] == 0
    assert_nothing_lost(s, written=12, flagged=3)
    assert set(s.flagged()) == {("a.jsonl", 3), ("b.jsonl", 3), ("c.jsonl.gz", 3)}


# ---------------------------------------------------------------------------------------
# shards that cannot be read
# ---------------------------------------------------------------------------------------


def test_truncated_gzip_and_zstd_fail_alone(tmp_path, index, refs, human):
    data = tmp_path / "data"
    many = human_records(human, 400)
    write_jsonl(data / "t.jsonl.gz", many, opener=gzip.open)
    write_jsonl(data / "t.jsonl.zst", many, opener=lambda p, m: pa.CompressedOutputStream(str(p), "zstd"))
    truncate(data / "t.jsonl.gz")
    truncate(data / "t.jsonl.zst")
    write_jsonl(data / "good.jsonl", human_records(human, 5) + [{"text": refs[13]["text"]}])
    s = scan_process(data, index, tmp_path / "out", workers=2)
    assert s.status == EXIT_FAILED_SHARDS
    assert "2 shard(s) could not be read" in s.stderr
    for name in ("t.jsonl.gz", "t.jsonl.zst"):
        sh = s.shard(name)
        assert sh["status"] == "failed" and sh["error"].startswith(f"{name}: ") and "\n" not in sh["error"]
        assert sh["documents"] == 0  # nothing half-counted
    assert s.shard("good.jsonl")["status"] == "ok"
    assert s.totals["errors"]["failed_shards"] == 2 and s.totals["shards"] == 3
    assert_nothing_lost(s, written=6, flagged=1)


def test_truncated_plain_jsonl_loses_only_the_cut_record(tmp_path, index, refs, human):
    # for contrast: without compression, a cut file is readable, its last line is a bad record
    path = write_jsonl(tmp_path / "data" / "t.jsonl", [{"text": refs[13]["text"]}] + human_records(human, 5))
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: raw.rindex(b" ", 0, len(raw) - 20)])  # mid-record, between words
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert s.shard("t.jsonl")["errors"]["by_reason"] == {"malformed_json": 1}
    assert s.shard("t.jsonl")["errors"]["examples"][0]["line"] == 6
    assert_nothing_lost(s, written=6, flagged=1)


def test_corrupt_parquet_footer_fails_alone(tmp_path, index, refs, human):
    data = tmp_path / "data"
    path = write_parquet(data / "c.parquet", {"text": human[:20] + [refs[14]["text"]]})
    raw = bytearray(open(path, "rb").read())
    footer_len = int.from_bytes(raw[-8:-4], "little")
    start = len(raw) - 8 - footer_len
    for i in range(start, len(raw) - 8):  # garble the footer; its length and the magic stay
        raw[i] ^= 0x5A
    open(path, "wb").write(bytes(raw))
    write_jsonl(data / "good.jsonl", human_records(human, 5) + [{"text": refs[15]["text"]}])
    s = scan(data, index, tmp_path / "out")
    assert s.status == EXIT_FAILED_SHARDS
    c = s.shard("c.parquet")
    assert c["status"] == "failed" and c["error"].startswith("c.parquet: ") and c["documents"] == 0
    assert s.shard("good.jsonl")["status"] == "ok"
    assert_nothing_lost(s, written=6, flagged=1)


def test_parquet_without_text_column(tmp_path, index, refs, human):
    data = tmp_path / "data"
    write_parquet(data / "notext.parquet", {"id": ["a", "b"], "title": ["t", "u"], "body": human[:2]})
    write_jsonl(data / "good.jsonl", human_records(human, 2))
    s = scan_process(data, index, tmp_path / "out")
    assert s.status == EXIT_ERROR
    assert s.stderr.startswith("error: field 'text' not found in notext.parquet")
    assert "fields present: id, title, body" in s.stderr
    assert s.report is None and not (tmp_path / "out" / "matches.parquet").exists()


def test_unreadable_file(tmp_path, index, refs, human):
    data = tmp_path / "data"
    locked = write_jsonl(data / "locked.jsonl", human_records(human, 3))
    write_jsonl(data / "good.jsonl", human_records(human, 2) + [{"text": refs[16]["text"]}])
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: chmod 000 does not make a file unreadable")
        s = scan(data, index, tmp_path / "out")
    finally:
        os.chmod(locked, 0o644)
    # README: a shard that cannot be read (... permission denied) fails, exit status 3
    assert s.status == EXIT_FAILED_SHARDS
    sh = s.shard("locked.jsonl")
    assert sh["status"] == "failed" and "Permission denied" in sh["error"]
    assert_nothing_lost(s, written=3, flagged=1)


def _without_root_bypass(locked) -> list[str] | None:
    """A command prefix under which permission bits hold (for root: without CAP_DAC_OVERRIDE
    and CAP_DAC_READ_SEARCH, which ``setpriv`` drops from the bounding set), proven on the
    directory ``locked`` (mode 000); None when this machine cannot do it (the test then skips)."""
    prefix = [] if os.geteuid() != 0 else ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    if prefix and shutil.which("setpriv") is None:
        return None
    probe = subprocess.run([*prefix, sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(locked)],
                           capture_output=True, text=True)
    return prefix if "PermissionError" in probe.stderr else None


def test_unlistable_directory_is_a_failed_input(tmp_path, index, refs, human):
    # a directory that cannot be listed may hold data: the scan must not pass on the part it saw
    data = tmp_path / "data"
    write_jsonl(data / "good.jsonl", human_records(human, 2) + [{"text": refs[17]["text"]}])
    write_jsonl(data / "locked" / "hidden.jsonl", [{"text": refs[18]["text"]}] * 3)
    os.chmod(data / "locked", 0)
    try:
        prefix = _without_root_bypass(data / "locked")
        if prefix is None:
            pytest.skip("cannot drop root's permission bypass here (no setpriv, or no CAP_SETPCAP)")
        for extra in ([], ["--fail-above", "0.9"]):
            out = tmp_path / f"out{len(extra)}"
            argv = [*prefix, sys.executable, "-m", "contamscan", "scan", str(data), "--index", index, "-o", str(out),
                    "--workers", "1", *ANY_BAD_SHARE, *extra]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert "Traceback" not in p.stderr, p.stderr
            assert p.returncode == EXIT_FAILED_SHARDS, p.stderr  # as for a failed shard, gate or not
            assert "1 input path(s) could not be listed or read" in p.stderr and "locked" in p.stderr
            s = Scan(p.returncode, _report(out), str(out), p.stdout, p.stderr)
            failed = s.totals["errors"]["failed_inputs"]
            assert failed == [{"path": str(data / "locked"), "reason": "unreadable: Permission denied"}]
            assert failed[0] in s.totals["errors"]["skipped_files"]  # listed there too, as before
            assert [sh["shard"] for sh in s.report["shards"]] == ["good.jsonl"]  # the rest is scanned
            assert_nothing_lost(s, written=3, flagged=1)
            assert "failed input" in open(out / "report.md").read()
    finally:
        os.chmod(data / "locked", 0o755)


# ---------------------------------------------------------------------------------------
# a very large document
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_doc(refs) -> tuple[str, int]:
    """A 50 MB document of real human text with a reference output copied into its middle;
    returns (text, character offset of the copy)."""
    texts = []
    for p in HUMAN:
        texts += pq.read_table(p, columns=["text"])["text"].to_pylist()
    block = "\n\n".join(texts) + "\n\n"
    big = block * (50_000_000 // len(block.encode()) + 1)
    half = len(big) // 2
    return big[:half] + refs[17]["text"] + "\n\n" + big[half:], half


# The peak RSS of a process's own memory is VmHWM, read by the process itself: the rusage
# ru_maxrss of a child (wait4, or RUSAGE_SELF in it) starts from the parent's high-water mark
# when it was forked (Linux carries the forked copy's peak over exec), so in a long test run it
# measured pytest, not the scan.
_PEAK = """
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
"""
_WITH_PEAK = _PEAK + """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(str(peak_kb())))
sys.argv[0] = "contamscan"
runpy.run_module("contamscan", run_name="__main__")
"""


def test_50mb_single_document(tmp_path, index, refs, huge_doc):
    doc, at = huge_doc
    assert len(doc.encode()) >= 50_000_000
    data = tmp_path / "data"
    write_jsonl(data / "big.jsonl", [{"id": "big", "text": doc}, {"id": "copy", "text": refs[18]["text"]}])
    out = tmp_path / "out"
    hwm = tmp_path / "peak-kb"
    argv = [sys.executable, "-c", _WITH_PEAK, str(hwm), "scan", str(data), "--index", index, "-o", str(out),
            "--workers", "1"]
    with open(tmp_path / "stderr", "w+") as err:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        p.wait()
        err.seek(0)
        stderr = err.read()
    assert p.returncode == EXIT_OK, stderr
    peak_mb = int(hwm.read_text()) / 1024  # this scan's own peak memory
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB for a 50 MB document"
    s = Scan(p.returncode, _report(out), str(out), "", stderr)
    assert_nothing_lost(s, written=2, flagged=2)
    assert s.shard("big.jsonl")["bytes"] == len(doc.encode()) + len(refs[18]["text"].encode())
    big = [m for m in s.matches() if m["doc_id"] == "big"][0]
    assert (big["row"], big["ref_id"], big["kind"]) == (0, refs[17]["id"], "partial")
    end = at + len(refs[17]["text"])
    # the span lies within the copy (anchors are ~16 shingles apart: it may fall short a little)
    assert at <= big["char_start"] < big["char_end"] <= end
    assert big["char_end"] - big["char_start"] > 0.8 * len(refs[17]["text"])


# ---------------------------------------------------------------------------------------
# discovery: extensions, names, links, the output directory
# ---------------------------------------------------------------------------------------


def test_unknown_extensions_are_skipped_and_listed(tmp_path, index, refs, human):
    data = tmp_path / "data"
    write_jsonl(data / "good.jsonl", human_records(human, 2) + [{"text": refs[19]["text"]}])
    (data / "notes.txt").write_text(refs[19]["text"])
    (data / "data.csv").write_text("id,text\n1,hello\n")
    (data / "sub").mkdir()
    (data / "sub" / "README").write_text("no extension")
    (data / "sub" / "old.jsonl.bak").write_text('{"text": "x"}\n')
    s = scan(data, index, tmp_path / "out")
    assert s.status == EXIT_OK
    assert [sh["shard"] for sh in s.report["shards"]] == ["good.jsonl"]
    skipped = {(os.path.relpath(f["path"], data), f["reason"]) for f in s.totals["errors"]["skipped_files"]}
    assert skipped == {("notes.txt", "unknown extension"), ("data.csv", "unknown extension"),
                       ("sub/README", "unknown extension"), ("sub/old.jsonl.bak", "unknown extension")}
    assert "notes.txt" in open(tmp_path / "out" / "report.md").read()
    assert_nothing_lost(s, written=3, flagged=1)


def test_names_with_spaces_and_non_ascii(tmp_path, index, refs, human):
    data = tmp_path / "corpus ünïcode"
    write_jsonl(data / "données été" / "part 1.jsonl", human_records(human, 2) + [{"text": refs[20]["text"]}])
    write_parquet(data / "données été" / "sous dossier" / "naïve – 日本 #2.parquet",
                  {"text": [refs[21]["text"], human[3]]})
    write_jsonl(data / "top level.jsonl.gz", [{"text": refs[22]["text"]}], opener=gzip.open)
    s = scan(data, index, tmp_path / "sortie à côté")
    assert s.status == EXIT_OK
    names = ["données été/part 1.jsonl", "données été/sous dossier/naïve – 日本 #2.parquet", "top level.jsonl.gz"]
    assert sorted(sh["shard"] for sh in s.report["shards"]) == sorted(names)
    assert_nothing_lost(s, written=6, flagged=3)
    assert set(s.flagged()) == {(names[0], 2), (names[1], 0), (names[2], 0)}
    assert "données été/part 1.jsonl" in (tmp_path / "sortie à côté" / "report.md").read_text()


def test_file_names_that_are_not_utf8(tmp_path, index, refs, human):
    """Linux file names are bytes: one that is not UTF-8 (here Latin-1) is read all the same
    and shown with \\x escapes in the report (JSON, Parquet and Markdown need valid text)."""
    data = os.path.join(os.fsencode(tmp_path), b"data")
    write_jsonl(os.path.join(data, b"caf\xe9.jsonl"), human_records(human, 2) + [{"text": refs[26]["text"]}])
    write_jsonl(os.path.join(data, b"r\xe9sum\xe9", b"part.jsonl.gz"), [{"text": refs[27]["text"]}],
                opener=gzip.open)
    (tmp_path / "data" / "notes\udce9.txt").write_text("skipped")
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.status == EXIT_OK, s.stderr
    assert [sh["shard"] for sh in s.report["shards"]] == ["caf\\xe9.jsonl", "r\\xe9sum\\xe9/part.jsonl.gz"]
    assert [f["path"] for f in s.totals["errors"]["skipped_files"]] == [f"{tmp_path}/data/notes\\xe9.txt"]
    assert_nothing_lost(s, written=4, flagged=2)
    assert set(s.flagged()) == {("caf\\xe9.jsonl", 2), ("r\\xe9sum\\xe9/part.jsonl.gz", 0)}
    assert "caf\\xe9.jsonl" in (tmp_path / "out" / "report.md").read_text()


def test_parquet_file_name_that_is_not_utf8(tmp_path, index, refs, human):
    data = os.path.join(os.fsencode(tmp_path), b"data")
    os.makedirs(data)
    with open(os.path.join(data, b"caf\xe9.parquet"), "wb") as f:
        pq.write_table(pa.table({"text": [human[0], refs[28]["text"]]}), f)
    s = scan(tmp_path / "data", index, tmp_path / "out")
    assert s.shard("caf\\xe9.parquet")["status"] == "ok", s.shard("caf\\xe9.parquet")["error"]
    assert s.status == EXIT_OK
    assert_nothing_lost(s, written=2, flagged=1)


def test_symlink_loops(tmp_path, index, refs, human):
    data = tmp_path / "data"
    write_jsonl(data / "a" / "part.jsonl", human_records(human, 2) + [{"text": refs[23]["text"]}])
    os.symlink(data, data / "a" / "up")  # a/up -> data: a directory cycle
    os.symlink(data / "a", data / "a" / "self")  # a/self -> a
    os.symlink("self.jsonl", data / "self.jsonl")  # a file link pointing at itself
    os.symlink("ping.jsonl", data / "pong.jsonl")  # a two-link cycle
    os.symlink("pong.jsonl", data / "ping.jsonl")
    t0 = time.perf_counter()
    s = scan_process(data, index, tmp_path / "out", timeout=60)
    assert time.perf_counter() - t0 < 60
    assert s.status == EXIT_OK, s.stderr
    assert [sh["shard"] for sh in s.report["shards"]] == ["a/part.jsonl"]  # scanned once
    skipped = {(os.path.relpath(f["path"], data), f["reason"]) for f in s.totals["errors"]["skipped_files"]}
    assert skipped == {("a/up", "symlink loop"), ("a/self", "symlink loop"), ("self.jsonl", "symlink loop"),
                       ("ping.jsonl", "symlink loop"), ("pong.jsonl", "symlink loop")}
    assert_nothing_lost(s, written=3, flagged=1)


def test_fifo_and_device_are_not_read(tmp_path, index, refs, human):
    # reading either would never end: they are listed, not opened
    data = tmp_path / "data"
    write_jsonl(data / "part.jsonl", human_records(human, 2) + [{"text": refs[29]["text"]}])
    os.mkfifo(data / "pipe.jsonl")
    os.symlink("/dev/zero", data / "zero.jsonl")
    s = scan_process(data, index, tmp_path / "out", timeout=60)
    assert s.status == EXIT_OK, s.stderr
    assert [sh["shard"] for sh in s.report["shards"]] == ["part.jsonl"]
    skipped = {(os.path.relpath(f["path"], data), f["reason"]) for f in s.totals["errors"]["skipped_files"]}
    assert skipped == {("pipe.jsonl", "not a regular file"), ("zero.jsonl", "not a regular file")}
    assert_nothing_lost(s, written=3, flagged=1)


def test_output_directory_inside_the_dataset(tmp_path, index, refs, human, monkeypatch):
    data = tmp_path / "data"
    write_jsonl(data / "part.jsonl", human_records(human, 2) + [{"text": refs[24]["text"]}])
    out = data / "out"
    first = scan(data, index, out)
    assert first.status == EXIT_OK
    assert (out / "matches.parquet").exists()
    (out / "notes.jsonl").write_text(json.dumps({"text": refs[25]["text"]}) + "\n")  # not data either
    monkeypatch.chdir(tmp_path)
    for s in (scan(data, index, out), scan("data", index, "data/./out/")):  # again, and by another spelling
        assert s.status == EXIT_OK
        assert [sh["shard"] for sh in s.report["shards"]] == ["part.jsonl"]
        assert s.totals["errors"]["skipped_files"] == [{"path": str(out), "reason": "inside output directory"}]
        assert_nothing_lost(s, written=3, flagged=1)


# ---------------------------------------------------------------------------------------
# a damaged index
# ---------------------------------------------------------------------------------------


def test_index_with_a_tampered_file(tmp_path, index, human):
    bad = tmp_path / "index"
    shutil.copytree(index, bad)
    sig = bad / "signatures.npy"
    raw = bytearray(sig.read_bytes())
    raw[-5] ^= 0x01  # one bit of one signature
    sig.write_bytes(bytes(raw))
    write_jsonl(tmp_path / "data" / "a.jsonl", human_records(human, 2))
    s = scan_process(tmp_path / "data", bad, tmp_path / "out")
    assert s.status == EXIT_ERROR
    assert s.stderr.startswith(f"error: {bad}: checksum mismatch for signatures.npy")
    assert "rebuild the index" in s.stderr
    assert s.report is None


@pytest.mark.parametrize("name", ["band_tags.npy", "refs.parquet", "manifest.json"])
def test_index_with_a_missing_file(tmp_path, index, human, name):
    bad = tmp_path / "index"
    shutil.copytree(index, bad)
    (bad / name).unlink()
    write_jsonl(tmp_path / "data" / "a.jsonl", human_records(human, 2))
    s = scan(tmp_path / "data", bad, tmp_path / "out")
    assert s.status == EXIT_ERROR
    expected = (f"{bad} is not a contamscan index (no manifest.json)" if name == "manifest.json"
                else f"{bad}: missing file {name}")
    assert s.stderr.startswith(f"error: {expected}")
    assert s.report is None


@pytest.mark.parametrize("flag,value,built", [("--ngram", "3", "ngram 5"),
                                              ("--expect-threshold", "0.8", "threshold 0.5"),
                                              ("--num-perm", "256", "num_perm 128")])
def test_index_with_other_parameters_than_the_scan_asks_for(tmp_path, index, human, flag, value, built):
    write_jsonl(tmp_path / "data" / "a.jsonl", human_records(human, 2))
    s = scan(tmp_path / "data", index, tmp_path / "out", flag, value)
    assert s.status == EXIT_ERROR
    assert s.stderr.startswith(f"error: the index {index} was built with {built}, and this scan asks for {value}")
    assert f"{flag.replace('expect-', '')} {value}" in s.stderr  # how to rebuild it (index build's flag)
    assert s.report is None


def test_index_built_with_another_normalisation(tmp_path, index, human):
    """An index from a contamscan whose text handling differs would give other hashes."""
    old = tmp_path / "index"
    shutil.copytree(index, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["params"]["normalization"] = "nfkc-lower-v0"
    manifest["manifest_xxh3_128"] = manifest_self_digest(manifest)  # as that contamscan would have written it
    (old / "manifest.json").write_text(json.dumps(manifest))
    write_jsonl(tmp_path / "data" / "a.jsonl", human_records(human, 2))
    s = scan(tmp_path / "data", old, tmp_path / "out")
    assert s.status == EXIT_ERROR
    assert "built with normalization 'nfkc-lower-v0'" in s.stderr and "rebuild the index" in s.stderr
    assert s.report is None


# ---------------------------------------------------------------------------------------
# a file's bytes against its name
# ---------------------------------------------------------------------------------------


def _gzip_bytes(records) -> bytes:
    return gzip.compress(b"".join(line(r) + b"\n" for r in records))


def _zstd_bytes(records) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as z:
        z.write(b"".join(line(r) + b"\n" for r in records))
    return sink.getvalue().to_pybytes()


def _parquet_bytes(records) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("name,make,reason", [
    ("x.jsonl", _gzip_bytes, "x.jsonl: holds gzip-compressed bytes but is named .jsonl (rename it x.jsonl.gz)"),
    ("x.json", _zstd_bytes, "x.json: holds zstd-compressed bytes but is named .json (rename it x.json.zst)"),
    ("x.jsonl.gz", _zstd_bytes, "x.jsonl.gz: holds zstd-compressed bytes but is named .gz (rename it x.jsonl.zst)"),
    ("x.jsonl.zst", lambda rs: b"".join(line(r) + b"\n" for r in rs),
     "x.jsonl.zst: is named .zst but is not zstd-compressed (it does not start with 28 b5 2f fd; if it is plain text, "
     "rename it x.jsonl)"),
    ("x.jsonl", _parquet_bytes, "x.jsonl: holds a Parquet file but is named .jsonl"),
    ("x.parquet", _gzip_bytes, "x.parquet: holds gzip-compressed bytes but is named .parquet"),
    ("x.parquet", lambda rs: _parquet_bytes(rs)[:-2], "x.parquet: a Parquet file without its footer"),
    ("x.arrow", _parquet_bytes, "x.arrow: holds a Parquet file but is named .arrow"),
])
def test_bytes_that_are_not_what_the_name_says_fail_the_shard(tmp_path, index, refs, human, name, make, reason):
    """A file's first bytes (and a Parquet file's last) are checked against its extension: a
    .jsonl of gzip bytes was 'ok', its records counted as lines of invalid UTF-8."""
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(make(human_records(human, 6)))
    write_jsonl(data / "good.jsonl", human_records(human, 5) + [{"text": refs[13]["text"]}])
    s = scan(data, index, tmp_path / "out")
    assert s.status == EXIT_FAILED_SHARDS, s.stdout
    bad = s.shard(name)
    assert bad["status"] == "failed" and bad["documents"] == 0 and bad["error"].startswith(reason), bad["error"]
    assert s.shard("good.jsonl")["status"] == "ok"
    assert s.totals["errors"]["failed_shards"] == 1
    assert_nothing_lost(s, written=6, flagged=1)


# ---------------------------------------------------------------------------------------
# one JSON parser policy for both JSON paths
# ---------------------------------------------------------------------------------------


DEEP = 10_000  # levels: far past the limit of both paths (contamscan.formats.fields.MAX_JSON_DEPTH)


@pytest.mark.parametrize("neighbours", ["alone", "among normal records", "beside a malformed line"])
@pytest.mark.parametrize("batch_mb", ["0.0625", "1", "64"])
def test_a_deeply_nested_record_has_one_verdict(tmp_path, index, refs, human, neighbours, batch_mb):
    """A value nested 10,000 levels deep in a field the scan does not read: the fast (pyarrow)
    path took the record as a document, the per-line path (json.loads) as malformed_json, so
    the verdict hung on its neighbours (a malformed line sends its whole block to the second
    path) and on --batch-mb. Now it is malformed_json, whatever the batching and the
    neighbours; a record nested 500 levels deep (under the limit) is a document everywhere."""
    deep = b'{"text": "a deep record", "meta": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    fine = b'{"text": "a nested record", "meta": ' + b"[" * 500 + b"]" * 500 + b"}"
    records: list = [deep, fine]
    if neighbours != "alone":  # thousands of records around it: several blocks at the smallest batch
        records = human_records(human, 200) + [deep] + human_records(human, 200, "k") + [fine, {"text": refs[13]["text"]}]
    if neighbours == "beside a malformed line":
        records.insert(201, '{"text": "cut')
    write_jsonl(tmp_path / "data" / "d.jsonl", records)
    s = scan(tmp_path / "data", index, tmp_path / "out", "--batch-mb", batch_mb)
    sh = s.shard("d.jsonl")
    malformed = 1 + (neighbours == "beside a malformed line")
    assert sh["errors"]["by_reason"] == {"malformed_json": malformed}, sh["errors"]
    examples = {e["line"]: e["detail"] for e in sh["errors"]["examples"]}
    deep_line = 1 if neighbours == "alone" else 201
    assert "nested more than 512 levels deep" in examples[deep_line]
    assert sh["documents"] == len(records) - malformed
    assert_nothing_lost(s, written=len(records), flagged=0 if neighbours == "alone" else 1)


# ---------------------------------------------------------------------------------------
# string_view columns (what polars' to_arrow() gives)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_string_view_text_and_id_with_clean_and_flagged_outputs(tmp_path, index, refs, human, fmt):
    """Text and id columns of type string_view: the scan flags the planted copy, and the
    clean and flagged outputs split the shard in the input's schema (the split crashed the
    whole scan: pyarrow's take/filter has no kernel for string_view)."""
    texts = human[:20] + [refs[13]["text"]]
    view = pa.string_view()
    table = pa.table({"id": pa.array([f"r{i}" for i in range(len(texts))], view), "text": pa.array(texts, view)})
    data = tmp_path / "data"
    data.mkdir()
    path = data / f"v.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    s = scan(data, index, tmp_path / "out", "--id-field", "id", "--write-clean", tmp_path / "clean",
             "--write-flagged", tmp_path / "flagged")
    assert s.status == EXIT_OK, s.stdout
    assert s.shard(f"v.{fmt}")["status"] == "ok"
    assert_nothing_lost(s, written=len(texts), flagged=1)
    assert [m["doc_id"] for m in s.matches()] == [f"r{len(texts) - 1}"]

    def read(p):
        return pq.read_table(p) if fmt == "parquet" else pa.ipc.open_file(str(p)).read_all()

    clean, flagged = read(tmp_path / "clean" / f"v.{fmt}"), read(tmp_path / "flagged" / f"v.{fmt}")
    assert clean.schema.equals(read(path).schema) and flagged.schema.equals(read(path).schema)  # the input's types
    assert flagged.column("text").to_pylist() == [refs[13]["text"]]
    assert clean.column("text").to_pylist() == human[:20]
    assert clean.column("id").to_pylist() == [f"r{i}" for i in range(20)]


_READ_ARROW = _PEAK + """
import os, sys
from contamscan.formats import read_batches
from contamscan.model import Fields, Shard
path = sys.argv[1]
before = peak_kb()
n = 0
for b in read_batches(Shard(path, "big.arrow", "arrow", os.path.getsize(path)), Fields(text="text"), batch_bytes=16 << 20):
    n += b.n_records
print(n, (peak_kb() - before) // 1024)
"""


def test_a_large_arrow_file_is_read_in_bounded_memory(tmp_path):
    """Read at offsets (not mapped), only the text column: 640 MB of Arrow IPC file (half
    text, half another column) in 320 record batches add well under 200 MB to peak RSS."""
    path = tmp_path / "big.arrow"
    schema = pa.schema([("text", pa.string()), ("blob", pa.binary())])
    texts = pa.array([("lorem ipsum dolor sit amet " * 40)[:1000]] * 1000)
    blobs = pa.array([bytes(1000)] * 1000)
    with pa.ipc.new_file(str(path), schema) as w:
        for _ in range(320):
            w.write_batch(pa.record_batch([texts, blobs], schema=schema))
    p = subprocess.run([sys.executable, "-c", _READ_ARROW, str(path)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows, grown_mb = map(int, p.stdout.split())
    assert rows == 320_000
    assert grown_mb < 200, f"peak RSS grew by {grown_mb} MB reading a 640 MB Arrow file"
