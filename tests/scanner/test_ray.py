"""The Ray executor on a real (local, loopback) Ray cluster gives the local executor's report."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'contamscan[ray]')")

RAY = Path(sys.executable).with_name("ray")
# the cluster and its drivers share a token, as on a real cluster (Ray authenticates every call)
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head node on 127.0.0.1 with 2 CPUs, as `ray start` makes for a real cluster."""
    port = _free_port()
    env = ENV
    tmp = tmp_path_factory.mktemp("ray")
    cmd = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}", "--object-store-memory=200000000"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        pytest.fail(f"ray start failed: {r.stderr[-2000:]}")
    yield f"127.0.0.1:{port}"
    subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(tmp, ignore_errors=True)


def _scan(args, *before):
    return subprocess.run([sys.executable, "-m", "contamscan", *before, "scan", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=600)


def test_ray_report_equals_local(cluster, tmp_path, ai_table):
    refs = ai_table.select(["id", "model", "text"]).slice(0, 200)
    pq.write_table(refs, tmp_path / "refs.parquet")
    data = tmp_path / "data"
    data.mkdir()
    rows = ai_table.select(["id", "text"]).slice(100, 600)  # 100 indexed, 500 not
    for i in range(6):
        pq.write_table(rows.slice(100 * i, 100), data / f"part-{i}.parquet", row_group_size=25)
    r = subprocess.run([sys.executable, "-m", "contamscan", "index", "build", str(tmp_path / "refs.parquet"), "-o",
                        str(tmp_path / "index")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    local = _scan([data, "--index", tmp_path / "index", "-o", tmp_path / "local", "--workers", "2"])
    assert local.returncode == 0, local.stderr
    remote = _scan([data, "--index", tmp_path / "index", "-o", tmp_path / "ray", "--executor", "ray",
                    "--ray-address", cluster, "--write-clean", tmp_path / "clean"])
    assert remote.returncode == 0, remote.stderr
    # large shards as pieces of row groups, each a Ray task
    pieces = _scan([data, "--index", tmp_path / "index", "-o", tmp_path / "pieces", "--executor", "ray",
                    "--ray-address", cluster, "--piece-mb", "0.05"], "--log-format", "json")
    assert pieces.returncode == 0, pieces.stderr
    assert sum('"row_groups"' in line for line in pieces.stderr.splitlines()) > 6
    strip = lambda d: {k: v for k, v in d.items() if k not in ("started_at", "finished_at")}
    a = json.loads((tmp_path / "local" / "report.json").read_text())
    b = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert strip(a) == strip(b) == strip(json.loads((tmp_path / "pieces" / "report.json").read_text()))
    for run in ("ray", "pieces"):
        assert pq.read_table(tmp_path / "local" / "matches.parquet").equals(pq.read_table(tmp_path / run / "matches.parquet"))
    # the 100 indexed outputs are flagged whole; another model's output can only share a passage
    whole = pq.read_table(tmp_path / "ray" / "matches.parquet").filter(pc.equal(pc.field("kind"), "whole"))
    assert len(set(whole.column("doc_id").to_pylist())) == 100
    flagged = b["totals"]["flagged_documents"]
    assert flagged >= 100
    clean = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "clean").glob("*.parquet"))
    assert clean == 600 - flagged
