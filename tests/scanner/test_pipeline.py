"""contamscan as a pipeline step: resume after a crash (SIGKILL), the output lock, gates,
--config, --log-format json, clean/flagged outputs. Real model outputs and human text."""

import json
import os
import signal
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.scanner.checkpoint import OutputLock
from contamscan.cli import EXIT_ERROR, EXIT_GATE, EXIT_OK, cli
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError
from contamscan.index import build_index
from contamscan import scan
from conftest import HUMAN

N_SHARDS = 10


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, ai_table):
    """An index of 100 model outputs; 10 shards (Parquet and JSON Lines) of human text with
    copies of references at different rates."""
    root = tmp_path_factory.mktemp("pipeline")
    refs = ai_table.select(["id", "model", "text"]).slice(0, 100)
    pq.write_table(refs, root / "refs.parquet")
    build_index([str(root / "refs.parquet")], root / "index")
    human = pl.read_parquet(HUMAN).select("text")["text"].to_list()[:2000]
    texts = refs["text"].to_pylist()
    data = root / "data"
    data.mkdir()
    for s in range(N_SHARDS):
        docs = [{"id": f"s{s}-h{i}", "text": t} for i, t in enumerate(human[s * 200:(s + 1) * 200])]
        docs += [{"id": f"s{s}-c{i}", "text": texts[(s * 7 + i) % 100]} for i in range(s * 3)]
        if s % 2:
            (data / f"part-{s:02d}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        else:
            pq.write_table(pa.Table.from_pylist(docs), data / f"part-{s:02d}.parquet", row_group_size=50)
    return root


def _cmd(root, out, *extra):
    return [sys.executable, "-m", "contamscan", "--log-format", "json", "scan", str(root / "data"),
            "--index", str(root / "index"), "-o", str(out), "--write-clean", str(out) + "-clean", *extra]


def _strip(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}


def _outputs(out):
    report = _strip(json.loads((out / "report.json").read_text()))
    report["index"].pop("path")
    clean = {p.relative_to(f"{out}-clean").as_posix(): p.read_bytes() if p.suffix == ".jsonl"
             else pq.read_table(p) for p in sorted(type(out)(f"{out}-clean").rglob("part-*"))}
    return report, pq.read_table(out / "matches.parquet"), clean


def _run_and_kill(cmd, after_events: int):
    """Start a scan, SIGKILL its whole process group once ``after_events`` shards finished."""
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finished = 0
    for line in p.stderr:
        if '"shard_finished"' in line:
            finished += 1
            if finished >= after_events:
                os.killpg(p.pid, signal.SIGKILL)
                break
    p.wait()
    p.stderr.close()
    return p.returncode


@pytest.mark.parametrize("kill_after,workers", [(1, "1"), (6, "2"), (N_SHARDS, "1")])
def test_resume_after_sigkill_equals_an_uninterrupted_scan(workspace, tmp_path, kill_after, workers):
    root = workspace
    full = tmp_path / "full"
    assert subprocess.run(_cmd(root, full, "--workers", "1"), capture_output=True).returncode == EXIT_OK
    out = tmp_path / "killed"
    assert _run_and_kill(_cmd(root, out, "--workers", workers), kill_after) == -signal.SIGKILL
    # nothing partial looks complete: no report, no clean shard under its final name
    assert not (out / "report.json").exists()
    clean = tmp_path / "killed-clean"
    assert all(p.name.startswith("part-") for p in clean.rglob("*") if p.is_file() and not p.name.startswith("."))
    r = subprocess.run(_cmd(root, out, "--workers", workers, "--resume"), capture_output=True, text=True)
    assert r.returncode == EXIT_OK, r.stderr
    started = [json.loads(x) for x in r.stderr.splitlines() if '"scan_started"' in x][0]
    assert started["resumed_shards"] >= min(kill_after, N_SHARDS) - 1  # finished shards are not scanned again
    want, got = _outputs(full), _outputs(out)
    assert got[0] == want[0]
    assert got[1].equals(want[1])
    assert got[2].keys() == want[2].keys() and all(
        got[2][k] == want[2][k] if isinstance(want[2][k], bytes) else got[2][k].equals(want[2][k]) for k in want[2])


def test_ctrl_c_then_resume_and_changed_inputs(workspace, tmp_path):
    root = workspace
    out = tmp_path / "out"
    seen = []

    def interrupt(name, fields):
        if name == "shard_finished":
            seen.append(fields["shard"])
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan([str(root / "data")], root / "index", out, ScanOptions(workers=1), events=interrupt)
    assert not (out / "report.json").exists()
    events = []
    report = scan([str(root / "data")], root / "index", out, ScanOptions(workers=1), resume=True,
                  events=lambda n, f: events.append((n, f)))
    assert events[0][1]["resumed_shards"] == 3
    assert [f["shard"] for n, f in events if n == "shard_finished"] == sorted(set(report.data["shards"][i]["shard"]
                                                                                    for i in range(N_SHARDS)) - set(seen))
    assert report.totals["documents"] == N_SHARDS * 200 + sum(3 * s for s in range(N_SHARDS))
    # a resumed scan must be the same scan: a changed input is refused
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        scan([str(root / "data")], root / "index", tmp_path / "out2", ScanOptions(workers=1), events=interrupt)
    shard = root / "data" / "part-09.jsonl"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    with pytest.raises(ContamscanError, match="shards changed"):
        scan([str(root / "data")], root / "index", tmp_path / "out2", ScanOptions(workers=1), resume=True)


def test_a_second_scan_into_the_same_output_fails_at_once(workspace, tmp_path):
    root = workspace
    out = tmp_path / "out"
    args = ["scan", str(root / "data"), "--index", str(root / "index"), "-o", str(out), "--workers", "1"]
    assert CliRunner().invoke(cli, args).exit_code == EXIT_OK
    before = (out / "report.json").read_bytes()
    lock = OutputLock(out)  # a scan running into `out`
    try:
        r = CliRunner().invoke(cli, args)
    finally:
        lock.release()
    assert r.exit_code == EXIT_ERROR and "another scan is writing" in r.output
    assert (out / "report.json").read_bytes() == before  # nothing touched


def test_gates_config_and_json_log(workspace, tmp_path):
    root = workspace
    config = tmp_path / "contamscan.toml"
    config.write_text(f'[scan]\nindex = "{root / "index"}"\noutput = "{tmp_path / "out"}"\nworkers = 1\n'
                      f'fail-above-shard = 0.1\nwrite-flagged = "{tmp_path / "flagged"}"\n')
    r = CliRunner().invoke(cli, ["--log-format", "json", "scan", str(root / "data"), "--config", str(config)])
    assert r.exit_code == EXIT_GATE, r.output
    lines = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
    assert [x["event"] for x in lines][:1] == ["scan_started"] and lines[-1]["event"] == "gate"
    assert sum(x["event"] == "shard_finished" for x in lines) == N_SHARDS
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    above = [s["shard"] for s in report["shards"] if s["contamination_rate"] > 0.1]
    assert lines[-1]["shards_above"] == above and above  # the shards with the most copies
    # the flagged outputs hold exactly the copies, in every shard
    flagged = sum(len(pq.read_table(p)) if p.suffix == ".parquet" else len(p.read_text().splitlines())
                  for p in (tmp_path / "flagged").rglob("part-*"))
    assert flagged == report["totals"]["flagged_documents"] == sum(3 * s for s in range(N_SHARDS))
    # the command line wins over the file; the total gate is not exceeded
    r = CliRunner().invoke(cli, ["scan", str(root / "data"), "--config", str(config), "--fail-above-shard", "0.5",
                                 "--fail-above", "0.2"])
    assert r.exit_code == EXIT_OK, r.output
    config.write_text("[scan]\nfail-abov = 0.1\n")
    r = CliRunner().invoke(cli, ["scan", str(root / "data"), "--config", str(config)])
    assert r.exit_code == 2 and "fail-abov" in r.output
