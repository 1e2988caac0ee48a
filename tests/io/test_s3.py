"""What only a remote root has (an S3 bucket on moto's server on 127.0.0.1, conftest's ``s3``
fixture): URIs with options and credentials, local copies of remote indexes and profiles in
the cache (reused, verified), outputs staged on this machine, resuming into a remote output,
missing buckets and keys, Ray tasks that open the same URIs. What every kind of path does
alike (local, file://, S3) is tested once per kind in test_location.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from _locations import BUCKET, OUTPUTS, run_cli, strip
from click.testing import CliRunner
from conftest import HUMAN

from contamscan import scan
from contamscan.cli import EXIT_ERROR, EXIT_OK, cli
from contamscan.config import ScanOptions
from contamscan.errors import ContamscanError, IndexFormatError
from contamscan.index import build_index, open_index
from contamscan.io import OutputDir, cache
from contamscan.io import location as storage
from contamscan.scanner.checkpoint import OutputLock
from contamscan.style import build_profile, open_profile


@pytest.fixture(scope="module")
def data(io_data, s3):
    """The I/O tests' references and dataset (conftest's ``io_data``), on disk and at s3://BUCKET/."""
    s3.put(io_data / "refs", "refs")
    s3.put(io_data / "data", "data")
    return io_data


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


# ------------------------------------------------------------------------------- the whole pipeline


def test_outputs_are_staged_here_and_uploaded_whole(data, s3, local_scan):
    """A remote output is written in a local staging directory and uploaded when complete: none
    of the scan's state goes to the store, and none of the outputs stays on this machine."""
    out = s3.uri("run")
    report = scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=2, write_clean=s3.uri("clean")))
    assert s3.keys("run") == OUTPUTS  # no .contamscan/ state uploaded, no temporaries
    assert strip(json.loads(s3.get("run/report.json"))) == strip(report.data)
    assert s3.keys("clean") == [s["shard"] for s in report.shards]
    # nothing left behind on this machine: no staged outputs, no checkpoints, no temporaries
    staging = OutputDir(out).work
    assert staging.parent == cache.cache_root() / "runs"
    assert sorted(p.name for p in staging.rglob("*") if p.is_file()) == ["URI", "lock"]
    assert (staging / "URI").read_text() == f"s3://{BUCKET}/run\n"  # which output it stages: never its query


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
    assert strip(report.data) == strip(full.data) == strip(json.loads(s3.get("resumed/report.json")))
    assert report.out == out and report.matches().equals(full.matches())
    # a changed remote shard is a changed input: resuming is refused
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), events=interrupt)
    s3.put(data / "data" / "part-01.jsonl", "data/part-01.jsonl")  # the same bytes, a new object
    with pytest.raises(ContamscanError, match=f"cannot resume the scan in s3://{BUCKET}/resumed: its shards changed"):
        scan([s3.uri("data")], local_scan / "refs.index", out, ScanOptions(workers=1), resume=True)


def test_remote_profile_is_fetched_into_an_empty_cache(data, s3, tmp_path):
    human = tmp_path / "human.parquet"
    pq.write_table(pl.read_parquet(HUMAN).select(["id", "source", "text"]).head(600).to_arrow(), human)
    built = build_profile([str(human)], [s3.uri("refs")], s3.uri("style.profile"))
    assert str(built.path) == f"s3://{BUCKET}/style.profile" and "manifest.json" in s3.keys("style.profile")
    shutil.rmtree(cache.cache_root() / "profiles")  # a fresh machine: it downloads the profile
    opened = open_profile(s3.uri("style.profile"))
    assert opened.words == built.words and (opened.counts == built.counts).all()
    assert len([p for p in (cache.cache_root() / "profiles").iterdir() if not p.name.startswith(".")]) == 1


def test_ray_executor_with_remote_index_dataset_and_output(data, s3, local_scan, tmp_path):
    pytest.importorskip("ray", reason="the Ray extra is not installed")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "ray-cache")  # a node with an empty cache: it downloads the index
    build_index([s3.uri("refs")], s3.uri("refs.index"))
    r = run_cli("scan", s3.uri("data"), "--index", s3.uri("refs.index"), "-o", s3.uri("ray-run"), "--executor", "ray",
                "--workers", "2", "--write-clean", s3.uri("ray-clean"), env=env)
    assert r.returncode == EXIT_OK, r.stderr
    got = json.loads(s3.get("ray-run/report.json"))
    assert strip(got) == strip(json.loads((local_scan / "run" / "report.json").read_text()))
    assert s3.keys("ray-clean") == [s["shard"] for s in got["shards"]]
    cached = (tmp_path / "ray-cache" / "contamscan" / "indexes").iterdir()
    assert len([p for p in cached if p.is_dir() and not p.name.startswith(".")]) == 1  # downloaded once
