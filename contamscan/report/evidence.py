"""Evidence for people: a shard's strongest matches, with the document's text around the
matched span beside the reference's text, and the text they share marked.

The document text is only at hand while its batch is scanned, so each shard keeps, as it
streams, its top ``k`` matches in the order of report.json's ``top_matches``
(:func:`match_order`: containment, then similarity, descending; row ascending) with an
excerpt of each document. When the shard is done, each excerpt is paired with an excerpt of
its reference (from the index's stored texts) chosen to hold the most shingles the two
share, and the shared text is found: the word ``ngram``-grams (shingles, as the scan
normalises them) present in both excerpts, as character spans of each excerpt.

The rows are written as ``evidence.parquet`` (:data:`EVIDENCE_SCHEMA`), so that the HTML
report can be rendered again from the output directory alone. Offsets are in characters:
``doc_excerpt`` is ``text[doc_excerpt_start:doc_excerpt_start + len(doc_excerpt)]`` and the
matched span inside it is ``char_start - doc_excerpt_start`` to ``char_end - doc_excerpt_start``
(clipped to the excerpt when the span is longer than an excerpt).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from ..model import EVIDENCE_SCHEMA, empty, match_order, numpy_of

EXCERPT_CHARS = 1500  # longest excerpt, on each side
LEAD_CHARS = 200  # context kept before a span too long to show whole
SNAP_CHARS = 40  # how far an excerpt's end may move to fall between words
NOT_STORED = ("the index does not store reference texts: rebuild it with `contamscan index build --store-text` "
              "to see the reference excerpt and the shared text")

_MATCH_FIELDS = ("row", "doc_id", "ref_id", "label", "kind", "similarity", "containment", "ambiguous", "alt_ref_id",
                 "alt_label", "char_start", "char_end")
_SPACE = re.compile(r"\s")


# --------------------------------------------------------------------------- excerpts


def window(n: int, start: int, end: int, budget: int = EXCERPT_CHARS, lead: int = LEAD_CHARS) -> tuple[int, int]:
    """``[lo, hi)`` of at most ``budget`` characters of a text of ``n`` around ``[start, end)``:
    the span centred in its context when it fits, else its beginning after ``lead`` characters
    (from the text's beginning when that is only a few characters before)."""
    start = max(0, min(start, n))
    end = max(start, min(end, n))
    if end - start <= budget:
        lo = max(0, start - (budget - (end - start)) // 2)
        hi = min(n, lo + budget)
        lo = max(0, hi - budget)
    else:
        lo = max(0, start - lead)
        hi = min(n, lo + budget)
    if 0 < lo <= SNAP_CHARS:  # a few characters from the beginning: show the beginning
        lo, hi = 0, min(n, budget)
    return lo, hi


def snap(text: str, lo: int, hi: int, keep_lo: int, keep_hi: int) -> tuple[int, int]:
    """Move the ends of ``text[lo:hi]`` a little inwards so that they do not cut a word, without
    entering ``[keep_lo, keep_hi)``."""
    if 0 < lo < keep_lo and not text[lo - 1].isspace():
        m = _SPACE.search(text, lo, min(keep_lo, lo + SNAP_CHARS))
        if m:
            lo = m.end()
    if max(lo, keep_hi) < hi < len(text) and not text[hi].isspace():
        for j in range(hi - 1, max(lo, keep_hi, hi - SNAP_CHARS) - 1, -1):
            if text[j].isspace():
                hi = j
                break
    return lo, hi


def doc_excerpt(text: str, char_start: int | None, char_end: int | None) -> tuple[int, str]:
    """(start, excerpt) of a document around its matched span (the whole text when there is
    no span: a whole-document match of a text too short to hold anchors)."""
    s, e = (0, len(text)) if char_start is None or char_end is None else (char_start, char_end)
    lo, hi = window(len(text), s, e)
    lo, hi = snap(text, lo, hi, s, min(e, hi))
    return lo, text[lo:hi]


def _char_of_byte(text: str) -> np.ndarray:
    """c[b] = characters before byte b of the UTF-8 text (b on a character boundary)."""
    b = np.frombuffer(text.encode("utf-8"), np.uint8)
    return np.concatenate([[0], np.cumsum((b & 0xC0) != 0x80)]).astype(np.int64)


def _merge(starts: np.ndarray, ends: np.ndarray, offset: int = 0) -> list[dict]:
    """Overlapping spans merged, in order, as [{"start", "end"}] shifted by -offset."""
    out: list[list[int]] = []
    for s, e in sorted(zip(starts.tolist(), ends.tolist())):
        if out and s < out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [{"start": s - offset, "end": e - offset} for s, e in out]


def pair_excerpts(doc: str, ref: str, hasher, budget: int = EXCERPT_CHARS) -> dict:
    """The reference excerpt that best matches the document excerpt ``doc`` (the window of
    ``ref`` holding the most shingles of ``doc``), and the shared text of both.

    Returns ``ref_excerpt_start``, ``ref_excerpt``, ``doc_highlights``, ``ref_highlights``
    (merged character spans of the shingles present in both excerpts) and ``shared_shingles``.
    """
    sh = hasher.shingles([doc, ref])
    in_doc = sh.doc == 0
    d_key, r_key = sh.key[in_doc], sh.key[~in_doc]
    dc, rc = _char_of_byte(doc), _char_of_byte(ref)
    d0, d1 = dc[sh.start[in_doc]], dc[sh.stop[in_doc]]
    r0, r1 = rc[sh.start[~in_doc]], rc[sh.stop[~in_doc]]
    # the window of the reference with the most shingles shared with the document excerpt
    shared = np.isin(r_key, d_key)
    s, e = r0[shared], r1[shared]  # in text order: starts and ends are non-decreasing
    if len(s):
        reach = np.searchsorted(e, s + budget, side="right")
        i = int(np.argmax(reach - np.arange(len(s))))
        first, last = int(s[i]), int(e[reach[i] - 1])
    else:
        first = last = 0
    lo, hi = window(len(ref), first, last, budget)
    lo, hi = snap(ref, lo, hi, first, min(last, hi))
    # shared text: the shingles of both excerpts (the reference's that lie inside its excerpt)
    inside = (r0 >= lo) & (r1 <= hi)
    common = np.intersect1d(d_key, r_key[inside])
    d_hit = np.isin(d_key, common)
    r_hit = inside & np.isin(r_key, common)
    return {
        "ref_excerpt_start": lo,
        "ref_excerpt": ref[lo:hi],
        "doc_highlights": _merge(d0[d_hit], d1[d_hit]),
        "ref_highlights": _merge(r0[r_hit], r1[r_hit], lo),
        "shared_shingles": int(len(common)),
    }


# --------------------------------------------------------------------------- per shard


class EvidenceKeeper:
    """The top ``k`` matches of one shard, with document excerpts, kept as batches stream by."""

    def __init__(self, k: int, index, hasher):
        self.k, self.index, self.hasher = k, index, hasher
        self.items: list[tuple[tuple, dict]] = []  # (order key, row) best first

    def offer(self, part: pa.Table, texts, local: np.ndarray, refs: np.ndarray) -> None:
        """Consider a batch's matches ``part`` (rows of matches.parquet); ``local[i]`` is the
        batch position of match ``i``'s document in ``texts`` and ``refs[i]`` its reference."""
        if self.k <= 0 or part.num_rows == 0:
            return
        cont = numpy_of(part.column("containment"))
        sim = numpy_of(part.column("similarity"))
        rows = numpy_of(part.column("row"))
        best = np.lexsort((rows, -sim, -cont))[: self.k]
        worst = self.items[-1][0] if len(self.items) >= self.k else None
        take = []
        for i in best.tolist():
            key = match_order(float(cont[i]), float(sim[i]), int(rows[i]))
            if worst is not None and key >= worst:
                break
            take.append((i, key))
        if not take:
            return
        records = part.take(pa.array([i for i, _ in take], pa.int64())).select(list(_MATCH_FIELDS)).to_pylist()
        for (i, key), rec in zip(take, records):
            text = texts[int(local[i])].as_py()
            start, excerpt = doc_excerpt(text, rec["char_start"], rec["char_end"])
            rec.update(doc_chars=len(text), doc_excerpt_start=start, doc_excerpt=excerpt, _ref=int(refs[i]))
            self.items.append((key, rec))
        self.items.sort(key=lambda kv: kv[0])
        del self.items[self.k:]

    def rows(self, shard: str) -> tuple[dict, ...]:
        """The evidence rows of the shard (EVIDENCE_SCHEMA fields, JSON-serialisable)."""
        texts = self.index.texts if self.index is not None else None
        out = []
        for rank, (_, rec) in enumerate(self.items):
            rec = dict(rec)
            ref = rec.pop("_ref")
            row = {"shard": shard, "rank": rank, **rec}
            if texts is not None:
                ref_text = texts[ref].as_py()
                row.update(ref_chars=len(ref_text), note=None, **pair_excerpts(rec["doc_excerpt"], ref_text, self.hasher))
            else:
                row.update(ref_chars=None, ref_excerpt_start=None, ref_excerpt=None, doc_highlights=[],
                           ref_highlights=[], shared_shingles=None, note=NOT_STORED)
            out.append({name: row[name] for name in EVIDENCE_SCHEMA.names})
        return tuple(out)


def evidence_table(results) -> pa.Table:
    """evidence.parquet: the evidence rows of every shard, in shard order then rank."""
    rows = [row for r in results for row in getattr(r, "evidence", ())]
    return pa.Table.from_pylist(rows, schema=EVIDENCE_SCHEMA) if rows else empty(EVIDENCE_SCHEMA)


__all__ = ["EvidenceKeeper", "evidence_table", "pair_excerpts", "doc_excerpt"]
