"""LSH bands: contamscan chooses (bands, rows) itself, without scipy, and the choice equals
datasketch's MinHashLSH for every threshold and number of permutations tried."""

import subprocess
import sys

import pytest
from datasketch.lsh import _optimal_param

from contamscan.sketch.lsh import optimal_bands


@pytest.mark.parametrize("num_perm", [16, 32, 64, 100, 128, 256])
def test_bands_equal_datasketch(num_perm):
    for threshold in [i / 20 for i in range(1, 20)] + [0.33, 0.42, 0.77, 0.9, 0.95]:
        assert optimal_bands(threshold, num_perm) == tuple(_optimal_param(threshold, num_perm, 0.5, 0.5)), threshold


def test_scanning_does_not_import_datasketch_or_scipy_integrate():
    """The choice of bands was datasketch's private _optimal_param, which imports
    scipy.integrate (a third of a second at start-up): a scan needs neither. (numba itself
    imports scipy's top-level package when it is installed, which costs milliseconds.)"""
    code = ("import sys, contamscan; from contamscan.sketch.lsh import optimal_bands; optimal_bands(0.5, 128); "
            "import contamscan.scanner.run, contamscan.cli; "
            "print('scipy.integrate' in sys.modules, 'datasketch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]


def test_bad_threshold():
    with pytest.raises(ValueError):
        optimal_bands(1.0, 128)
