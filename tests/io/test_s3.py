"""Remote paths (contamscan.storage): datasets, indexes and outputs on S3, against moto's
S3 server started by the test on 127.0.0.1 (no traffic beyond loopback). Real model outputs
and human text; every remote result is compared with the same scan of the same files on disk."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contamscan.io import OutputDir, cache, location as storage
from contamscan.scanner.checkpoint import OutputLock
from contamscan.cli import EXIT_ERROR, EXIT_FAILED_SHARDS, EXIT_OK, cli
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError, IndexFormatError
from contamscan.index import add_to_index, build_index, merge_indexes, open_index
from contamscan.discover import discover
from contamscan import scan
from conftest import HUMAN

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')")

BUCKET = "contamscan-test"


class S3:
    """The server's address and URIs on it (every URI carries the loopback endpoint)."""

    def __init__(self, port: int):
        self.port = port
        self.query = f"?endpoint_override=127.0.0.1:{port}&scheme=http"
        self.fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}{self.query}")

    def uri(self, path: str = "", bucket: str = BUCKET) -> str:
        return f"s3://{bucket}/{path}{self.query}"

    def put(self, local: Path, key: str) -> None:
        """Upload a file or a directory with pyarrow itself (not with contamscan.storage)."""
        if Path(local).is_dir():
            pafs.copy_files(str(local), f"{BUCKET}/{key}", destination_filesystem=self.fs)
        else:
            with self.fs.open_output_stream(f"{BUCKET}/{key}", compression=None) as out:  # no compression by name
                out.write(Path(local).read_bytes())

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{BUCKET}/{key}", compression=None) as f:
            return f.read()

    def keys(self, prefix: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True))
        return sorted(i.path[len(BUCKET) + len(prefix) + 2:] for i in infos if i.type == pafs.FileType.File)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (a free port), dummy credentials, no metadata service,
    and a cache directory of the test's own."""
    tmp = tmp_path_factory.mktemp("s3env")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                     "AWS_CONFIG_FILE": str(tmp / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-creds"),
                     "XDG_CACHE_HOME": str(tmp / "cache")}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")  # any AWS client here talks to it, never AWS
        try:
            fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}?endpoint_override=127.0.0.1:{port}&scheme=http"
                                             "&allow_bucket_creation=true")
            fs.create_dir(BUCKET)
            yield S3(port)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory, ai_table, s3):
    """On disk and at s3://BUCKET/: references (Parquet and JSON Lines, 100 model outputs) and
    a dataset of human text with copies at different rates, as Parquet, JSON Lines, gzipped
    JSON Lines and Arrow, in two directories, with files that are not shards."""
    root = tmp_path_factory.mktemp("remote-data")
    refs = ai_table.select(["id", "model", "text"]).slice(0, 100)
    (root / "refs").mkdir()
    pq.write_table(refs.slice(0, 60), root / "refs" / "a.parquet")
    (root / "refs" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refs.slice(60).to_pylist()))
    human = pl.read_parquet(HUMAN).select("text")["text"].to_list()[:1200]
    texts = refs["text"].to_pylist()
    d = root / "data"
    (d / "sub").mkdir(parents=True)
    for s in range(6):
        docs = [{"id": f"s{s}-h{i}", "text": t} for i, t in enumerate(human[s * 200:(s + 1) * 200])]
        docs += [{"id": f"s{s}-c{i}", "text": texts[(s * 7 + i) % 100]} for i in range(s * 3)]
        lines = "".join(json.dumps(x) + "\n" for x in docs)
        name = ["part-00.parquet", "part-01.jsonl", "part-02.jsonl.gz", "sub/part-03.parquet", "sub/part-04.arrow",
                "sub/part-05.jsonl"][s]
        if name.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(docs), d / name, row_group_size=50)
        elif name.endswith(".arrow"):
            with pa.ipc.new_file(str(d / name), pa.schema([("id", pa.string()), ("text", pa.string())])) as w:
                w.write_table(pa.Table.from_pylist(docs))
        elif name.endswith(".gz"):
            (d / name).write_bytes(gzip.compress(lines.encode()))
        else:
            (d / name).write_text(lines)
    (d / "notes.txt").write_text("not a shard\n")
    (d / "_SUCCESS").write_text("")
    (d / "sub" / ".hidden.parquet").write_bytes(b"ignored")
    s3.put(root / "refs", "refs")
    s3.put(d, "data")
    return root


def _strip(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}
    out["index"] = {k: v for k, v in out["index"].items() if k != "path"}
    out["totals"] = {**out["totals"], "errors": {k: v for k, v in out["totals"]["errors"].items()
                                                 if k != "skipped_files"}}
    return out


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "contamscan", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def local_scan(data, tmp_path_factory):
    """The reference: the same index and scan from the files on disk."""
    out = tmp_path_factory.mktemp("local-scan")
    build_index([str(data / "refs")], out / "refs.index")
    r = _run("scan", data / "data", "--index", out / "refs.index", "-o", out / "run", "--write-clean",
             out / "clean", "--workers", "2")
    assert r.returncode == EXIT_OK, r.stderr
    return out


# ------------------------------------------------------------------------------- storage


def test_uris(s3):
    assert storage.is_remote("s3://b/x") and storage.is_remote("gs://b") and storage.is_remote("HDFS://h:1/x")
    assert not storage.is_remote("file:///tmp/x") and not storage.is_remote("/tmp/x")
    assert not storage.is_remote(Path("s3://b/x")) and not storage.is_remote("s3:/b/x")
    assert storage.localize("file:///tmp/a%20b") == "/tmp/a b" and storage.localize("x/y") == "x/y"
    secret = "s3://AKIA:s3cr3t@bkt/a%20b/c.parquet?endpoint_override=127.0.0.1:9&secret_key=s3cr3t&region=x"
    assert storage.display(secret) == "s3://bkt/a b/c.parquet"
    assert "s3cr3t" not in storage.key(secret) and "region=x" in storage.key(secret)
    assert storage.key("s3://bkt/a/?region=x") == storage.key("s3://bkt/a?region=x")
    assert storage.join("s3://bkt/a?q=1", "b c/d.json") == "s3://bkt/a/b%20c/d.json?q=1"
    assert storage.basename("s3://bkt/a/part.jsonl.gz?q=1") == "part.jsonl.gz"
    with pytest.raises(ContamscanError) as err:  # pyarrow quotes the URI it cannot parse: not its secrets
        storage.resolve("s3://bad bucket/x?secret_key=s3cr3t&endpoint_override=127.0.0.1:1&scheme=http")
    assert "s3cr3t" not in str(err.value) and str(err.value).startswith("s3://bad bucket: cannot open")
    # a key with a space and a percent sign round-trips through the URIs contamscan makes
    storage.write_bytes(s3.uri("odd/a b/x%y.jsonl"), b'{"text": "hi"}\n')
    (f,) = storage.list_files(s3.uri("odd"))
    assert f.rel == "a b/x%y.jsonl" and storage.read_bytes(f.uri) == b'{"text": "hi"}\n'
    storage.delete(f.uri)
    storage.delete(f.uri)  # missing: fine
    assert not storage.exists(f.uri)


def test_discovery_and_globs_follow_the_local_rules(data, s3):
    local, local_skipped = discover([str(data / "data")])
    remote, remote_skipped = discover([s3.uri("data")])
    assert [(s.relpath, s.format, s.size) for s in remote] == [(s.relpath, s.format, s.size) for s in local]
    assert all(s.path.startswith(f"s3://{BUCKET}/data/") and s.path.endswith(s3.query) for s in remote)
    assert all(s.mtime_ns for s in remote)
    assert [s.reason for s in remote_skipped] == [s.reason for s in local_skipped] == ["unknown extension"]
    assert remote_skipped[0].path == f"s3://{BUCKET}/data/notes.txt"  # no query string in what people see
    for pattern in ("*.parquet", "**/*.parquet", "*/part-0[34]*", "**", "sub/*.arrow"):
        want = [s.relpath for s in discover([str(data / "data" / pattern)])[0]]
        assert [s.relpath for s in discover([s3.uri(f"data/{pattern}")])[0]] == want, pattern
    assert discover([f"file://{data / 'data'}"]) == (local, local_skipped)  # file:// is a local path
    (one,) = discover([s3.uri("data/sub/part-04.arrow")])[0]
    assert one.relpath == "part-04.arrow" and one.format == "arrow"
    # outputs inside the dataset are never scanned
    shards, skipped = discover([s3.uri("data")], exclude=[s3.uri("data/sub")])
    assert [s.relpath for s in shards] == ["part-00.parquet", "part-01.jsonl", "part-02.jsonl.gz"]
    assert {"path": f"s3://{BUCKET}/data/sub", "reason": "inside output directory"} in \
        [{"path": s.path, "reason": s.reason} for s in skipped]
    with pytest.raises(ContamscanError, match=f"no files match the pattern 's3://{BUCKET}/data/\\*.json'"):
        discover([s3.uri("data/*.json")])


# ------------------------------------------------------------------------------- the whole pipeline


def test_index_build_and_scan_on_s3_equal_the_local_ones(data, s3, local_scan):
    r = _run("index", "build", s3.uri("refs/"), "-o", s3.uri("refs.index"))
    assert r.returncode == EXIT_OK, r.stderr
    assert f"index      s3://{BUCKET}/refs.index\n" in r.stdout and "endpoint_override" not in r.stdout
    assert "manifest.json" in s3.keys("refs.index") and len(s3.keys("refs.index")) >= 9
    r = _run("scan", s3.uri("data"), "--index", s3.uri("refs.index"), "-o", s3.uri("run"), "--write-clean",
             s3.uri("clean"), "--workers", "2")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"report: s3://{BUCKET}/run/report.html" in r.stdout
    assert s3.keys("run") == ["evidence.parquet", "matches.parquet", "report.html", "report.json", "report.md"]
    got, want = json.loads(s3.get("run/report.json")), json.loads((local_scan / "run" / "report.json").read_text())
    assert _strip(got) == _strip(want)
    assert got["index"]["path"] == f"s3://{BUCKET}/refs.index"
    assert got["totals"]["errors"]["skipped_files"] == [{"path": f"s3://{BUCKET}/data/notes.txt",
                                                         "reason": "unknown extension"}]
    assert got["totals"]["flagged_documents"] == sum(3 * s for s in range(6)) and got["totals"]["shards"] == 6
    for name in ("report.json", "report.md", "report.html"):  # the endpoint never leaks into a report
        assert b"endpoint_override" not in s3.get(f"run/{name}")
    assert pq.read_table(pa.BufferReader(s3.get("run/matches.parquet"))).equals(
        pq.read_table(local_scan / "run" / "matches.parquet"))
    # clean shards at the same relative paths, the same bytes as the local scan writes
    local_clean = sorted(p.relative_to(local_scan / "clean").as_posix()
                         for p in (local_scan / "clean").rglob("*") if p.is_file())
    assert s3.keys("clean") == local_clean == [s["shard"] for s in want["shards"]]
    for rel in local_clean:
        assert s3.get(f"clean/{rel}") == (local_scan / "clean" / rel).read_bytes(), rel
    assert pq.read_metadata(pa.BufferReader(s3.get("clean/part-00.parquet"))).num_rows == 200
    # nothing left behind on this machine: no staged outputs, no checkpoints, no temporaries
    staging = OutputDir(s3.uri("run")).work
    assert sorted(p.name for p in staging.rglob("*") if p.is_file()) == ["URI", "lock"]


def test_remote_index_is_cached_and_checked(data, s3, local_scan, monkeypatch):
    uri = s3.uri("cached.index")
    built = build_index([s3.uri("refs")], uri)
    assert built.location.path == uri and built.summary().path == f"s3://{BUCKET}/cached.index"
    assert built.path.parent == cache.cache_root() / "indexes"
    # the builder's own copy is the cache: opening it again downloads nothing
    calls = []
    real = cache.download
    monkeypatch.setattr(cache, "download", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = open_index(uri)
    assert again.path == built.path and calls == []
    # a fresh machine (an empty cache) downloads it once, verifying every file
    shutil.rmtree(built.path)
    fetched = open_index(uri)
    assert len(calls) == len(fetched.manifest["files"]) and len(fetched) == 100
    assert open_index(uri).path == fetched.path and len(calls) == len(fetched.manifest["files"])
    local = open_index(local_scan / "refs.index")
    assert (fetched.path / "signatures.npy").read_bytes() == (local.path / "signatures.npy").read_bytes()
    # a file changed on the store after the manifest: the download is refused
    shutil.rmtree(fetched.path)
    s3.put(local_scan / "refs.index" / "band_dir.npy", "cached.index/signatures.npy")
    with pytest.raises(IndexFormatError, match=f"s3://{BUCKET}/cached.index/signatures.npy: read .* bytes, expected"):
        open_index(uri)
    assert not any(p.name.startswith(fetched.path.name) or p.name.startswith(f".{fetched.path.name}.") and
                   p.is_dir() for p in fetched.path.parent.iterdir())  # nothing half-downloaded left
    with pytest.raises(IndexFormatError, match=f"s3://{BUCKET}/nothing.index is not a contamscan index"):
        open_index(s3.uri("nothing.index"))


def test_index_add_and_merge_on_s3(data, s3, ai_table, tmp_path):
    a, b = s3.uri("merge/a.index"), s3.uri("merge/b.index")
    build_index([s3.uri("refs/a.parquet")], a)
    build_index([s3.uri("refs/b.jsonl")], b)
    merged = merge_indexes([a, b], s3.uri("merge/ab.index"))
    whole = open_index(s3.uri("refs.index")) if "manifest.json" in s3.keys("refs.index") else \
        build_index([s3.uri("refs")], s3.uri("refs.index"))
    assert len(merged) == 100 and merged.refs.equals(whole.refs)
    assert (merged.signatures == whole.signatures).all()
    with pytest.raises(ContamscanError, match="is one of the indexes being merged"):
        merge_indexes([a, b], a)
    more = tmp_path / "more.parquet"
    pq.write_table(ai_table.select(["id", "model", "text"]).slice(100, 20), more)
    added = add_to_index(a, [str(more)])
    assert len(added) == 80 and len(open_index(a)) == 80 and added.location.path == a


def test_corrupt_remote_shard_fails_alone(data, s3, local_scan):
    s3.put(data / "data" / "part-00.parquet", "corrupt/good.parquet")
    s3.fs.open_output_stream(f"{BUCKET}/corrupt/bad.parquet", compression=None).close()  # empty: not Parquet
    good = (data / "data" / "part-00.parquet").read_bytes()
    with s3.fs.open_output_stream(f"{BUCKET}/corrupt/cut.parquet", compression=None) as f:
        f.write(good[: len(good) // 2])
    with s3.fs.open_output_stream(f"{BUCKET}/corrupt/cut.jsonl.gz", compression=None) as f:
        f.write((data / "data" / "part-02.jsonl.gz").read_bytes()[:3000])
    r = _run("scan", s3.uri("corrupt"), "--index", local_scan / "refs.index", "-o", s3.uri("corrupt-run"),
             "--write-clean", s3.uri("corrupt-clean"), "--workers", "1")
    assert r.returncode == EXIT_FAILED_SHARDS, r.stderr
    report = json.loads(s3.get("corrupt-run/report.json"))
    status = {s["shard"]: s["status"] for s in report["shards"]}
    assert status == {"bad.parquet": "failed", "cut.jsonl.gz": "failed", "cut.parquet": "failed", "good.parquet": "ok"}
    assert all("endpoint_override" not in (s["error"] or "") for s in report["shards"])
    assert s3.keys("corrupt-clean") == ["good.parquet"]  # no output of a failed shard


def test_missing_bucket_or_key_is_a_clear_error(data, s3, local_scan):
    index = local_scan / "refs.index"
    for args, message in (
        (["scan", s3.uri("data", bucket="no-such-bucket"), "--index", index, "-o", local_scan / "x"],
         "input does not exist: s3://no-such-bucket/data"),
        (["scan", s3.uri("data/missing.parquet"), "--index", index, "-o", local_scan / "x"],
         f"input does not exist: s3://{BUCKET}/data/missing.parquet"),
        (["scan", data / "data", "--index", s3.uri("missing.index"), "-o", local_scan / "x"],
         f"s3://{BUCKET}/missing.index is not a contamscan index (no manifest.json)"),
        (["scan", data / "data", "--index", index, "-o", s3.uri("run", bucket="no-such-bucket")],
         "s3://no-such-bucket does not exist (no such bucket?)"),
        (["scan", data / "data", "--index", index, "-o", local_scan / "x", "--write-clean",
          s3.uri("c", bucket="no-such-bucket")], "s3://no-such-bucket does not exist"),
        (["index", "build", data / "refs", "-o", s3.uri("i", bucket="no-such-bucket")],
         "s3://no-such-bucket does not exist"),
        (["index", "info", s3.uri("missing.index")], "is not a contamscan index"),
        (["scan", "nosuchscheme://x/y", "--index", index, "-o", local_scan / "x"], "unknown scheme 'nosuchscheme'"),
        (["scan", s3.uri("data"), "--index", index, "-o", local_scan / "x", "--text-field", "body"],
         "field 'body' not found in part-00.parquet; fields present: id, text"),  # the first shard's, in order
    ):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == EXIT_ERROR, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, (args, r.output)
        assert "endpoint_override" not in r.output
    assert not (local_scan / "x").exists()


def test_resume_into_a_remote_output(data, s3, local_scan):
    out = s3.uri("resumed")
    full = scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1))
    assert full.matches().equals(pq.read_table(local_scan / "run" / "matches.parquet"))
    seen = []

    def interrupt(name, fields):
        if name == "shard_finished":
            seen.append(fields["shard"])
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), events=interrupt)
    assert s3.keys("resumed") == []  # the previous report went when the scan started; no partial one
    # a second scan into the same output, while one runs, fails at once (a lock of this machine)
    lock = OutputLock(OutputDir(out).work)
    try:
        with pytest.raises(ContamscanError, match=f"another scan is writing to s3://{BUCKET}/resumed "):
            scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), resume=True)
    finally:
        lock.release()
    events = []
    report = scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=2), resume=True,
                  events=lambda n, f: events.append((n, f)))
    assert events[0][1]["resumed_shards"] == 2 and events[0][1]["out"] == f"s3://{BUCKET}/resumed"
    assert sorted(f["shard"] for n, f in events if n == "shard_finished") == \
        sorted(set(s["shard"] for s in report.shards) - set(seen))  # only the shards not finished before
    assert _strip(report.data) == _strip(full.data) == _strip(json.loads(s3.get("resumed/report.json")))
    assert report.out == out and report.matches().equals(full.matches())
    # a changed remote shard is a changed input: resuming is refused
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), events=interrupt)
    s3.put(data / "data" / "part-01.jsonl", "data/part-01.jsonl")  # the same bytes, a new object
    with pytest.raises(ContamscanError, match=f"cannot resume the scan in s3://{BUCKET}/resumed: its shards changed"):
        scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), resume=True)


def test_report_command_reads_and_rewrites_remote_outputs(data, s3, local_scan):
    if "report.json" not in s3.keys("run"):
        test_index_build_and_scan_on_s3_equal_the_local_ones(data, s3, local_scan)
    html = s3.get("run/report.html")
    s3.fs.delete_file(f"{BUCKET}/run/report.html")
    r = CliRunner().invoke(cli, ["report", s3.uri("run")])
    assert r.exit_code == EXIT_OK, r.output
    assert s3.get("run/report.html") == html
    r = CliRunner().invoke(cli, ["report", "--compare", str(local_scan / "run"), s3.uri("run")])
    assert r.exit_code == EXIT_OK, r.output
    assert "endpoint_override" not in r.output and f"s3://{BUCKET}/run" in r.output


def test_profile_on_s3(data, s3, tmp_path):
    from contamscan.style import build_profile, open_profile

    human = tmp_path / "human.parquet"
    pq.write_table(pl.read_parquet(HUMAN).select(["id", "source", "text"]).head(600).to_arrow(), human)
    built = build_profile([str(human)], [s3.uri("refs")], s3.uri("style.profile"))
    assert str(built.path) == f"s3://{BUCKET}/style.profile" and "manifest.json" in s3.keys("style.profile")
    shutil.rmtree(cache.cache_root() / "profiles")
    opened = open_profile(s3.uri("style.profile"))
    assert opened.words == built.words and (opened.counts == built.counts).all()


def test_fsspec_scheme(data, tmp_path):
    """A scheme pyarrow does not know goes through fsspec (here its in-memory file system)."""
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for p in sorted((data / "data").rglob("part-0[01]*")):
        mem.pipe(f"/mem-data/{p.relative_to(data / 'data').as_posix()}", p.read_bytes())
    shards, _ = discover(["memory://mem-data"])
    assert [s.relpath for s in shards] == ["part-00.parquet", "part-01.jsonl"]
    index = build_index([str(data / "refs")], tmp_path / "index")
    report = scan(["memory://mem-data"], index, "memory://mem-out",
                  ScanOptions(workers=1, write_clean="memory://mem-clean"))
    assert report.totals["documents"] == 403 and report.totals["flagged_documents"] == 3
    assert json.loads(mem.cat("/mem-out/report.json"))["totals"] == report.totals
    assert sorted(mem.find("/mem-clean")) == ["/mem-clean/part-00.parquet", "/mem-clean/part-01.jsonl"]


def test_ray_executor_with_remote_index_dataset_and_output(data, s3, local_scan):
    pytest.importorskip("ray", reason="the Ray extra is not installed")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env["XDG_CACHE_HOME"] = str(local_scan / "ray-cache")  # a node with an empty cache: it downloads the index
    if "manifest.json" not in s3.keys("refs.index"):
        build_index([s3.uri("refs")], s3.uri("refs.index"))
    r = _run("scan", s3.uri("data"), "--index", s3.uri("refs.index"), "-o", s3.uri("ray-run"), "--executor", "ray",
             "--workers", "2", "--write-clean", s3.uri("ray-clean"), env=env)
    assert r.returncode == EXIT_OK, r.stderr
    got = json.loads(s3.get("ray-run/report.json"))
    assert _strip(got) == _strip(json.loads((local_scan / "run" / "report.json").read_text()))
    assert s3.keys("ray-clean") == [s["shard"] for s in got["shards"]]
    cached = (local_scan / "ray-cache" / "contamscan" / "indexes").iterdir()
    assert len([p for p in cached if p.is_dir() and not p.name.startswith(".")]) == 1  # downloaded once


def test_large_remote_parquet_shards_are_scanned_in_pieces(data, s3, local_scan):
    """Pieces of row groups (--piece-mb) read the remote file's metadata and row groups alone."""
    events = []
    report = scan([s3.uri("data")], local_scan / "refs.index", None, ScanOptions(workers=2, piece_bytes=30_000),
                  events=lambda n, f: events.append(f) if n == "shard_finished" else None)
    assert sum("row_groups" in f for f in events) > 4
    assert _strip(report.data) == _strip(json.loads((local_scan / "run" / "report.json").read_text()))
