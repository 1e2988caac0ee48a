"""The compiled kernels (contamscan.native): built once into a shared cache, loaded without
numba, checked against their signatures, the JIT where they cannot be built."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from contamscan import native
from contamscan.sketch import minhash

# a kernel module of its own (small: it compiles in seconds), in a package of its own
KERNELS = textwrap.dedent('''
    import numpy as np

    from contamscan.native import jit, kernel

    SCALE = 3


    @jit(inline="always")
    def _scaled(x):
        return SCALE * x


    @kernel("int64(int64[::1], int64)")
    def total(xs, offset=0):
        s = 0
        for i in range(xs.shape[0]):
            s += _scaled(xs[i])
        return s + offset


    @kernel("float64[::1](int64)")
    def ramp(n):
        out = np.empty(n)
        for i in range(n):
            out[i] = i / 2
        return out


    @kernel("int64(int64)")
    def spin(n):  # a loop long enough for two threads to overlap
        s = 0
        for i in range(n):
            s = (s * 31 + i) % 1000003
        return s
''')

# run in a child: total, ramp, whether numba was imported, and how far this thread counted
# while another ran a kernel (only if the kernel releases the GIL can it count at all)
CHILD = textwrap.dedent('''
    import json, sys, threading
    import numpy as np
    import tinykern.kernels as k
    out = {"total": k.total(np.arange(5, dtype=np.int64)), "offset": k.total(np.arange(5, dtype=np.int64), 10),
           "ramp": k.ramp(4).tolist()}
    out["numba"] = "numba" in sys.modules
    started = threading.Event()
    def work():
        started.set()
        k.spin(200_000_000)
    t = threading.Thread(target=work)
    t.start()
    started.wait()
    counted = 0
    while t.is_alive():
        counted += 1
    out["counted"] = counted
    print(json.dumps(out))
''')


@pytest.fixture
def tiny(tmp_path):
    pkg = tmp_path / "src" / "tinykern"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels.py").write_text(KERNELS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "src"), *sys.path]),
               CONTAMSCAN_KERNEL_CACHE=str(tmp_path / "cache"))
    env.pop("CONTAMSCAN_KERNELS", None)
    return tmp_path, env


def _run(env, code=CHILD):
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_built_once_for_concurrent_processes_then_loaded_without_numba(tiny):
    import json

    tmp, env = tiny
    procs = [_run(env) for _ in range(2)]  # both find the cache empty: one builds, the other waits for it
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    for r in results:
        assert (r["total"], r["offset"], r["ramp"]) == (30, 40, [0.0, 0.5, 1.0, 1.5])
        assert not r["numba"]
    assert sum(o[1].count("compiling the kernels of tinykern.kernels") for o in outs) == 1
    assert len(list((tmp / "cache").glob("cs_kernels_*.so"))) == 1
    # loaded from the cache by a later process: no build, and the entry points release the GIL
    p = _run(env)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0 and "compiling" not in err
    assert json.loads(out)["counted"] > 10_000


def test_a_changed_constant_is_a_new_entry(tiny):
    tmp, env = tiny
    for scale, want in (("3", "30"), ("5", "50")):
        src = tmp / "src" / "tinykern" / "kernels.py"
        src.write_text(KERNELS.replace("SCALE = 3", f"SCALE = {scale}"))
        code = "import numpy as np, tinykern.kernels as k; print(k.total(np.arange(5, dtype=np.int64)))"
        p = _run(env, code)
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert out.strip() == want
    assert len(list((tmp / "cache").glob("cs_kernels_*.so"))) == 2


def test_no_compiler_falls_back_to_the_jit_with_a_warning(tiny):
    tmp, env = tiny
    env = dict(env, CC="/bin/false", LDSHARED="/bin/false")
    code = "import numpy as np, tinykern.kernels as k; print(k.total(np.arange(5, dtype=np.int64)))"
    for attempt in range(2):
        p = _run(env, code)
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert out.strip() == "30"
        assert "could not be built" in err and "JIT" in err
        assert ("compiling the kernels" in err) == (attempt == 0)  # the failure is remembered
    assert list((tmp / "cache").glob("*.failed"))


def test_an_unwritable_cache_falls_back_to_the_jit(tiny):
    tmp, env = tiny
    (tmp / "not-a-dir").write_text("")
    env = dict(env, CONTAMSCAN_KERNEL_CACHE=str(tmp / "not-a-dir" / "kernels"))
    p = _run(env, "import numpy as np, tinykern.kernels as k; print(k.total(np.arange(5, dtype=np.int64)))")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert out.strip() == "30"
    assert "could not be built or loaded" in err and "CONTAMSCAN_KERNEL_CACHE" in err


def test_arguments_are_checked_against_the_signature(monkeypatch):
    texts = ["a short text to hash", "another one"]
    sigs = minhash.Hasher(16).signatures(texts).values
    offsets = np.array([0, 3], np.int32)  # the signature says int64
    data = np.frombuffer(b"abc", np.uint8)
    monkeypatch.setenv("CONTAMSCAN_KERNELS_STRICT", "1")
    with pytest.raises(TypeError, match=r"_char_offsets: argument 1: int32\[1d, C\], the signature has int64"):
        minhash._char_offsets(data, offsets, *(np.zeros(1, np.int64) for _ in range(6)))
    assert sigs.shape == (2, 16)


def test_signature_parsing():
    args = native._parse_args("UniTuple(int64, 3)(uint8[::1], float64[:, :], int64, boolean, uint16[:, ::1])")
    assert args[0] == (np.dtype(np.uint8), 1, True)
    assert args[1] == (np.dtype(np.float64), 2, False)
    assert args[4] == (np.dtype(np.uint16), 2, True)
    assert native._mismatch((np.zeros(2, np.uint8), np.zeros((2, 2)).T, 1, True, np.zeros((1, 1), np.uint16)),
                            args) is None
    assert "argument 2" in native._mismatch((np.zeros(2, np.uint8), np.zeros((2, 2)), 1.5, True,
                                             np.zeros((1, 1), np.uint16)), args)


def test_entries_depend_on_imported_sources_not_on_the_path():
    files = {p.name for p in native._sources("contamscan.sketch.minhash")}
    assert {"minhash.py", "lsh.py", "text.py", "confusables.py", "native.py"} <= files
    assert "cache.py" not in files  # what native.py imports is not compiled into kernels
    assert native._entry_name("contamscan.sketch.minhash") == native._entry_name("contamscan.sketch.minhash")
    assert str(Path(__file__).parent) not in native._entry_name("contamscan.sketch.minhash")
