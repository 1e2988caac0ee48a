"""The places the I/O tests read and write (conftest's ``location`` fixture): a local
directory, the same directory as a ``file://`` URI, and a prefix on moto's S3 server on
127.0.0.1 (conftest's ``s3`` fixture: no traffic beyond loopback). A :class:`Root` puts local
files there and reads them back with other means than contamscan's (the file system,
pyarrow's S3 client), so that a test checks contamscan against something else than itself.
Also the dataset the I/O tests scan, and helpers to compare their reports."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

BUCKET = "contamscan-test"
KINDS = ("local", "file", "s3")


# ------------------------------------------------------------------------------- S3 (moto)


class S3:
    """The server's address and URIs on it (every URI carries the loopback endpoint)."""

    def __init__(self, port: int):
        self.port = port
        self.query = f"?endpoint_override=127.0.0.1:{port}&scheme=http"
        self.fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}{self.query}")
        self._prefixes = itertools.count()

    def uri(self, path: str = "", bucket: str = BUCKET) -> str:
        return f"s3://{bucket}/{path}{self.query}"

    def put(self, local: Path, key: str) -> None:
        """Upload a file or a directory with pyarrow itself (not with contamscan.io)."""
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

    def fresh_prefix(self) -> str:
        """A prefix no test of this server has used (one per ``location`` of kind s3)."""
        return f"loc-{next(self._prefixes)}"


def serve_s3(tmp: Path):
    """moto's S3 server on 127.0.0.1 (a free port) with the bucket, dummy credentials, no
    metadata service and a cache directory of the tests' own; yields an :class:`S3`."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
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


# ------------------------------------------------------------------------------- roots


class Root:
    """A directory at one kind of location. ``rel`` is a '/'-separated name below it."""

    kind: str
    remote: bool

    def uri(self, rel: str = "") -> str:
        """What a test gives contamscan: a path, a file:// URI, an s3:// URI with its query."""
        raise NotImplementedError

    def path(self, rel: str = "") -> str:
        """What contamscan holds for it (``Location.path``, ``Shard.path``)."""
        raise NotImplementedError

    def shown(self, rel: str = "") -> str:
        """How contamscan shows it to people (``Location.shown``: no query, no credentials)."""
        raise NotImplementedError

    def put(self, local: Path, rel: str) -> None:
        """Copy a local file or directory to ``rel``."""
        raise NotImplementedError

    def get(self, rel: str) -> bytes:
        raise NotImplementedError

    def keys(self, rel: str = "") -> list[str]:
        """Every file below ``rel``, relative to it, sorted (hidden ones too)."""
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.kind} root {self.shown()}>"


class LocalRoot(Root):
    remote = False

    def __init__(self, directory: Path, as_uri: bool):
        self.dir = Path(directory)
        self.as_uri = as_uri
        self.kind = "file" if as_uri else "local"

    def _local(self, rel: str) -> Path:
        return self.dir / rel if rel else self.dir

    def uri(self, rel: str = "") -> str:
        p = self._local(rel)
        trailing = "/" if rel.endswith("/") else ""
        return p.as_uri() + trailing if self.as_uri else str(p) + trailing

    def path(self, rel: str = "") -> str:
        return str(self._local(rel))

    def shown(self, rel: str = "") -> str:
        return str(self._local(rel))

    def put(self, local: Path, rel: str) -> None:
        dest = self._local(rel)
        if Path(local).is_dir():
            shutil.copytree(local, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)

    def get(self, rel: str) -> bytes:
        return self._local(rel).read_bytes()

    def keys(self, rel: str = "") -> list[str]:
        base = self._local(rel)
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def remove(self, rel: str) -> None:
        self._local(rel).unlink()


class S3Root(Root):
    kind = "s3"
    remote = True

    def __init__(self, s3: S3, prefix: str):
        self.s3, self.prefix = s3, prefix

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if rel else self.prefix

    def uri(self, rel: str = "") -> str:
        # glob characters stay as typed; '?' (the query's start), '%' and spaces are encoded
        return f"s3://{BUCKET}/{quote(self._key(rel), safe='/*[]')}{self.s3.query}"

    def path(self, rel: str = "") -> str:
        return f"s3://{BUCKET}/{quote(self._key(rel).rstrip('/'), safe='/')}{self.s3.query}"

    def shown(self, rel: str = "") -> str:
        return f"s3://{BUCKET}/{self._key(rel)}".rstrip("/")

    def put(self, local: Path, rel: str) -> None:
        self.s3.put(local, self._key(rel))

    def get(self, rel: str) -> bytes:
        return self.s3.get(self._key(rel))

    def keys(self, rel: str = "") -> list[str]:
        return self.s3.keys(self._key(rel))

    def remove(self, rel: str) -> None:
        self.s3.fs.delete_file(f"{BUCKET}/{self._key(rel)}")


# ------------------------------------------------------------------------------- the dataset


def write_dataset(root: Path, ai_table: pa.Table, human_files) -> Path:
    """References (Parquet and JSON Lines, 100 real model outputs) in ``root/refs``, and in
    ``root/data`` a dataset of real human text with copies at different rates, as Parquet,
    JSON Lines, gzipped JSON Lines and Arrow, in two directories, with files that are not
    shards: shard s has 200 human documents and 3*s copies of references."""
    refs = ai_table.select(["id", "model", "text"]).slice(0, 100)
    (root / "refs").mkdir()
    pq.write_table(refs.slice(0, 60), root / "refs" / "a.parquet")
    (root / "refs" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refs.slice(60).to_pylist()))
    human = pl.read_parquet(human_files).select("text")["text"].to_list()[:1200]
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
    return root


FLAGGED = sum(3 * s for s in range(6))  # the copies in the dataset
OUTPUTS = ["evidence.parquet", "matches.parquet", "report.html", "report.json", "report.md"]


def strip(report: dict) -> dict:
    """report.json without what differs between two runs of one scan at two places: times,
    the index's path, the paths of skipped files."""
    out = {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}
    out["index"] = {k: v for k, v in out["index"].items() if k != "path"}
    out["totals"] = {**out["totals"], "errors": {k: v for k, v in out["totals"]["errors"].items()
                                                 if k != "skipped_files"}}
    return out


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    """``python -m contamscan ARGS`` in a new process."""
    return subprocess.run([sys.executable, "-m", "contamscan", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)
