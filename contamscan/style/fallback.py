"""A broad human fallback component for a profile: English word frequencies from the
``wordfreq`` package (Wikipedia, subtitles, news, books, web text and more), turned into the
window occurrence rates the profile's components are made of.

Why: a profile's human baseline holds only the genres it was built from, and human text of
another genre (encyclopaedia articles, news summaries against a baseline of essays and
speeches) then fits some AI component better than any human one and reads as AI. A component
that knows how often each word is used across a broad mix of human text gives such documents
a human home. On bench_attribution's human sources left out in turn it took the out-of-domain
errors above 0.05 from 12 to 8 (wikitext and xsum: 0.10–0.19 to 0.00–0.03) and left the
in-domain figures unchanged (README, "Style benchmark").

How: a word of token frequency ``f`` occurs in a window of ``L`` words with probability
``1 - exp(-k L f)`` if words were drawn independently; real words cluster (a word used once
tends to be used again), so fewer windows hold it, which the factor ``k`` absorbs: one per
window length, the median ratio of the profile's own human rate to ``L f`` over the
vocabulary. A word wordfreq does not know takes the profile's human rate. The component is
stored like any other (``PSEUDO_WINDOWS`` windows' worth of counts) and is a human component
of α; it is left out of the pooled rate the other components are smoothed toward (they stay
exactly what they are in a profile without it), of the baseline rate that fingerprints and
trees compare with, and of the fit table of the build's calibration (it has no documents to be
compared with), so a document it explains best is still measured against the baseline.

Example:
    >>> import numpy as np
    >>> rates = fallback_rates(["the", "delve"], (16, 64), np.array([[0.5, 1e-4], [0.9, 4e-4]]))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..errors import ContamscanError

NAME = "wordfreq:en"  # the component's name in a profile
PSEUDO_WINDOWS = 2000.0  # its weight as counts: enough that the profile's smoothing barely moves it
CHOICES = ("auto", "wordfreq", "none")


def available() -> bool:
    try:
        import wordfreq  # noqa: F401, PLC0415 (optional: the style extra)
    except ImportError:
        return False
    return True


def resolve(choice: str) -> str | None:
    """The fallback a build uses: "wordfreq", or None. "auto" is wordfreq when it is installed."""
    if choice not in CHOICES:
        raise ContamscanError(f"`fallback` must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "none" or (choice == "auto" and not available()):
        return None
    if not available():
        raise ContamscanError("`fallback` 'wordfreq' needs the wordfreq package: pip install 'contamscan[style]'")
    return "wordfreq"


def fallback_rates(words: list, windows, human_rate: np.ndarray) -> np.ndarray:
    """Window occurrence rates [len(windows), len(words)] of the vocabulary ``words`` (normalised
    spellings) from wordfreq's English frequencies, scaled per window length to the profile's
    human rates ``human_rate`` [windows, vocab] (module doc)."""
    import wordfreq  # noqa: PLC0415 (optional)

    f = np.array([wordfreq.word_frequency(w, "en") if w and not w.startswith("#") else 0.0 for w in words])
    known = f > 0
    rates = np.array(human_rate, np.float64, copy=True)
    for b, length in enumerate(windows):
        hr = np.clip(human_rate[b], 1e-9, 1 - 1e-9)
        use = known & (hr > 1e-6)
        k = float(np.exp(np.median(np.log(hr[use]) - np.log(length * f[use])))) if use.any() else 1.0
        rates[b, known] = 1.0 - np.exp(-k * length * f[known])
    return np.clip(rates, 1e-9, 1 - 1e-9)


def version() -> str:
    from importlib.metadata import version as v  # noqa: PLC0415

    return f"wordfreq {v('wordfreq')} (en)"
