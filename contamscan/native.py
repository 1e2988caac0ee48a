"""Compiled kernels without numba at run time: each kernel module is compiled ahead of time
into an extension module, cached on disk, which a process imports in milliseconds.

A process that calls a numba function pays for numba twice before the first result: its
import (~0.3 s) and its compiler's set-up on the first call, even from numba's own cache
(~0.6 s; it imports scipy too). A one-document scan spent a second there. So the kernels
are compiled once per machine and source version with numba's ahead-of-time compiler
(``numba.pycc``) and imported as plain extension modules; numba is imported only to build
them, or when that is not possible (no C compiler: then the kernels run JIT-compiled, as
before, with a warning).

A kernel module marks what Python calls with :func:`kernel` and an explicit signature (the
entry points of the extension module), and the compiled functions that only kernels call
with :func:`jit`::

    from ..native import jit, kernel

    @jit(inline="always")
    def _twice(x):
        return 2 * x

    @kernel("int64(int64[::1])")
    def total(xs):
        s = 0
        for i in range(xs.shape[0]):
            s += _twice(xs[i])
        return s

The cache (``$CONTAMSCAN_KERNEL_CACHE``, else ``kernels/`` in contamscan's cache directory)
holds one file per kernel module, named by a digest of the sources it is compiled from
(the module and every contamscan module it imports), the numba, Python and platform
versions and the CPU's features (the code is compiled for this CPU). So processes, copies
of the sources under other paths or module names, and machines sharing a home directory
share entries safely; a build takes a file lock and publishes with a rename, so concurrent
processes compile once. ``CONTAMSCAN_KERNELS=jit`` runs everything through numba's JIT
instead (to debug a kernel).

Arguments are checked against the signature before a compiled kernel is called (a wrong
dtype would otherwise be read as the declared one): a mismatch runs that call through the
JIT with a warning, or raises ``TypeError`` under ``CONTAMSCAN_KERNELS_STRICT=1`` (the
tests set it: a signature that does not fit its callers is a bug).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .io.cache import _Lock, cache_root

_LOCK = threading.RLock()
_FUNCTIONS: list[Function] = []  # every function declared, in declaration order
_JIT = {"on": os.environ.get("CONTAMSCAN_KERNELS", "aot") == "jit"}
_BUILD_TIMEOUT = 1800  # seconds: a cold build of one module takes ~10-60 s


class Function:
    """A compiled function as declared; calling it runs its compiled form (module doc)."""

    def __init__(self, py, options: dict, signature: str | None):
        self.py, self.options, self.signature = py, options, signature
        self.__name__, self.__qualname__, self.__doc__ = py.__name__, py.__qualname__, py.__doc__
        self.__module__, self.__wrapped__ = py.__module__, py
        self.args = _parse_args(signature) if signature else None
        self.impl = None
        self.dispatcher = None
        _FUNCTIONS.append(self)

    def __call__(self, *args):
        impl = self.impl
        if impl is None:
            impl = self._resolve()
        return impl(*args)

    def __repr__(self) -> str:
        return f"<contamscan kernel {self.__module__}.{self.__name__}>"

    def _resolve(self):
        with _LOCK:
            if self.impl is None:
                if self.signature is None:
                    # a helper called from Python: its body is numpy-compatible Python
                    self.impl = self.py if not _JIT["on"] else _jit(self)
                elif _JIT["on"]:
                    self.impl = _jit(self)
                else:
                    _load(self.__module__)
            return self.impl


def jit(fn=None, **options):
    """A compiled function that kernels call (``inline="always"`` for small helpers). Called
    from Python it runs as the Python function (the helpers called so work on numpy values)."""
    if fn is None:
        return lambda f: Function(f, options, None)
    return Function(fn, options, None)


def kernel(signature: str, **options):
    """An entry point: compiled ahead of time with ``signature`` (numba's syntax, return type
    first; arrays ``int64[::1]`` contiguous, ``uint16[:, ::1]`` two-dimensional)."""
    return lambda f: Function(f, options, signature)


# --------------------------------------------------------------------------- signatures

_DTYPES = {n: np.dtype(n) for n in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                                    "float32", "float64")}
_DTYPES["boolean"] = np.dtype(np.bool_)
_SCALARS = {**{n: (int, np.integer) for n in _DTYPES if "int" in n},
            "float64": (float, int, np.floating, np.integer), "float32": (float, int, np.floating, np.integer),
            "boolean": (bool, np.bool_)}


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in s:
        depth += c in "([" and 1 or 0
        depth -= c in ")]" and 1 or 0
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        out.append(cur.strip())
    return out


def _parse_args(signature: str) -> list[tuple]:
    """The argument types of a signature as (dtype, ndim, contiguous) for arrays, (kinds,)
    for scalars."""
    sig = " ".join(signature.split())
    depth = 0
    for i in range(len(sig) - 1, -1, -1):  # the argument list is the last top-level (...)
        depth += sig[i] == ")"
        depth -= sig[i] == "("
        if depth == 0:
            break
    out = []
    for a in _split_top(sig[i + 1:-1]):
        m = re.fullmatch(r"(\w+)\[(.*)\]", a)
        if m:
            dims = [d.strip() for d in m.group(2).split(",")]
            out.append((_DTYPES[m.group(1)], len(dims), dims[-1] == "::1"))
        else:
            out.append((_SCALARS[a],))
    return out


def _mismatch(args, spec) -> str | None:
    if len(args) != len(spec):
        return f"{len(args)} arguments, the signature has {len(spec)}"
    for i, (a, s) in enumerate(zip(args, spec)):
        if len(s) == 3:
            if not isinstance(a, np.ndarray) or a.dtype != s[0] or a.ndim != s[1] or \
                    (s[2] and not a.flags.c_contiguous):
                got = f"{a.dtype}[{a.ndim}d{', C' if a.flags.c_contiguous else ''}]" \
                    if isinstance(a, np.ndarray) else type(a).__name__
                want = f"{s[0]}[{s[1]}d{', C' if s[2] else ''}]"
                return f"argument {i}: {got}, the signature has {want}"
        elif not isinstance(a, s[0]):
            return f"argument {i}: {type(a).__name__}"
    return None


def _checked(fn: Function, compiled):
    spec = fn.args
    defaults = fn.py.__defaults__ or ()
    required = len(spec) - len(defaults)

    def call(*args):
        if required <= len(args) < len(spec):  # compiled functions take every argument
            args = args + defaults[len(args) - required:]
        why = _mismatch(args, spec)
        if why is None:
            return compiled(*args)
        if os.environ.get("CONTAMSCAN_KERNELS_STRICT") == "1":
            raise TypeError(f"{fn.__module__}.{fn.__name__}: {why}")
        warnings.warn(f"{fn.__module__}.{fn.__name__} called off its signature ({why}): this call is JIT-compiled",
                      RuntimeWarning, stacklevel=3)
        return _jit(fn)(*args)

    return call


# --------------------------------------------------------------------------- the JIT


def _jit(fn: Function):
    """``fn``'s numba dispatcher; the first call makes every declared function one, and
    binds the module globals that name them to the dispatchers (compiled code calls
    through globals)."""
    with _LOCK:
        if fn.dispatcher is None:
            import numba  # noqa: PLC0415 (the fallback: not imported unless needed)

            for f in _FUNCTIONS:
                if f.dispatcher is None:
                    opts = f.options if "inline" in f.options else {"cache": True, "nogil": True, **f.options}
                    f.dispatcher = numba.njit(**opts)(f.py)
            _bind(lambda f: f.dispatcher)
        return fn.dispatcher


def _bind(value) -> None:
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        for k, v in list(d.items()):
            if isinstance(v, Function):
                d[k] = value(v)


# --------------------------------------------------------------------------- ahead of time


def cache_dir() -> Path:
    """Where compiled kernel modules are kept."""
    env = os.environ.get("CONTAMSCAN_KERNEL_CACHE", "")
    return Path(env) if env else cache_root() / "kernels"


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, found without importing it."""
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__file__", None):
        return Path(mod.__file__).resolve()
    top = sys.modules.get(name.split(".")[0])
    if top is None or not getattr(top, "__file__", None) or Path(top.__file__).name != "__init__.py":
        return None
    base = Path(top.__file__).resolve().parent.joinpath(*name.split(".")[1:])
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


# a top-level relative import (a kernel module's imports are all at its top)
_IMPORT = re.compile(r"^from (\.+)([\w.]*) import (\([^)]*\)|[^\n]*)", re.M)


def _sources(module: str) -> list[Path]:
    """The module's file and those of the contamscan modules it imports, transitively: what
    its compiled form depends on (kernels fold imported constants into the code). This
    module is among them, not what it imports (the cache's location)."""
    seen: dict[str, Path] = {__name__: Path(__file__).resolve()}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for dots, rel, names in _IMPORT.findall(path.read_text(encoding="utf-8")):
            base = pkg[: len(pkg) - (len(dots) - 1)] + (rel.split(".") if rel else [])
            if rel:
                todo.append(".".join(base))
            # `from . import submodule`: the names that are modules
            todo += [".".join(base + [n.split()[0]]) for n in names.strip("()").split(",") if n.strip()]
    return [seen[k] for k in sorted(seen)]


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read(1 << 16)
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _numba_version() -> str:
    spec = importlib.util.find_spec("numba")
    if spec is None or spec.origin is None:
        return "none"
    version_file = Path(spec.origin).parent / "_version.py"
    return version_file.read_text(encoding="utf-8") if version_file.is_file() else spec.origin


def _entry_name(module: str) -> str:
    h = hashlib.sha256()
    for p in _sources(module):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for part in (_numba_version(), sys.version, platform.platform(), _cpu(), str(np.__version__)):
        h.update(part.encode() + b"\0")
    return f"cs_{module.split('.', 1)[-1].replace('.', '_')}_{h.hexdigest()[:20]}"


def _load(module: str) -> None:
    """Import ``module``'s compiled kernels (building them first if need be) and make them
    the implementation of its entry points; the JIT where they cannot be built."""
    name = _entry_name(module)
    root = cache_dir()
    path = root / (name + importlib.machinery.EXTENSION_SUFFIXES[0])
    failed = root / (name + ".failed")
    entries = [f for f in _FUNCTIONS if f.__module__ == module and f.signature]
    try:
        if not path.exists() and not failed.exists():
            root.mkdir(parents=True, exist_ok=True)
            with _Lock(root / (name + ".lock")):
                if not path.exists() and not failed.exists():
                    _build(module, name, path, failed)
        if path.exists():
            spec = importlib.util.spec_from_file_location(name, path)
            ext = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(ext)
            for f in entries:
                f.impl = _checked(f, getattr(ext, f.__name__))
            return
        why = failed.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        why = f"{''.join(why) or 'unknown error'}; details in {failed}; delete it to try again"
    except (OSError, ImportError, AttributeError) as e:  # an unwritable cache, a damaged entry
        why = f"{type(e).__name__}: {e}; set CONTAMSCAN_KERNEL_CACHE to a writable directory"
    warnings.warn(f"the compiled kernels of {module} could not be built or loaded ({why}): they run "
                  "JIT-compiled, which adds ~1 s to every start", RuntimeWarning, stacklevel=4)
    for f in entries:
        f.impl = _jit(f)


def _build(module: str, name: str, path: Path, failed: Path) -> None:
    """Compile ``module``'s entry points into ``path``, in a child process (numba and the
    compiler stay out of this one); a failure is recorded in ``failed``."""
    print(f"contamscan: compiling the kernels of {module} for this machine (once per version, ~30 s)",
          file=sys.stderr, flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if isinstance(p, str)))
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        code = "import sys; from contamscan.native import _build_main; _build_main(*sys.argv[1:])"
        try:
            proc = subprocess.run([sys.executable, "-c", code, module, name, tmp], env=env, capture_output=True,
                                  text=True, timeout=_BUILD_TIMEOUT)
            out, ok = proc.stderr + proc.stdout, proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as e:
            out, ok = str(e), False
        built = Path(tmp) / path.name
        if ok and built.exists():
            os.replace(built, path)
        else:
            failed.write_text(out or "the build wrote no module", encoding="utf-8")


def _build_main(module: str, name: str, out_dir: str) -> None:
    """In the child: compile the entry points of ``module`` into ``out_dir/name``."""
    import importlib  # noqa: PLC0415

    import numba.pycc.compiler  # noqa: PLC0415 (only in the build's child)
    from numba.pycc import CC  # noqa: PLC0415

    class ReleaseGil(numba.pycc.compiler.Flags):  # pycc's wrappers keep the GIL: release it, as nogil=True does
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    numba.pycc.compiler.Flags = ReleaseGil

    mod = importlib.import_module(module)
    entries = [f for f in _FUNCTIONS if f.__module__ == module and f.signature]
    _jit(entries[0])  # every declared function a dispatcher, and the globals bound to them
    cc = CC(name, source_module=mod)
    cc.output_dir = out_dir
    cc.target_cpu = "host"  # the entry's name includes the CPU's features
    for f in entries:
        cc.export(f.__name__, f.signature)(f.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation: the JIT is the fallback
        cc.compile()


def kernel_modules() -> list[str]:
    """The modules of this package that declare kernels (found by their import of this one)."""
    root = Path(__file__).resolve().parent
    pattern = re.compile(r"^from \.+native import ", re.M)
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name != "native.py" and pattern.search(path.read_text(encoding="utf-8")):
            rel = path.relative_to(root.parent).with_suffix("")
            found.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return found


def build_all() -> list[str]:
    """Build the compiled kernels of every kernel module that has none in the cache yet, the
    builds side by side; ``make install`` runs it, so that no first scan waits for them (a
    container image can too: ``python -c "import contamscan.native as n; n.build_all()"``).
    Returns the modules."""
    import importlib  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    modules = kernel_modules()
    for m in modules:
        importlib.import_module(m)
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:  # each build is a child process
        list(pool.map(_load, modules))
    return modules

