"""One object for every path contamscan reads or writes: :class:`Location`.

A Location is a local path or a URI (``s3://``, ``gs://``, ``hdfs://``, ``abfs://`` through
``pyarrow.fs``; any other scheme fsspec knows, when fsspec and the scheme's package are
installed; ``file:///path`` is a local path). Datasets, references, indexes, profiles,
outputs, checkpoints and clean/flagged shards all go through it, and nothing outside
``contamscan.io`` asks which kind a path is. Local files keep what pays on a disk behind the
same methods: files named by bytes that are not UTF-8, atomic renames, symlink-loop
detection when walking. Inputs are read, never memory-mapped: a mapped file that shrinks
while it is read kills the process with SIGBUS, a read fails with an error.

A remote path is a URI: ``scheme://netloc/path?query``. The path is percent-decoded (``%20``
is a space; a raw space is accepted too), so ``?`` always starts the query and cannot be a
glob wildcard. The query holds the file system's options as pyarrow reads them, for example
``s3://bucket/crawl?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1`` for an
S3-compatible server; it is kept on every URI derived from the one given (shards, outputs),
so that any process (a forked worker, a Ray task on another node) reopens the same file
system, and it is dropped from every path shown to people (:attr:`Location.shown`), as are
credentials in the network location (``user:secret@host``).

Every failure is a :class:`~contamscan.errors.StorageError` naming the path.
"""

from __future__ import annotations

import errno
import glob as globlib
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, quote, unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from ..errors import OutputWriteError, StorageError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MAGIC = re.compile(r"[*?[]")
_BUCKETS = frozenset({"s3", "gs", "gcs"})  # schemes whose location is a bucket
# remote files are read in requests of this size (Parquet column chunks, compressed JSON Lines):
# a request costs a round trip, so fewer and larger ones than the 1 MB buffer of local reads
READ_BUFFER = 8 << 20
_COPY_CHUNK = 8 << 20
# query parameters that hold credentials: never part of a cache key or of a path shown
_SECRET = re.compile(r"(secret|token|password|passwd|credential|access_key|sas|signature|key_id)", re.I)


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
    if u.scheme == "hf":  # before pyarrow, which may hand unknown schemes to fsspec itself
        _FILESYSTEMS[cache_key] = hit = _hf(u, root_uri)
        return hit
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


def _hf(u: _Uri, root_uri: str) -> tuple[pafs.FileSystem, str]:
    """``hf://datasets/OWNER/NAME/...``: the Hugging Face Hub through huggingface_hub's
    HfFileSystem (an fsspec file system; the ``[hf]`` extra). The query's options are its
    keyword arguments (``?revision=...`` is not one: pin a revision as ``NAME@REV``)."""
    try:
        import huggingface_hub  # noqa: PLC0415 (optional: the [hf] extra)
    except ImportError:
        raise StorageError(f"{display(root_uri)}: hf:// paths need huggingface_hub, which is not installed: "
                           "pip install 'contamscan[hf]'") from None
    try:
        fs = huggingface_hub.HfFileSystem(**dict(parse_qsl(u.query)))
    except (ValueError, OSError, TypeError) as e:
        raise _error(root_uri, e, "cannot open the Hugging Face Hub") from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), u.netloc


def _fsspec(u: _Uri, root_uri: str) -> tuple[pafs.FileSystem, str]:
    """A scheme pyarrow does not know, through fsspec (when installed): the query's options
    are the file system's keyword arguments."""
    unknown = StorageError(f"{display(root_uri)}: unknown scheme {u.scheme!r} (pyarrow knows s3, gs, hdfs, abfs "
                           "and file; for others install fsspec and the scheme's package)")
    try:
        import fsspec  # noqa: PLC0415 (optional: only for schemes pyarrow does not know)
        import fsspec.core  # noqa: PLC0415
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


def _split_glob(pattern: str) -> tuple[str, list[str]]:
    """(base URI, the pattern's components below it) of a remote glob pattern."""
    u = _parse(pattern)
    parts = u.path.split("/") if u.path else []
    fixed: list[str] = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    return _uri(u, "/".join(fixed)), parts[len(fixed):]


def glob(pattern: str) -> tuple[str, list[tuple[RemoteFile, int]]]:
    """(base URI, matches) of a remote glob pattern. The base is the pattern's fixed
    directory prefix (the part before the first component with ``*``, ``[``); what is
    listed under it is matched component by component (:func:`_match`). Each match is
    (file, k): the file's first k components (relative to the base) matched the pattern;
    k smaller than its number of components means a matched directory holding the file."""
    base, rest = _split_glob(pattern)
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




# ------------------------------------------------------------------------------- Location

LOCAL_READ_BUFFER = 1 << 20  # Parquet column chunks are streamed through this, not read whole
_FILE, _DIR, _MISSING = "file", "dir", "missing"


def _printable(path: str) -> str:
    """A path as valid Unicode, for reports: bytes of a file name that are not UTF-8 (which
    Python keeps as lone surrogates, and which Arrow, JSON and Markdown writers reject) are
    shown as ``\\xNN`` escapes. Only for display: files are opened by their real path."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def _native(path: str):
    """A local path as Arrow takes it: bytes when the name is not valid UTF-8."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _os_error(loc: "Location", e: OSError, doing: str = "") -> StorageError:
    return StorageError(f"{loc.shown}: {doing + ': ' if doing else ''}{e.strerror or e}")


@dataclass(frozen=True)
class Info:
    """What a listing or a stat says of a path."""

    type: str  # "file" | "dir" | "missing"
    size: int = 0
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Found:
    """A file met while walking a directory (``skipped`` set: not a file to take, and why)."""

    location: "Location"
    size: int = 0
    mtime_ns: int | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class Location:
    """A local path or a URI, with every operation contamscan needs of it.

    Args:
        path: a local path (as given: relative paths stay relative in what people see) or a
            URI with its query. Build one with :meth:`of`.

    Example:
        >>> out = Location.of("scan-out").join("report.json")
        >>> out.shown
        'scan-out/report.json'
    """

    path: str
    remote: bool = False

    @staticmethod
    def of(path: "str | os.PathLike | Location") -> "Location":
        """The Location of a path, a ``file://`` URI, a remote URI or a Location."""
        if isinstance(path, Location):
            return path
        if isinstance(path, str) and is_remote(path):
            return Location(path, True)
        return Location(os.fspath(localize(path) if isinstance(path, str) else path), False)

    def __str__(self) -> str:
        return self.shown

    def __fspath__(self) -> str:  # a local Location can be passed where a path is expected
        if self.remote:
            raise TypeError(f"{self.shown} is not a local path")
        return self.path

    # ---------------------------------------------------------------- names

    @property
    def shown(self) -> str:
        """As shown to people: a local path as given, a URI without query or credentials."""
        return display(self.path) if self.remote else _printable(self.path)

    @property
    def key(self) -> str:
        """A canonical form for comparing two Locations: the real path, or the URI's key."""
        return key(self.path) if self.remote else os.path.realpath(self.path)

    @property
    def name(self) -> str:
        return basename(self.path)

    def join(self, *parts: str) -> "Location":
        """The Location of ``parts`` ('/'-separated) below this one."""
        if self.remote:
            return Location(join(self.path, *parts), True)
        return Location(os.path.join(self.path, *[p for part in parts for p in part.split("/") if p]), False)

    @property
    def parent(self) -> "Location":
        """The directory holding this file (a URI keeps its query)."""
        if self.remote:
            u = _parse(self.path)
            return Location(_uri(u, u.path.rstrip("/").rpartition("/")[0], u.query), True)
        return Location(os.path.dirname(self.path.rstrip(os.sep)) or ".", False)

    def absolute(self) -> "Location":
        return self if self.remote else Location(os.path.abspath(self.path), False)

    def relative_to(self, base: "Location") -> str:
        """This Location's path below ``base``, '/'-separated and decoded."""
        if self.remote:
            mine, theirs = _parse(self.path).path, _parse(base.path).path
            return mine[len(theirs):].lstrip("/") if theirs else mine
        return os.path.relpath(self.path, base.path).replace(os.sep, "/")

    def within(self, other: "Location") -> bool:
        """Whether this Location is ``other`` or inside it."""
        if self.remote != other.remote:
            return False
        a, b = (self.shown, other.shown) if self.remote else (self.key, other.key)
        sep = "/" if self.remote else os.sep
        return a == b or a.startswith(b.rstrip(sep) + sep)

    def has_magic(self) -> bool:
        """Whether the path is a glob pattern (``*``, ``?``, ``[``; for a URI, in its path)."""
        return has_magic(self.path) if self.remote else bool(_MAGIC.search(self.path))

    # ---------------------------------------------------------------- looking

    def info(self) -> Info:
        if self.remote:
            i = info(self.path)
            kind = {pafs.FileType.File: _FILE, pafs.FileType.Directory: _DIR}.get(i.type, _MISSING)
            return Info(kind, int(i.size or 0), i.mtime_ns)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return Info(_MISSING)
        except OSError as e:
            raise _os_error(self, e) from e
        return Info(_DIR if stat.S_ISDIR(st.st_mode) else _FILE, st.st_size, st.st_mtime_ns)

    def exists(self) -> bool:
        return self.info().type != _MISSING

    def is_dir(self) -> bool:
        return self.info().type == _DIR

    def is_broken_link(self) -> bool:
        return not self.remote and os.path.islink(self.path) and not os.path.exists(self.path)

    # ---------------------------------------------------------------- reading

    @property
    def read_buffer(self) -> int:
        """How much to read at a time: each remote read is a request, so more there."""
        return READ_BUFFER if self.remote else LOCAL_READ_BUFFER

    def arrow_source(self):
        """(source, filesystem) for pyarrow readers that open files themselves (Parquet): the
        path and its file system, or for a local name that is not UTF-8 an open file."""
        if self.remote:
            return resolve(self.path)[::-1]
        native = _native(self.path)
        return (native, None) if isinstance(native, str) else (pa.OSFile(native, "r"), None)

    def open_random(self) -> pa.NativeFile:
        """The file for random access (seek, read at offsets)."""
        if self.remote:
            return open_input_file(self.path)
        try:
            return pa.OSFile(_native(self.path), "r")
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"{self.shown}: {getattr(e, 'strerror', None) or e}") from e

    def open_stream(self) -> pa.NativeFile:
        """The file for sequential reading, as stored (no decompression by extension)."""
        return open_input_stream(self.path) if self.remote else self.open_random()

    def read_bytes(self) -> bytes:
        if self.remote:
            return read_bytes(self.path)
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError as e:
            raise _os_error(self, e) from e

    def walk(self, ignored: Callable[[str], bool], excluded: Callable[["Location"], bool]):
        """Every file below this directory, in name order, as :class:`Found`: names for which
        ``ignored(name)`` holds are left out at every level, directories for which
        ``excluded(location)`` holds are reported once as skipped ("inside output directory")
        and not entered; symbolic-link loops and unreadable directories are reported as
        skipped. A file reached twice through links is listed each time (the caller keeps
        one by :attr:`key`)."""
        if self.remote:
            yield from self._walk_remote(ignored, excluded)
        else:
            yield from self._walk_local(self.path, frozenset(), ignored, excluded, set())

    def _walk_remote(self, ignored, excluded):
        reported = set()
        for f in list_files(self.path):
            names = f.rel.split("/")
            if any(ignored(n) for n in names):
                continue
            loc = Location(f.uri, True)
            for k in range(1, len(names)):  # the topmost excluded directory, once
                d = self.join(*names[:k])
                if excluded(d):
                    if d.shown not in reported:
                        reported.add(d.shown)
                        yield Found(d, skipped="inside output directory")
                    break
            else:
                yield Found(loc, f.size, f.mtime_ns)

    def _walk_local(self, d: str, ancestors: frozenset, ignored, excluded, walked: set):
        real = os.path.realpath(d)
        walked.add(real)
        ancestors = ancestors | {real}
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Found(Location(d), skipped=f"unreadable: {e.strerror or e}")
            return
        for entry in entries:
            if ignored(entry.name):
                continue
            p = os.path.join(d, entry.name)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if not is_dir:
                yield from Location(p)._found_file()
                continue
            r = os.path.realpath(p)
            if r in ancestors:
                yield Found(Location(p), skipped="symlink loop")
            elif excluded(Location(p)):
                yield Found(Location(p), skipped="inside output directory")
            elif r not in walked:  # else reached twice (a symlink to a directory already walked)
                yield from self._walk_local(p, ancestors, ignored, excluded, walked)

    def _found_file(self):
        """This local file as :class:`Found` (or why it cannot be one)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            yield Found(self, skipped="broken symlink" if os.path.islink(self.path) else "vanished")
            return
        except OSError as e:
            yield Found(self, skipped="symlink loop" if e.errno == errno.ELOOP else f"unreadable: {e.strerror or e}")
            return
        if not stat.S_ISREG(st.st_mode):
            yield Found(self, skipped="not a regular file")
            return
        # a file that cannot be opened (permission denied) is a file all the same: it fails
        # when read, so a scan reports it as failed, not as skipped
        yield Found(self, st.st_size, st.st_mtime_ns)

    def stat_file(self) -> Found:
        """This path as one file (as :meth:`walk` reports files)."""
        if self.remote:
            i = self.info()
            return Found(self, i.size, i.mtime_ns)
        return next(self._found_file())

    def glob_base(self) -> "Location":
        """The fixed directory prefix of this glob pattern (nothing is listed)."""
        if not self.remote:
            return Location(_glob_base(self.path))
        return Location(_split_glob(self.path)[0], True)

    def glob(self) -> tuple["Location", list["Location"]]:
        """(base, matches) of this glob pattern: the base is its fixed directory prefix, the
        matches are files and directories, as :func:`glob.glob` with ``recursive=True``
        (``*`` and ``[...]`` stay within a component, ``**`` crosses them, hidden names
        match only a pattern starting with ``.``)."""
        if not self.remote:
            return Location(_glob_base(self.path)), [Location(m) for m in sorted(globlib.glob(self.path, recursive=True))]
        base, found = glob(self.path)
        matches, dirs = [], set()
        for f, k in found:
            names = f.rel.split("/")
            if k == len(names):
                matches.append(Location(f.uri, True))
            elif "/".join(names[:k]) not in dirs:
                dirs.add("/".join(names[:k]))
                matches.append(Location(base, True).join(*names[:k]))
        return Location(base, True), matches

    # ---------------------------------------------------------------- writing

    def check_writable(self) -> None:
        """Fail early, before any work, when a remote output's bucket does not exist."""
        if self.remote:
            check_writable(self.path)

    def mkdir(self) -> None:
        if not self.remote:  # object stores have no directories; others make them as needed
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError as e:
                raise _os_error(self, e, "cannot create the directory") from e

    def write_atomic(self, data: bytes, durable: bool = True) -> None:
        """Write a whole file: complete under its name or not there (a local file is written
        under a temporary name, synced and renamed; an object appears whole when uploaded).
        ``durable=False`` skips the syncs: the file is still whole for every process, but
        after a power loss it may be empty (for files whose reader checks them: checkpoints)."""
        if self.remote:
            write_bytes(self.path, data)
            return
        with self.writing(durable=durable) as tmp, open(tmp, "wb") as f:
            f.write(data)

    def write_table_atomic(self, tables, schema: pa.Schema | None = None, durable: bool = True) -> None:
        """A Parquet file written whole (as :meth:`write_atomic`): ``tables`` is a table, or
        tables of ``schema`` written one after another as they come."""
        with self.writing(durable=durable) as tmp:
            if isinstance(tables, pa.Table):
                pq.write_table(tables, tmp, compression="zstd")
            else:
                with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
                    for t in tables:
                        w.write_table(t)

    def writing(self, hidden: bool = False, durable: bool = True) -> "PendingFile":
        """A context manager giving a local temporary path to write this file at: on success
        it becomes this file (renamed into place after an fsync; uploaded, for a remote
        Location), on error it is removed. ``hidden`` names the local temporary
        ``.NAME.HEX.tmp`` so that a leftover is never taken for data."""
        return PendingFile(self, hidden, durable)

    def delete(self, missing_ok: bool = True) -> None:
        if self.remote:
            delete(self.path, missing_ok)
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise StorageError(f"{self.shown}: no such file") from None
        except OSError as e:
            raise _os_error(self, e, "cannot delete") from e

    def remove_temporaries(self) -> None:
        """Hidden temporary files (``.NAME.HEX.tmp``) a killed process left below this
        directory. A remote directory has none: its outputs are staged in local files."""
        if not self.remote and os.path.isdir(self.path):
            for p in Path(self.path).rglob(".*.tmp"):
                p.unlink(missing_ok=True)


class PendingFile:
    """See :meth:`Location.writing`."""

    def __init__(self, target: Location, hidden: bool, durable: bool = True):
        self.target, self.hidden, self.durable = target, hidden, durable
        self.temp: str | None = None

    def __enter__(self) -> str:
        t = self.target
        try:
            if t.remote:
                fd, self.temp = tempfile.mkstemp(prefix=".contamscan-", suffix=".tmp")
                os.close(fd)
            else:
                parent = os.path.dirname(os.path.abspath(t.path))
                os.makedirs(parent, exist_ok=True)
                self.temp = self._reserve(parent, os.path.basename(t.path))
        except OSError as e:
            raise _os_error(t, e, "cannot create a temporary file") from e
        return self.temp

    def _reserve(self, parent: str, name: str) -> str:
        if not self.hidden:
            path = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
            return path
        while True:  # O_EXCL, mode 0666: the umask applies as for any other file
            path = os.path.join(parent, f".{name}.{secrets.token_hex(6)}.tmp")
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return path
            except FileExistsError:
                continue

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.discard()
        if isinstance(exc, OSError):  # writing the file failed (a full disk, a read-only one): say which, and why
            raise OutputWriteError(f"{self.target.shown}: cannot write: {exc.strerror or exc}") from exc

    def commit(self) -> None:
        t = self.target
        if t.remote:
            upload(self.temp, t.path)
            return
        try:
            if self.durable:  # on disk before the rename, so a crash cannot leave a complete-looking empty file
                fd = os.open(self.temp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(self.temp, t.path)
            self.temp = None
            if self.durable:
                fsync_dir(os.path.dirname(os.path.abspath(t.path)))  # the rename itself survives a crash
        except OSError as e:
            raise OutputWriteError(f"{t.shown}: cannot write: {e.strerror or e}") from e

    def discard(self) -> None:
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None


def fsync_dir(path: str) -> None:
    """Flush a local directory's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _glob_base(pattern: str) -> str:
    """The fixed directory prefix of a local glob pattern (the part before the first magic)."""
    fixed: list[str] = []
    for part in pattern.replace(os.sep, "/").split("/")[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    if not fixed:
        return os.curdir
    return "/".join(fixed) or "/"
