"""Faults of issue 15: outputs that overlap each other or the data, damaged checkpoints."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import ESSAYS

from contamscan import scan
from contamscan.cli import cli
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError
from contamscan.index import build_index
from contamscan.io import Location
from contamscan.model import read_arrow
from contamscan.scanner import run as run_module
from contamscan.scanner.checkpoint import OutputLock


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("faults")
    refs = ai_table.slice(0, 200).select(["id", "model", "text"])
    pq.write_table(refs, root / "refs.parquet")
    index = build_index([str(root / "refs.parquet")], root / "index")
    return root, index, refs


def _data(tmp_path, refs):
    data = tmp_path / "data"
    data.mkdir()
    texts = refs["text"].to_pylist()
    # shards named as the scan's own outputs: a clean copy written into -o would clobber them
    (data / "report.json").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:3]))
    (data / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[3:6]))
    return data


@pytest.mark.parametrize("case", ["clean=out", "clean in out", "out in clean", "flagged=out", "clean in flagged",
                                  "clean=data", "clean in data", "data in flagged", "out=data", "out contains data",
                                  "glob base"])
def test_overlapping_outputs_are_refused_before_any_work(setup, tmp_path, case):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    out = tmp_path / "out"
    inputs = [str(data)]
    kw = {}
    if case == "clean=out":
        kw = {"write_clean": str(out)}
    elif case == "clean in out":
        kw = {"write_clean": str(out / "clean")}
    elif case == "out in clean":
        kw = {"write_clean": str(tmp_path / "c")}
        out = tmp_path / "c" / "out"
    elif case == "flagged=out":
        kw = {"write_flagged": str(out) + "/./"}
    elif case == "clean in flagged":
        kw = {"write_clean": str(tmp_path / "f" / "c"), "write_flagged": str(tmp_path / "f")}
    elif case == "clean=data":
        kw = {"write_clean": str(data)}
    elif case == "clean in data":
        kw = {"write_clean": str(data / "clean")}
    elif case == "data in flagged":
        kw = {"write_flagged": str(tmp_path)}
    elif case == "out=data":
        out = data
    elif case == "out contains data":
        out = tmp_path
    elif case == "glob base":
        inputs = [str(data / "*.jsonl")]
        kw = {"write_clean": str(data / "clean")}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ContamscanError) as err:
        scan(inputs, index, out, ScanOptions(workers=1, **kw))
    assert "overlap" in str(err.value) or "outside the data" in str(err.value) or "different" in str(err.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing made, nothing written


def test_separate_outputs_still_work_and_out_inside_data_is_skipped(setup, tmp_path):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    r = scan([str(data)], index, data / "out", ScanOptions(workers=1, write_clean=str(tmp_path / "clean")))
    assert sorted(s["shard"] for s in r.shards) == ["a.jsonl", "report.json"]
    assert (tmp_path / "clean" / "a.jsonl").exists()


# --------------------------------------------------------------------------- damaged checkpoints


def _interrupted(setup, tmp_path, monkeypatch):
    """A scan of three shards stopped after every shard's checkpoint, before its report."""
    root, index, refs = setup
    texts = refs["text"].to_pylist()
    data = tmp_path / "data"
    data.mkdir()
    for n in range(3):
        (data / f"p{n}.jsonl").write_text("".join(json.dumps({"id": f"{n}-{i}", "text": t}) + "\n"
                                                  for i, t in enumerate(texts[n * 4:n * 4 + 4] + texts[100:102])))
    whole = scan([str(data)], index, tmp_path / "whole", ScanOptions(workers=1))

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(run_module, "_write", killed)
        with pytest.raises(KeyboardInterrupt):
            scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1))
    state = tmp_path / "out" / ".contamscan"
    assert sorted(p.name for p in state.glob("[0-9]*")) == [f"{n:06d}.{e}" for n in range(3) for e in ("arrow", "json")]
    return data, index, whole, state


def _damage(state, how):
    j, m = state / "000001.json", state / "000001.arrow"
    if how == "empty json":
        j.write_bytes(b"")
    elif how == "not json":
        j.write_bytes(b'{"shard": "p1.jsonl", "status": "o')
    elif how == "json list":
        j.write_text("[1, 2]")
    elif how == "missing field":
        fields = json.loads(j.read_text())
        del fields["flagged_documents"]
        j.write_text(json.dumps(fields))
    elif how == "wrong type":
        fields = json.loads(j.read_text())
        fields["documents"] = "six"
        j.write_text(json.dumps(fields))
    elif how == "empty matches":
        m.write_bytes(b"")
    elif how == "garbage matches":
        m.write_bytes(b"ARROW1" + b"\x00" * 100 + b"ARROW1")
    elif how == "no matches":
        m.unlink()
    elif how == "matches of an earlier version":  # a Parquet file, where an Arrow file is read now
        pq.write_table(read_arrow(m), m.with_suffix(".parquet"))
        m.unlink()
    elif how == "damaged run.json":
        (state / "run.json").write_bytes(b"{")


@pytest.mark.parametrize("how", ["empty json", "not json", "json list", "missing field", "wrong type",
                                 "empty matches", "garbage matches", "no matches", "matches of an earlier version",
                                 "damaged run.json"])
def test_a_damaged_checkpoint_is_scanned_again(setup, tmp_path, monkeypatch, how):
    data, index, whole, state = _interrupted(setup, tmp_path, monkeypatch)
    _damage(state, how)
    finished = []
    r = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=1), resume=True,
             events=lambda name, f: finished.append(f["shard"]) if name == "shard_finished" else None)
    assert finished == (["p0.jsonl", "p1.jsonl", "p2.jsonl"] if how == "damaged run.json" else ["p1.jsonl"])
    strip = ("started_at", "finished_at")
    assert {k: v for k, v in r.data.items() if k not in strip} == {k: v for k, v in whole.data.items() if k not in strip}
    assert r.matches().equals(whole.matches())
    assert r.totals["flagged_documents"] == 18  # every text is a reference


def _edit_keeping_size_and_time(path) -> None:
    """Change the words of the first record's text, byte for byte the same length, and put the
    file's times back (as ``cp -p``, ``rsync -t`` or ``tar`` leave a replaced file)."""
    st = os.stat(path)
    data = path.read_bytes()
    head, sep, rest = data.partition(b'"text": "')
    first, nl, tail = rest.partition(b"\n")
    # letters that never follow a backslash in JSON (escapes: b f n r t u, hex digits a-f)
    shifted = first.translate(bytes.maketrans(b"gikoqsvwy", b"hjlprtwxz"))
    path.write_bytes(head + sep + shifted + nl + tail)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_resume_rescans_a_shard_edited_with_its_size_and_time_kept(setup, tmp_path, monkeypatch):
    data, index, whole, state = _interrupted(setup, tmp_path, monkeypatch)
    _edit_keeping_size_and_time(data / "p1.jsonl")
    finished = []
    r = scan([str(data)], index, tmp_path / "out", ScanOptions(workers=2), resume=True,
             events=lambda name, f: finished.append(f["shard"]) if name == "shard_finished" else None)
    assert finished == ["p1.jsonl"]  # that one, and only that one
    fresh = scan([str(data)], index, tmp_path / "fresh", ScanOptions(workers=1))
    strip = ("started_at", "finished_at")
    assert {k: v for k, v in r.data.items() if k not in strip} == {k: v for k, v in fresh.data.items() if k not in strip}
    assert r.totals["flagged_documents"] == whole.totals["flagged_documents"] - 1  # the edited copy is no copy now


def test_resume_rescans_only_the_edited_piece_of_a_parquet_shard(setup, tmp_path):
    root, index, refs = setup
    data = tmp_path / "data"
    data.mkdir()
    texts = refs["text"].to_pylist()
    essays = pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()[:400]
    table = pa.table({"text": [texts[i // 40] if i % 40 == 0 else essays[i % len(essays)] for i in range(400)]})
    pq.write_table(table, data / "big.parquet", row_group_size=100, compression="none", use_dictionary=False)
    options = ScanOptions(workers=1, piece_bytes=200_000)
    calls = []

    def stop_after_pieces(name, fields):
        if name == "shard_finished":
            calls.append(fields["row_groups"])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(run_module, "_write", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            scan([str(data)], index, tmp_path / "out", options, events=stop_after_pieces)
    assert len(calls) >= 3, calls  # it was cut into pieces
    # edit one byte of a text inside the third row group, size and time kept
    path = data / "big.parquet"
    st = os.stat(path)
    md = pq.ParquetFile(path).metadata.row_group(2).column(0)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"e", md.data_page_offset + md.total_compressed_size // 2)
    raw[at] = ord("a")
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = []
    scan([str(data)], index, tmp_path / "out", options, resume=True,
         events=lambda name, f: again.append(f["row_groups"]) if name == "shard_finished" else None)
    assert again == [c for c in calls if c[0] <= 2 <= c[1]]  # the piece holding row group 2, only


def test_final_files_and_their_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    Location.of(str(tmp_path / "a.json")).write_atomic(b"{}")
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".a.json.tmp")) and synced[1] == str(tmp_path)


# --------------------------------------------------------------------------- output I/O errors


def _cli_scan(data, index, out, *extra):
    return CliRunner().invoke(cli, ["scan", str(data), "--index", str(index.path), "-o", str(out), "--workers", "1",
                                    *extra])


def _one_line_error(res, path, cause):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and path in lines[0] and cause in lines[0], res.output
    assert "cannot read" not in res.output and "failed" not in lines[0]


@pytest.mark.parametrize("where", ["fsync", "write"])
def test_a_full_disk_is_one_line_naming_the_output(setup, tmp_path, monkeypatch, where):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    out = tmp_path / "out"
    if where == "fsync":
        def failing(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", failing)
    else:  # the report files: the table written into its temporary file fails
        real = pq.write_table

        def failing(table, where, *a, **k):
            if "report" in str(where) or "matches" in str(where) or "evidence" in str(where):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(table, where, *a, **k)
        monkeypatch.setattr(pq, "write_table", failing)
    res = _cli_scan(data, index, out)
    _one_line_error(res, str(out), "No space left on device")


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (root ignores permission bits, so chmod proves nothing)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True,
                       capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a read-only tmpfs here (no privilege); the ENOSPC tests cover the path")
    yield ro
    subprocess.run(["umount", str(ro)], check=False, capture_output=True, timeout=10)


def test_a_read_only_output_is_one_line_naming_it(setup, tmp_path, read_only_dir):
    root, index, refs = setup
    data = _data(tmp_path, refs)
    res = _cli_scan(data, index, read_only_dir / "out")
    _one_line_error(res, str(read_only_dir / "out"), "Read-only file system")
    res = _cli_scan(data, index, tmp_path / "out", "--write-clean", str(read_only_dir / "clean"))
    _one_line_error(res, str(read_only_dir / "clean"), "Read-only file system")


# --------------------------------------------------------------------------- the parent dies or is stopped


@pytest.fixture(scope="module")
def big_data(setup, tmp_path_factory):
    """24 JSON Lines shards of real human essays (about 130 MB): seconds of work for two
    workers, so a scan is surely mid-way when its first shard finishes."""
    root, index, refs = setup
    data = tmp_path_factory.mktemp("big") / "data"
    data.mkdir()
    essays = pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()
    texts = refs["text"].to_pylist()
    block = "".join(json.dumps({"text": t}) + "\n" for t in essays)
    while len(block) < 5_500_000:
        block += block
    for n in range(24):
        (data / f"part-{n:02d}.jsonl").write_text(json.dumps({"text": texts[n]}) + "\n" + block)
    return data


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended (its new parent may never reap it)


def _poll(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent_and_resume_works(setup, big_data, tmp_path, sig):
    root, index, refs = setup
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "contamscan", "--log-format", "json", "scan", str(big_data), "--index",
           str(index.path), "-o", str(out), "--workers", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers = []
    try:
        lines = []
        for line in p.stderr:  # the first finished shard: the workers are busy with the next ones
            lines.append(line)
            if '"shard_finished"' in line:
                break
        workers = _children(p.pid)
        assert len([w for w in workers if _alive(w)]) >= 2, lines
        os.kill(p.pid, sig)  # the parent only, as the OOM killer, `kill PID` or `timeout` do
        rest = []
        reader = threading.Thread(target=lambda: rest.append(p.stderr.read()), daemon=True)
        reader.start()
        reader.join(60)  # end of file: no process holds the caller's pipe any more
        assert not reader.is_alive(), "a worker still holds the caller's stderr"
        assert p.wait(60) == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM)
        assert _poll(lambda: not any(_alive(w) for w in workers), 30), [w for w in workers if _alive(w)]
        assert not (out / "report.json").exists()  # it was stopped mid-scan
        if sig == signal.SIGTERM:  # as Ctrl-C: one line, the finished shards kept
            events = [json.loads(x) for x in rest[0].splitlines() if x.startswith("{")]
            assert events[-1]["event"] == "interrupted" and events[-1]["signal"] == "SIGTERM", rest
            assert "continue with --resume" in events[-1]["message"]
            assert "Traceback" not in rest[0]
        assert list((out / ".contamscan").glob("[0-9]*.json"))  # at least the first shard's checkpoint
        r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr  # the lock was not left held
        started = [json.loads(x) for x in r.stderr.splitlines() if '"scan_started"' in x][0]
        assert started["resumed_shards"] >= 1
        assert json.loads((out / "report.json").read_text())["totals"]["flagged_documents"] == 24
    finally:
        for pid in [p.pid, *workers]:  # nothing of this test outlives it, whatever failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        p.wait(30)


def test_sigterm_stops_a_one_worker_scan_as_ctrl_c_does(setup, big_data, tmp_path):
    root, index, refs = setup
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "contamscan", "scan", str(big_data), "--index", str(index.path), "-o", str(out),
           "--workers", "1"]
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            for line in p.stderr:
                if ": ok," in line:  # a shard finished (a log line per shard: stderr is not a terminal)
                    break
            p.send_signal(sig)
            err = p.stderr.read()
            assert p.wait(60) == status, err
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == (f"interrupted ({signal.Signals(sig).name}): the finished shards are "
                                                 f"kept in {out}; continue with --resume")
        assert not (out / "report.json").exists()
        assert list((out / ".contamscan").glob("[0-9]*.json"))
        cmd = [*cmd, "--resume"] if "--resume" not in cmd else cmd


def test_a_lock_left_by_a_dead_scan_is_taken_over(tmp_path):
    # a real process takes the lock and is SIGKILLed: the next one takes the lock at once
    code = ("import sys, time; from contamscan.scanner.checkpoint import OutputLock; "
            "lock = OutputLock(sys.argv[1]); print('locked', flush=True); time.sleep(600)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(ContamscanError, match=f"another scan is writing .*pid {p.pid}"):
            OutputLock(tmp_path)
        p.kill()
        p.wait(30)
        lock = OutputLock(tmp_path)
        assert (tmp_path / ".contamscan" / "lock").read_text().strip() == f"pid {os.getpid()}"  # padded, not truncated
        lock.release()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)


def test_forked_children_do_not_hold_the_output_lock(tmp_path):
    # a scan forks a child while it holds the lock, then dies (SIGKILL): the child, still
    # alive, must not keep the directory locked (flock belongs to the open file, which a fork shares)
    code = ("import os, sys, time; from contamscan.scanner.checkpoint import OutputLock; "
            "lock = OutputLock(sys.argv[1]); child = os.fork()\n"
            "if child == 0: time.sleep(600); os._exit(0)\n"
            "print(child, flush=True); time.sleep(600)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(p.stdout.readline())
        p.kill()
        p.wait(30)
        assert _alive(child)
        OutputLock(tmp_path).release()  # taken while the child lives
    finally:
        for pid in (p.pid, child):
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- inputs that shrink while read


def _big_shard(tmp_path, refs, kind):
    """A shard of 20,000 records (~2 KB each) in many row groups / record batches."""
    texts = refs["text"].to_pylist()
    table = pa.table({"id": [str(i) for i in range(20_000)],
                      "text": [texts[i % len(texts)][:2000] + f" {i}" for i in range(20_000)]})
    data = tmp_path / "data"
    data.mkdir()
    path = data / f"big.{kind}"
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=1000)
    elif kind == "arrow":  # an Arrow IPC file: its footer lists 40 record batches
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table, max_chunksize=500)
    else:  # an Arrow IPC stream (no footer), as datasets.save_to_disk writes
        path = data / "big.ipc"
        with pa.ipc.new_stream(str(path), table.schema) as w:
            w.write_table(table, max_chunksize=500)
    return data, path


# `contamscan scan` whose reader cuts one file once the first batch of it is out (its footer,
# or first messages, read; most of it not); the forked workers inherit the hook
_TRUNCATING = """
import os, sys
from contamscan.cli import cli
from contamscan.scanner import shard
name, cut, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real = shard.read_batches

def reading(s, *a, **k):
    for i, batch in enumerate(real(s, *a, **k)):
        yield batch
        if i == 0 and os.path.basename(s.path) == name:
            os.truncate(s.path, cut)

shard.read_batches = reading
cli.main(argv)
"""


def _cut(path, kind, where) -> int:
    """Where to cut: the middle of the file, or a boundary that pyarrow reads past without an
    error (the start of a row group, the end of a message of a stream)."""
    if where == "middle":
        return os.path.getsize(path) // 2
    if kind == "parquet":
        col = pq.ParquetFile(path).metadata.row_group(10).column(0)
        return col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    if kind == "stream":
        with pa.OSFile(str(path)) as src:
            reader = pa.ipc.open_stream(src)
            for _ in range(20):
                reader.read_next_batch()
            return src.tell()
    return int(os.path.getsize(path) * 0.97)  # the file's footer is lost; batches left to read


def _scan_that_truncates(data, path, index, out, workers, cut):
    """The scan in its own process (a SIGBUS kills it, not the test); its exit code."""
    argv = ["scan", str(data), "--index", str(index.path), "-o", str(out), "--workers", str(workers), "--batch-mb", "1"]
    p = subprocess.run([sys.executable, "-c", _TRUNCATING, path.name, str(cut), *argv], capture_output=True,
                       text=True, timeout=300, cwd=out.parent)  # not the checkout: `-c` imports from the cwd
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["parquet", "arrow", "stream"])
@pytest.mark.parametrize("where", ["middle", "boundary"])
def test_a_shard_truncated_while_it_is_scanned_fails_alone(setup, tmp_path, kind, workers, where):
    """Parquet yields the rows its footer promises, an Arrow IPC file the batches its footer
    lists, a stream the bytes it had when listed, or the shard fails: the scan goes on, reports
    it failed (exit status 3), never "ok" with part of its rows, never killed by a SIGBUS."""
    root, index, refs = setup
    data, path = _big_shard(tmp_path, refs, kind)
    (data / "good.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in refs["text"].to_pylist()[:5]))
    code = _scan_that_truncates(data, path, index, tmp_path / "out", workers, _cut(path, kind, where))
    assert code == 3, f"exit code {code} (-7: SIGBUS)"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    by = {s["shard"]: s for s in report["shards"]}
    assert by["good.jsonl"]["status"] == "ok" and by["good.jsonl"]["documents"] == 5
    bad = by[path.name]
    assert bad["status"] == "failed" and bad["documents"] == 0, bad
    assert bad["error"].startswith(f"{path.name}: ") and "\n" not in bad["error"]
    assert report["totals"]["errors"]["failed_shards"] == 1 and report["totals"]["documents"] == 5
