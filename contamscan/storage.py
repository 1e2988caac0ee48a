"""Remote paths: ``s3://``, ``gs://``, ``hdfs://``, ``abfs://`` (through ``pyarrow.fs``) and any
other scheme fsspec knows (when fsspec and the scheme's package are installed).

The one module that knows about remote paths. Everything else asks :func:`is_remote` and
calls the functions here; a local path never comes here and keeps its own code path.

A remote path is a URI: ``scheme://netloc/path?query``. The path is percent-decoded (``%20``
is a space; a raw space is accepted too), so ``?`` always starts the query and cannot be a
glob wildcard. The query holds the file system's options as pyarrow reads them, for example
``s3://bucket/crawl?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1`` for an
S3-compatible server; it is kept on every URI derived from the one given (shards, outputs),
so that any process (a forked worker, a Ray task on another node) reopens the same file
system, and it is dropped from every path shown to people (:func:`display`), as are
credentials in the network location (``user:secret@host``).

Every failure is a :class:`StorageError` (a :class:`~contamscan.errors.ContamscanError`)
naming the URI.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, quote, unquote

import pyarrow as pa
import pyarrow.fs as pafs
import xxhash

from .errors import ContamscanError

__all__ = ["StorageError", "RemoteFile", "READ_BUFFER", "is_remote", "localize", "display", "key", "join",
           "basename", "resolve", "info", "exists", "list_files", "glob", "has_magic", "open_input_file",
           "open_input_stream", "read_bytes", "write_bytes", "upload", "download", "delete", "cache_root",
           "staging_dir", "fetch_dir", "adopt_dir", "upload_dir", "check_writable", "new_build_dir", "tmp_file"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MAGIC = re.compile(r"[*?[]")
_BUCKETS = frozenset({"s3", "gs", "gcs"})  # schemes whose location is a bucket
# remote files are read in requests of this size (Parquet column chunks, compressed JSON Lines):
# a request costs a round trip, so fewer and larger ones than the 1 MB buffer of local reads
READ_BUFFER = 8 << 20
_COPY_CHUNK = 8 << 20
# query parameters that hold credentials: never part of a cache key or of a path shown
_SECRET = re.compile(r"(secret|token|password|passwd|credential|access_key|sas|signature|key_id)", re.I)


class StorageError(ContamscanError):
    """A remote path cannot be resolved, listed, read or written."""


@dataclass(frozen=True)
class RemoteFile:
    uri: str  # the file's full URI, query included (reopens it anywhere)
    rel: str  # '/'-separated, percent-decoded path relative to the URI that was listed
    size: int
    mtime_ns: int | None


@dataclass(frozen=True)
class _Uri:
    scheme: str
    netloc: str
    path: str  # percent-decoded, without leading or trailing '/'
    query: str


# ------------------------------------------------------------------------------- URIs


def is_remote(path) -> bool:
    """Whether ``path`` is a URI of a scheme other than ``file://``. Only a ``str`` can be
    one (``pathlib.Path`` turns ``s3://b`` into ``s3:/b``, a local path)."""
    if not isinstance(path, str):
        return False
    m = _SCHEME.match(path)
    return m is not None and m.group(1).lower() != "file"


def localize(path):
    """A ``file://`` URI as a local path; anything else unchanged."""
    if isinstance(path, str) and path[:7].lower() == "file://":
        rest = path[7:].partition("?")[0]
        if rest and not rest.startswith("/"):  # file://host/path: the host must be this one
            host, _, rest = rest.partition("/")
            if host not in ("", "localhost"):
                raise StorageError(f"{path}: a file:// URI names a file on this machine (file:///PATH)")
            rest = "/" + rest
        return unquote(rest) or "/"
    return path


def _parse(uri: str) -> _Uri:
    m = _SCHEME.match(uri)
    if m is None:
        raise StorageError(f"not a URI: {uri!r}")
    rest = uri[m.end():].split("#", 1)[0]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if not netloc:
        raise StorageError(f"{uri}: no bucket or host after {m.group(1)}://")
    return _Uri(m.group(1).lower(), netloc, unquote(path).strip("/"), query)


def _host(netloc: str) -> str:
    """The network location without credentials (``user:secret@host`` -> ``host``; Azure's
    ``container@account`` is kept: it names the container, not a secret)."""
    user, at, host = netloc.rpartition("@")
    return host if at and ":" in user else netloc


def _uri(u: _Uri, path: str, query: str | None = None) -> str:
    q = u.query if query is None else query
    return f"{u.scheme}://{u.netloc}/{quote(path, safe='/')}" + (f"?{q}" if q else "")


def display(uri) -> str:
    """A URI as shown to people: no query string, no credentials, path decoded."""
    if not is_remote(uri):
        return str(uri)
    try:
        u = _parse(uri)
    except StorageError:
        return uri.split("?", 1)[0]
    return f"{u.scheme}://{_host(u.netloc)}/{u.path}".rstrip("/") if u.path else f"{u.scheme}://{_host(u.netloc)}"


def key(uri: str) -> str:
    """A canonical form of a URI to compare two of them and to name caches: scheme, location
    (without credentials), decoded path, and the query's options but its credentials."""
    u = _parse(uri)
    params = sorted((k, v) for k, v in parse_qsl(u.query, keep_blank_values=True) if not _SECRET.search(k))
    query = "&".join(f"{k}={v}" for k, v in params)
    return f"{u.scheme}://{_host(u.netloc)}/{u.path}" + (f"?{query}" if query else "")


def _digest(text: str | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode() if isinstance(text, str) else text)


def join(uri: str, *parts: str) -> str:
    """``uri`` with '/'-separated ``parts`` appended to its path (the query kept)."""
    u = _parse(uri)
    path = "/".join(p.strip("/") for p in (u.path, *parts) if p.strip("/"))
    return _uri(u, path)


def basename(path) -> str:
    """The last component of a local path or of a URI's path (without the query)."""
    if is_remote(path):
        return _parse(path).path.rsplit("/", 1)[-1]
    return os.path.basename(path)


def has_magic(uri: str) -> bool:
    return bool(_MAGIC.search(_parse(uri).path))


def _error(uri: str, exc: BaseException, doing: str = "") -> StorageError:
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, pa.ArrowException):
        msg = exc.strerror
    msg = msg.splitlines()[0]
    # an error message may quote the URI: never its options or credentials
    query = uri.partition("?")[2]
    secrets = [v for k, v in parse_qsl(query) if _SECRET.search(k) and v]
    user = uri.partition("://")[2].partition("/")[0].rpartition("@")[0]
    for s in sorted([query, *secrets, *([user] if ":" in user else [])], key=len, reverse=True):
        if s:
            msg = msg.replace(s, "…")
    return StorageError(f"{display(uri)}: {doing + ': ' if doing else ''}{msg}")


# ------------------------------------------------------------------------------- file systems

_FILESYSTEMS: dict[tuple[str, str, str], tuple[pafs.FileSystem, str]] = {}


def _filesystem(u: _Uri) -> tuple[pafs.FileSystem, str]:
    """(file system, its path of the URI's root) for a scheme, location and options; made
    once per process (an S3 file system may look up the bucket's region when made)."""
    cache_key = (u.scheme, u.netloc, u.query)
    hit = _FILESYSTEMS.get(cache_key)
    if hit is not None:
        return hit
    root_uri = _uri(u, "")
    try:
        fs, root = pafs.FileSystem.from_uri(root_uri)
    except pa.ArrowInvalid as e:
        if "Unrecognized filesystem type" not in str(e):
            raise _error(root_uri, e, "cannot open the file system") from e
        fs, root = _fsspec(u, root_uri)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(root_uri, e, "cannot open the file system") from e
    _FILESYSTEMS[cache_key] = hit = (fs, root)
    return hit


def _fsspec(u: _Uri, root_uri: str) -> tuple[pafs.FileSystem, str]:
    """A scheme pyarrow does not know, through fsspec (when installed): the query's options
    are the file system's keyword arguments."""
    unknown = StorageError(f"{display(root_uri)}: unknown scheme {u.scheme!r} (pyarrow knows s3, gs, hdfs, abfs "
                           "and file; for others install fsspec and the scheme's package)")
    try:
        import fsspec
        import fsspec.core
    except ImportError:
        raise unknown from None
    if u.scheme not in fsspec.available_protocols():
        raise unknown
    try:
        fs, root = fsspec.core.url_to_fs(f"{u.scheme}://{u.netloc}/", **dict(parse_qsl(u.query)))
    except (ImportError, ValueError, OSError, TypeError) as e:
        raise _error(root_uri, e, "cannot open the file system through fsspec") from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(``pyarrow.fs.FileSystem``, path in it) of a remote URI."""
    u = _parse(uri)
    fs, root = _filesystem(u)
    if not u.path:
        return fs, root or "/"
    return fs, root + u.path if root.endswith("/") else f"{root}/{u.path}" if root else u.path


def info(uri: str) -> pafs.FileInfo:
    fs, path = resolve(uri)
    try:
        return fs.get_file_info(path)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e) from e


def exists(uri: str) -> bool:
    return info(uri).type != pafs.FileType.NotFound


def list_files(uri: str) -> list[RemoteFile]:
    """Every file under the directory (or prefix) ``uri``, recursively, sorted by path."""
    fs, base = resolve(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except FileNotFoundError:
        return []
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e, "cannot list") from e
    prefix = (base.rstrip("/") + "/").lstrip("/")  # paths compared without a leading '/'
    out = []
    for i in infos:
        p = i.path.lstrip("/")
        if i.type != pafs.FileType.File or not p.startswith(prefix):
            continue
        rel = p[len(prefix):]
        out.append(RemoteFile(join(uri, rel), rel, int(i.size or 0), i.mtime_ns))
    out.sort(key=lambda f: f.rel)
    return out


def _match(pattern: list[str], names: list[str]) -> bool:
    """Glob semantics per path component, as :func:`glob.glob` with ``recursive=True``:
    ``*`` and ``[...]`` stay within a component, ``**`` is any number of components, and a
    hidden name (``.x``) is matched only by a pattern component starting with ``.``."""
    if not pattern:
        return not names
    p = pattern[0]
    if p == "**":
        for i in range(len(names) + 1):
            if i and names[i - 1].startswith("."):
                break
            if _match(pattern[1:], names[i:]):
                return True
        return False
    if not names or (names[0].startswith(".") and not p.startswith(".")):
        return False
    return fnmatchcase(names[0], p) and _match(pattern[1:], names[1:])


def glob(pattern: str) -> tuple[str, list[tuple[RemoteFile, int]]]:
    """(base URI, matches) of a remote glob pattern. The base is the pattern's fixed
    directory prefix (the part before the first component with ``*``, ``[``); what is
    listed under it is matched component by component (:func:`_match`). Each match is
    (file, k): the file's first k components (relative to the base) matched the pattern;
    k smaller than its number of components means a matched directory holding the file."""
    u = _parse(pattern)
    parts = u.path.split("/") if u.path else []
    fixed: list[str] = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    rest = parts[len(fixed):]
    base = _uri(u, "/".join(fixed))
    matches = []
    for f in list_files(base):
        names = f.rel.split("/")
        for k in range(1, len(names) + 1):
            if _match(rest, names[:k]):
                matches.append((f, k))
                break
    return base, matches


def check_writable(uri: str) -> None:
    """Fail early, before any work, when a remote output cannot be reached or its bucket (the
    root of the URI) does not exist. Permissions show only when writing."""
    u = _parse(uri)
    if u.scheme not in _BUCKETS:  # elsewhere the location is a host, and directories are made as needed
        return
    root = _uri(u, "")
    if info(root).type == pafs.FileType.NotFound:
        raise StorageError(f"{display(root)} does not exist (no such bucket?): create it first")


# ------------------------------------------------------------------------------- reading and writing


def open_input_file(uri: str) -> pa.NativeFile:
    """A remote file for random access (seek, tell, read at offsets)."""
    fs, path = resolve(uri)
    try:
        return fs.open_input_file(path)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e) from e


def open_input_stream(uri: str) -> pa.NativeFile:
    """A remote file for sequential reading, as stored (no decompression by extension)."""
    fs, path = resolve(uri)
    try:
        return fs.open_input_stream(path, compression=None)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e) from e


def read_bytes(uri: str) -> bytes:
    stream = open_input_stream(uri)
    try:
        return stream.read()
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e) from e
    finally:
        stream.close()


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object (it appears complete or not at all on an object store)."""
    fs, path = resolve(uri)
    try:
        with fs.open_output_stream(path, compression=None) as out:
            out.write(data)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e, "cannot write") from e


def upload(local: str | os.PathLike, uri: str) -> None:
    """Copy a local file to ``uri``. On an object store (S3, GCS, Azure) the object appears
    only when the upload completes, under its final name: there is no temporary name to
    rename, and a reader never sees part of it."""
    fs, path = resolve(uri)
    try:
        with open(local, "rb") as src, fs.open_output_stream(path, compression=None) as out:
            while chunk := src.read(_COPY_CHUNK):
                out.write(chunk)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e, f"cannot upload {local}") from e


def download(uri: str, local: str | os.PathLike, size: int | None = None) -> str:
    """Copy ``uri`` to the local file ``local`` (written under a temporary name, renamed when
    complete). Returns the xxh3-128 of the bytes; ``size``, if given, must match."""
    local = Path(local)
    tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}")
    h = xxhash.xxh3_128()
    n = 0
    src = open_input_stream(uri)
    try:
        with open(tmp, "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
        if size is not None and n != size:
            raise StorageError(f"{display(uri)}: read {n} bytes, expected {size} (changed while being read?)")
        os.replace(tmp, local)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(uri, e, "cannot download") from e
    finally:
        src.close()
        tmp.unlink(missing_ok=True)
    return h.hexdigest()


def delete(uri: str, missing_ok: bool = True) -> None:
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        if not missing_ok:
            raise StorageError(f"{display(uri)}: no such file") from None
    except (OSError, pa.ArrowException, ValueError) as e:
        if missing_ok and info(uri).type == pafs.FileType.NotFound:
            return
        raise _error(uri, e, "cannot delete") from e


# ------------------------------------------------------------------------------- local caches


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/contamscan`` (``~/.cache/contamscan`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "contamscan"


def staging_dir(uri: str) -> Path:
    """The local directory that stands for a remote scan output: its lock, its checkpoints
    (so ``--resume`` works from this machine) and the final outputs until uploaded."""
    d = cache_root() / "runs" / _digest(key(uri))[:32]
    d.mkdir(parents=True, exist_ok=True)
    (d / "URI").write_text(display(uri) + "\n")
    return d


class _Lock:
    """flock on a file: processes of one machine fetching the same directory wait for each
    other instead of downloading it several times."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _entry_name(uri: str, manifest: bytes) -> str:
    return f"{_digest(key(uri))[:16]}-{_digest(manifest)[:16]}"


def _safe_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..", "manifest.json") and "/" not in name \
        and "\\" not in name and not name.startswith(".")


def fetch_dir(uri: str, kind: str, *, error: type[ContamscanError] = StorageError, what: str = "a directory",
              check: Callable[[dict], None] | None = None) -> tuple[Path, bool]:
    """A local copy of the remote directory ``uri`` described by its ``manifest.json`` (which
    lists ``files: {name: {bytes, xxh3_128}}``), in ``cache_root()/kind/``.

    The entry is named by the URI and the manifest's digest: an unchanged directory is
    reused, a changed one is fetched again (older copies of the same URI are removed). A
    fetch verifies the size and checksum of every file as it downloads it, writes the
    manifest last and renames the whole directory into place, so an entry is complete or
    absent; processes on one machine fetch one at a time. ``check(manifest)`` may reject the
    manifest before anything is downloaded. Returns (local directory, fetched now)."""
    try:
        manifest_bytes = read_bytes(join(uri, "manifest.json"))
    except StorageError as e:
        if not exists(join(uri, "manifest.json")):
            raise error(f"{display(uri)} is not {what} (no manifest.json)") from None
        raise error(str(e)) from e
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        if not isinstance(files, dict) or not all(_safe_name(n) and isinstance(m, dict) for n, m in files.items()):
            raise ValueError("bad file list")
    except (ValueError, KeyError, TypeError) as e:
        raise error(f"{display(uri)}/manifest.json: unreadable manifest ({e})") from None
    if check is not None:
        check(manifest)
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    name = _entry_name(uri, manifest_bytes)
    entry = root / name
    if (entry / "manifest.json").is_file():
        return entry, False
    with _Lock(root / f".{name}.lock"):
        if (entry / "manifest.json").is_file():  # fetched by another process meanwhile
            return entry, False
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            for fname, meta in files.items():
                try:
                    digest = download(join(uri, fname), tmp / fname, size=meta.get("bytes"))
                except StorageError as e:
                    raise error(str(e)) from None
                if meta.get("xxh3_128") is not None and digest != meta["xxh3_128"]:
                    raise error(f"{display(uri)}: checksum mismatch for {fname}: the file does not match its "
                                "manifest (modified or corrupted)")
            (tmp / "manifest.json").write_bytes(manifest_bytes)
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / "manifest.json").is_file():  # else: placed by another machine's process
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root, name)
    return entry, True


def _prune(root: Path, keep: str) -> None:
    """Remove older copies of the same URI (a process still using one keeps its mapped files)."""
    prefix = keep.split("-", 1)[0] + "-"
    for d in root.glob(prefix + "*"):
        if d.name != keep and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            (root / f".{d.name}.lock").unlink(missing_ok=True)


def adopt_dir(local: Path, uri: str, kind: str) -> Path:
    """Make ``local`` (a directory just written and uploaded to ``uri``, with its manifest) the
    cache entry of ``uri``, so opening ``uri`` next does not download it. Returns the entry."""
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    name = _entry_name(uri, (Path(local) / "manifest.json").read_bytes())
    entry = root / name
    if (entry / "manifest.json").is_file():
        shutil.rmtree(local, ignore_errors=True)
    else:
        os.replace(local, entry)
    _prune(root, name)
    return entry


def new_build_dir(kind: str) -> Path:
    """A local directory to build something to be uploaded, beside the cache entries (same
    file system, so it can become one by a rename)."""
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=root))


def upload_dir(local: Path, uri: str, names, last: str = "manifest.json", stale=()) -> None:
    """Upload the files ``names`` of ``local`` to ``uri``, then ``last``. ``uri/last`` is deleted
    first, so while the files change a reader finds no ``last`` (no manifest: not an index,
    not a profile) rather than a mix of two versions; files of ``stale`` are deleted before
    ``last`` goes up. A reader that started before still checks every file against the
    manifest it read, so it fails rather than mixing versions."""
    delete(join(uri, last))
    for n in names:
        upload(Path(local) / n, join(uri, n))
    for n in stale:
        delete(join(uri, n))
    upload(Path(local) / last, join(uri, last))


def tmp_file(suffix: str) -> str:
    """A new local temporary file (in $TMPDIR) for an output to be uploaded."""
    fd, path = tempfile.mkstemp(prefix=".contamscan-", suffix=suffix)
    os.close(fd)
    return path
