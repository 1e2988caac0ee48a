"""hf:// paths: the Hugging Face Hub through huggingface_hub's HfFileSystem (the [hf] extra).
Offline: the message naming the extra when it is missing, and how a path maps into the file
system (no request is made)."""

import subprocess
import sys

import pytest

from contamscan.errors import StorageError
from contamscan.io import location


@pytest.fixture
def fresh_filesystems(monkeypatch):
    monkeypatch.setattr(location, "_FILESYSTEMS", {})


def test_missing_extra_is_named(fresh_filesystems, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed: import fails
    with pytest.raises(StorageError, match=r"hf://datasets: hf:// paths need huggingface_hub, which is not "
                                           r"installed: pip install 'contamscan\[hf\]'"):
        location.resolve("hf://datasets/org/name/data/train.parquet")


def test_missing_extra_on_the_command_line(tmp_path):
    code = ("import sys; sys.modules['huggingface_hub'] = None; from contamscan.cli import main; "
            "sys.argv = ['contamscan', 'index', 'build', 'hf://datasets/org/name', '-o', 'x']; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert "pip install 'contamscan[hf]'" in r.stderr and "Traceback" not in r.stderr


def test_paths_map_into_hffilesystem(fresh_filesystems):
    pytest.importorskip("huggingface_hub")
    fs, path = location.resolve("hf://datasets/org/name/data/train-00000-of-00001.parquet")
    assert path == "datasets/org/name/data/train-00000-of-00001.parquet"
    assert "HfFileSystem" in type(fs.handler.fs).__name__
    assert location.display("hf://datasets/org/name/data/x.parquet?token=secret") == "hf://datasets/org/name/data/x.parquet"
