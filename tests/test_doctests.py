"""Every docstring example in the package runs (those that need data on disk are marked
``+SKIP``): the documented API says what it does."""

import doctest
import importlib
import pkgutil

import pytest

import contamscan

MODULES = sorted(m.name for m in pkgutil.walk_packages(contamscan.__path__, "contamscan.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
