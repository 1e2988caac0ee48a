import math

import pytest

from contamscan.report.stats import wilson


def test_wilson_known_values():
    # reference values computed from the closed form (Wilson 1927), z = 1.959964
    lo, hi = wilson(10, 100)
    assert lo == pytest.approx(0.0552291, abs=1e-6) and hi == pytest.approx(0.1743657, abs=1e-6)
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and hi == pytest.approx(0.0713476, abs=1e-6)
    lo, hi = wilson(50, 50)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.0713476, abs=1e-6)
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_covers_the_truth_at_about_95_percent():
    """Coverage over a grid of true rates: the interval's promise, checked by simulation."""
    import numpy as np

    rng = np.random.default_rng(0)
    for p in (0.01, 0.05, 0.2, 0.5):
        n = 400
        ks = rng.binomial(n, p, size=4000)
        covered = sum(lo <= p <= hi for lo, hi in (wilson(int(k), n) for k in ks))
        assert 0.93 <= covered / len(ks) <= 0.975, (p, covered / len(ks))
