"""Every path contamscan reads or writes goes through one object, contamscan.io.Location:
each test here runs once per kind of root (conftest's ``location``: a local directory, the
same as a file:// URI, an S3 prefix on moto's server on 127.0.0.1) and checks that the kind
makes no difference. Real model outputs and human text; what a scan finds at a location is
compared with the same scan of the same files on disk (conftest's ``local_scan``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _locations import FLAGGED, OUTPUTS, run_cli, strip
from click.testing import CliRunner
from conftest import HUMAN

from contamscan import compare_reports, read_report, scan
from contamscan.cli import EXIT_FAILED_SHARDS, EXIT_OK, cli
from contamscan.config import ScanOptions
from contamscan.discover import discover
from contamscan.errors import ContamscanError, StorageError
from contamscan.index import add_to_index, build_index, merge_indexes, open_index
from contamscan.io import Location
from contamscan.style import build_profile, open_profile

ODD = "a b/x%y.jsonl"  # a space and a percent sign: encoded in URIs, shown decoded


# ------------------------------------------------------------------------------- Location


def test_names(location):
    root = Location.of(location.uri())
    assert root.remote == location.remote  # file:// is a local path
    assert root.path == location.path() and root.shown == location.shown() and str(root) == location.shown()
    f = root.join("a b", "x%y.jsonl")
    assert f == root.join(ODD) == Location.of(location.uri(ODD))
    assert f.path == location.path(ODD) and f.shown == location.shown(ODD)
    assert f.name == "x%y.jsonl" and f.relative_to(root) == ODD
    assert f.within(root) and root.within(root) and not root.within(f)
    assert not f.has_magic() and Location.of(location.uri("a b/*.jsonl")).has_magic()
    assert Location.of(location.uri("a b/")).key == Location.of(location.uri("a b")).key
    assert "endpoint_override" not in f.shown


def test_write_read_and_delete(location):
    root = Location.of(location.uri())
    f = root.join(ODD)
    assert not f.exists() and f.info().type == "missing"
    with pytest.raises(StorageError) as err:
        f.read_bytes()
    assert str(err.value).startswith(f"{location.shown(ODD)}: ")  # the path as people see it
    f.write_atomic(b'{"text": "hi"}\n')
    assert location.get(ODD) == b'{"text": "hi"}\n'  # read back without contamscan
    info = f.info()
    assert info.type == "file" and info.size == 15 and info.mtime_ns
    assert f.exists() and not f.is_dir() and root.join("a b").is_dir()
    assert f.read_bytes() == b'{"text": "hi"}\n' and f.stat_file().size == 15
    with f.open_stream() as stream:
        assert stream.read() == b'{"text": "hi"}\n'
    with f.open_random() as random_access:
        random_access.seek(10)
        assert random_access.read(2) == b"hi"
    f.write_atomic(b"replaced")
    assert f.read_bytes() == location.get(ODD) == b"replaced"
    assert location.keys() == [ODD]  # nothing beside it: no temporary
    f.delete()
    f.delete()  # missing: fine
    assert not f.exists() and location.keys() == []
    with pytest.raises(StorageError, match=re.escape(f"{location.shown(ODD)}: no such file")):
        f.delete(missing_ok=False)


@pytest.mark.parametrize("hidden", [False, True])
def test_writing_commits_whole_files_or_nothing(location, hidden):
    root = Location.of(location.uri())
    g = root.join("sub", "g.bin")
    with g.writing(hidden=hidden) as tmp:
        Path(tmp).write_bytes(b"whole")
        assert not g.exists()  # not there before the commit
    assert location.get("sub/g.bin") == b"whole" and not os.path.exists(tmp)
    h = root.join("sub", "h.bin")
    with pytest.raises(RuntimeError):
        with h.writing(hidden=hidden) as tmp:
            Path(tmp).write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert not h.exists() and not os.path.exists(tmp)
    # committed by hand, or discarded
    pending = h.writing(hidden=hidden)
    Path(pending.__enter__()).write_bytes(b"by hand")
    pending.commit()
    pending.discard()
    other = root.join("sub", "i.bin").writing(hidden=hidden)
    Path(other.__enter__()).write_bytes(b"dropped")
    other.discard()
    assert location.keys() == ["sub/g.bin", "sub/h.bin"] and location.get("sub/h.bin") == b"by hand"
    table = pa.table({"id": ["a", "b"], "text": ["x", "y"]})
    root.join("t.parquet").write_table_atomic(table)
    root.join("u.parquet").write_table_atomic(iter([table, table]), table.schema)
    assert pq.read_table(pa.BufferReader(location.get("t.parquet"))).equals(table)
    assert pq.read_table(pa.BufferReader(location.get("u.parquet"))).num_rows == 4
    assert location.keys() == ["sub/g.bin", "sub/h.bin", "t.parquet", "u.parquet"]


@pytest.fixture
def tree(location, tmp_path):
    """At the location: tree/ with files in subdirectories, hidden names and a marker file."""
    files = {"a.jsonl": b"1", "b/c.parquet": b"22", "b/d/e.arrow": b"333", "b/.hidden": b"4", ".git/x": b"5",
             "_SUCCESS": b"", "z b/\u00fc.jsonl": b"666666"}
    for rel, data in files.items():
        (tmp_path / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / rel).write_bytes(data)
    location.put(tmp_path / "tree", "tree")
    return Location.of(location.uri("tree"))


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "_SUCCESS"


def test_walk_leaves_out_ignored_names_and_excluded_directories(location, tree):
    found = list(tree.walk(_ignored, lambda loc: False))
    assert [(f.location.relative_to(tree), f.size, f.skipped) for f in found] == [
        ("a.jsonl", 1, None), ("b/c.parquet", 2, None), ("b/d/e.arrow", 3, None), ("z b/\u00fc.jsonl", 6, None)]
    assert all(f.mtime_ns for f in found)
    assert [f.location.path for f in found] == [location.path(f"tree/{r}") for r in
                                                ("a.jsonl", "b/c.parquet", "b/d/e.arrow", "z b/\u00fc.jsonl")]
    # an excluded directory is reported once, as skipped, and not entered
    b = tree.join("b")
    found = list(tree.walk(_ignored, lambda loc: loc.within(b)))
    assert [(f.location.relative_to(tree), f.skipped) for f in found] == [
        ("a.jsonl", None), ("b", "inside output directory"), ("z b/\u00fc.jsonl", None)]


@pytest.mark.parametrize("pattern, base, want", [
    ("*.jsonl", "", ["a.jsonl"]),
    ("*", "", ["_SUCCESS", "a.jsonl", "b", "z b"]),  # directories too; hidden names only for a pattern with '.'
    ("b/*", "b", ["b/c.parquet", "b/d"]),
    ("[ab]*", "", ["a.jsonl", "b"]),
    ("**/*.arrow", "", ["b/d/e.arrow"]),
    ("*/*/*.arrow", "", ["b/d/e.arrow"]),
    ("*/?.parquet", "", ["b/c.parquet"]),
    ("z b/*", "z b", ["z b/\u00fc.jsonl"]),
    (".*", "", [".git"]),
    ("nothing*", "", []),
])
def test_glob(location, tree, pattern, base, want):
    """(base, matches): the pattern's fixed directory prefix, and the files and directories it matches."""
    fixed, matches = Location.of(location.uri(f"tree/{pattern}")).glob()
    assert fixed.path == location.path(f"tree/{base}" if base else "tree")
    assert sorted(m.relative_to(tree) for m in matches) == want


# ------------------------------------------------------------------------------- discovery


def test_discovery_follows_the_same_rules_everywhere(io_data, location):
    location.put(io_data / "data", "data")
    local, local_skipped = discover([str(io_data / "data")])
    shards, skipped = discover([location.uri("data")])
    assert [(s.relpath, s.format, s.size) for s in shards] == [(s.relpath, s.format, s.size) for s in local]
    assert [s.path for s in shards] == [location.path(f"data/{s.relpath}") for s in shards]
    assert all(s.mtime_ns for s in shards)
    assert [s.reason for s in skipped] == [s.reason for s in local_skipped] == ["unknown extension"]
    assert skipped[0].path == location.shown("data/notes.txt")  # no query string in what people see
    assert discover([location.uri("data")]) == discover([location.path("data")])  # file:// is a local path
    for pattern in ("*.parquet", "**/*.parquet", "*/part-0[34]*", "**", "sub/*.arrow"):
        want = [s.relpath for s in discover([str(io_data / "data" / pattern)])[0]]
        assert [s.relpath for s in discover([location.uri(f"data/{pattern}")])[0]] == want, pattern
    (one,) = discover([location.uri("data/sub/part-04.arrow")])[0]
    assert one.relpath == "part-04.arrow" and one.format == "arrow"
    # outputs inside the dataset are never scanned
    shards, skipped = discover([location.uri("data")], exclude=[location.uri("data/sub")])
    assert [s.relpath for s in shards] == ["part-00.parquet", "part-01.jsonl", "part-02.jsonl.gz"]
    assert {"path": location.shown("data/sub"), "reason": "inside output directory"} in \
        [{"path": s.path, "reason": s.reason} for s in skipped]
    with pytest.raises(ContamscanError) as err:
        discover([location.uri("data/*.json")])
    assert str(err.value) == f"no files match the pattern '{location.shown('data/*.json')}'"
    with pytest.raises(ContamscanError) as err:
        discover([location.uri("data/missing.parquet")])
    assert str(err.value) == f"input does not exist: {location.shown('data/missing.parquet')}"


# ------------------------------------------------------------------------------- the whole pipeline


def test_index_build_and_scan_equal_the_local_ones(io_data, location, local_scan):
    location.put(io_data / "refs", "refs")
    location.put(io_data / "data", "data")
    r = run_cli("index", "build", location.uri("refs/"), "-o", location.uri("refs.index"))
    assert r.returncode == EXIT_OK, r.stderr
    assert f"index      {location.shown('refs.index')}\n" in r.stdout and "endpoint_override" not in r.stdout
    assert "manifest.json" in location.keys("refs.index") and len(location.keys("refs.index")) >= 9
    r = run_cli("scan", location.uri("data"), "--index", location.uri("refs.index"), "-o", location.uri("run"),
                "--write-clean", location.uri("clean"), "--workers", "2")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"report: {location.shown('run')}/report.html" in r.stdout and "endpoint_override" not in r.stdout
    # the scan's own state (.contamscan/) is not an output (tests/io/test_s3.py: none of it is uploaded)
    assert [k for k in location.keys("run") if not k.startswith(".contamscan/")] == OUTPUTS
    got = json.loads(location.get("run/report.json"))
    want = json.loads((local_scan / "run" / "report.json").read_text())
    assert strip(got) == strip(want)
    assert got["index"]["path"] == location.shown("refs.index")
    assert got["totals"]["errors"]["skipped_files"] == [{"path": location.shown("data/notes.txt"),
                                                         "reason": "unknown extension"}]
    assert got["totals"]["flagged_documents"] == FLAGGED and got["totals"]["shards"] == 6
    for name in ("report.json", "report.md", "report.html"):  # the endpoint never leaks into a report
        assert b"endpoint_override" not in location.get(f"run/{name}")
    assert pq.read_table(pa.BufferReader(location.get("run/matches.parquet"))).equals(
        pq.read_table(local_scan / "run" / "matches.parquet"))
    # clean shards at the same relative paths, the same bytes as the local scan writes
    local_clean = sorted(p.relative_to(local_scan / "clean").as_posix()
                         for p in (local_scan / "clean").rglob("*") if p.is_file())
    assert location.keys("clean") == local_clean == [s["shard"] for s in want["shards"]]
    for rel in local_clean:
        assert location.get(f"clean/{rel}") == (local_scan / "clean" / rel).read_bytes(), rel
    assert pq.read_metadata(pa.BufferReader(location.get("clean/part-00.parquet"))).num_rows == 200


def test_index_at_the_location(io_data, location, local_scan, ai_table, tmp_path):
    location.put(io_data / "refs", "refs")
    uri = location.uri("refs.index")
    built = build_index([location.uri("refs")], uri)
    assert built.location.path == location.path("refs.index") and built.summary().path == location.shown("refs.index")
    assert location.keys("refs.index") == sorted(["manifest.json", *built.manifest["files"]])
    opened = open_index(uri)
    local = open_index(local_scan / "refs.index")
    assert len(opened) == len(local) == 100 and opened.refs.equals(local.refs)
    assert (opened.signatures == local.signatures).all()
    assert location.get("refs.index/signatures.npy") == (local_scan / "refs.index" / "signatures.npy").read_bytes()
    # merged and added to where they are
    a, b = location.uri("merge/a.index"), location.uri("merge/b.index")
    build_index([location.uri("refs/a.parquet")], a)
    build_index([location.uri("refs/b.jsonl")], b)
    merged = merge_indexes([a, b], location.uri("merge/ab.index"))
    assert len(merged) == 100 and merged.refs.equals(opened.refs)
    assert (merged.signatures == opened.signatures).all()
    assert open_index(location.uri("merge/ab.index")).refs.equals(opened.refs)
    with pytest.raises(ContamscanError, match="is one of the indexes being merged"):
        merge_indexes([a, b], a)
    more = tmp_path / "more.parquet"
    pq.write_table(ai_table.select(["id", "model", "text"]).slice(100, 20), more)
    added = add_to_index(a, [str(more)])
    assert len(added) == 80 and len(open_index(a)) == 80 and added.location.path == location.path("merge/a.index")
    with pytest.raises(ContamscanError, match=re.escape(f"{location.shown('nothing.index')} is not a contamscan "
                                                        "index")):
        open_index(location.uri("nothing.index"))


def test_corrupt_shards_fail_alone(io_data, location, local_scan, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    good = (io_data / "data" / "part-00.parquet").read_bytes()
    (corrupt / "good.parquet").write_bytes(good)
    (corrupt / "bad.parquet").write_bytes(b"")  # empty: not Parquet
    (corrupt / "cut.parquet").write_bytes(good[: len(good) // 2])
    (corrupt / "cut.jsonl.gz").write_bytes((io_data / "data" / "part-02.jsonl.gz").read_bytes()[:3000])
    location.put(corrupt, "corrupt")
    r = CliRunner().invoke(cli, ["scan", location.uri("corrupt"), "--index", str(local_scan / "refs.index"), "-o",
                                 location.uri("run"), "--write-clean", location.uri("clean"), "--workers", "1"])
    assert r.exit_code == EXIT_FAILED_SHARDS, r.output
    report = json.loads(location.get("run/report.json"))
    status = {s["shard"]: s["status"] for s in report["shards"]}
    assert status == {"bad.parquet": "failed", "cut.jsonl.gz": "failed", "cut.parquet": "failed", "good.parquet": "ok"}
    assert all("endpoint_override" not in (s["error"] or "") for s in report["shards"])
    assert location.keys("clean") == ["good.parquet"]  # no output of a failed shard


def test_report_command_reads_and_rewrites_outputs(io_data, location, local_scan):
    location.put(io_data / "data", "data")
    scan([location.uri("data")], local_scan / "refs.index", location.uri("run"), ScanOptions(workers=1))
    html = location.get("run/report.html")
    location.remove("run/report.html")
    r = CliRunner().invoke(cli, ["report", location.uri("run")])
    assert r.exit_code == EXIT_OK, r.output
    assert location.get("run/report.html") == html
    assert f"report: {location.shown('run')}/report.html" in r.output and "endpoint_override" not in r.output
    # the same scan of the same data: no change anywhere
    cmp = compare_reports(read_report(local_scan / "run"), read_report(location.uri("run")))
    assert cmp["totals"]["old"] == cmp["totals"]["new"] and not cmp["totals"]["changed"]
    assert [s["shard"] for s in cmp["shards"]] == [s["shard"] for s in read_report(local_scan / "run")["shards"]]
    assert not any(s["changed"] for s in cmp["shards"])
    r = CliRunner().invoke(cli, ["report", "--compare", str(local_scan / "run"), location.uri("run")])
    assert r.exit_code == EXIT_OK, r.output
    assert "endpoint_override" not in r.output and location.shown("run") in r.output


def test_large_parquet_shards_are_scanned_in_pieces(io_data, location, local_scan):
    """Pieces of row groups (--piece-mb) read the file's metadata and row groups alone."""
    location.put(io_data / "data", "data")
    events = []
    report = scan([location.uri("data")], local_scan / "refs.index", None, ScanOptions(workers=2, piece_bytes=30_000),
                  events=lambda n, f: events.append(f) if n == "shard_finished" else None)
    assert sum("row_groups" in f for f in events) > 4
    assert strip(report.data) == strip(json.loads((local_scan / "run" / "report.json").read_text()))


def test_profile_at_the_location(io_data, location, tmp_path):
    human = tmp_path / "human.parquet"
    pq.write_table(pl.read_parquet(HUMAN).select(["id", "source", "text"]).head(600).to_arrow(), human)
    location.put(io_data / "refs", "refs")
    built = build_profile([str(human)], [location.uri("refs")], location.uri("style.profile"))
    assert str(built.path) == location.shown("style.profile") and "manifest.json" in location.keys("style.profile")
    opened = open_profile(location.uri("style.profile"))
    assert opened.words == built.words and (opened.counts == built.counts).all()


# ------------------------------------------------------------------------------- another scheme


def test_fsspec_scheme(io_data, tmp_path):
    """A scheme pyarrow does not know goes through fsspec (here its in-memory file system)."""
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for p in sorted((io_data / "data").rglob("part-0[01]*")):
        mem.pipe(f"/mem-data/{p.relative_to(io_data / 'data').as_posix()}", p.read_bytes())
    shards, _ = discover(["memory://mem-data"])
    assert [s.relpath for s in shards] == ["part-00.parquet", "part-01.jsonl"]
    index = build_index([str(io_data / "refs")], tmp_path / "index")
    report = scan(["memory://mem-data"], index, "memory://mem-out",
                  ScanOptions(workers=1, write_clean="memory://mem-clean"))
    assert report.totals["documents"] == 403 and report.totals["flagged_documents"] == 3
    assert json.loads(mem.cat("/mem-out/report.json"))["totals"] == report.totals
    assert sorted(mem.find("/mem-clean")) == ["/mem-clean/part-00.parquet", "/mem-clean/part-01.jsonl"]
