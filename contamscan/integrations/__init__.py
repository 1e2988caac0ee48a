"""Adapters for the frameworks people already run their corpora through, each an optional
extra: :mod:`.datatrove` (``pip install 'contamscan[datatrove]'``), a datatrove filter step,
and :mod:`.hf` (``pip install 'contamscan[hf]'``), a ``datasets.map`` function. Both are
shells over :class:`contamscan.Matcher`, so they flag exactly what ``contamscan scan`` flags.
Nothing here is imported by ``import contamscan``: the frameworks stay optional."""
