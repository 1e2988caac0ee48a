"""Text → normalised words → shingles → 32-bit shingle hashes.

Normalisation (version 2, ``NORMALIZATION``, recorded in every index manifest and style
profile; one made with another version is refused):

1. HTML/XML tags (``<p>``, ``</div>``, ``<!-- … -->`` up to 256 bytes, within one line) and
   character entities (``&amp;``, ``&#8217;``) become word separators.
2. Default-ignorable code points (:data:`DEFAULT_IGNORABLE`: soft hyphen, zero-width space
   and joiners, word joiner, byte-order mark, bidi controls, variation selectors, tags, Hangul
   fillers, …) are deleted: a word continues across them (``co\u00adpy`` is ``copy``), as a
   reader sees it. (Version 1 made them word breaks, so one zero-width space in every word
   changed every shingle.)
3. Each other code point is mapped on its own: Unicode compatibility decomposition (NFKD),
   case folding, the combining marks (categories Mn, Me) dropped, and a letter of another
   script that a reader takes for a Latin letter (Cyrillic ``а``, Greek ``ο``, Armenian
   ``օ``, …; :data:`contamscan.sketch.confusables.CONFUSABLE_LATIN`, from Unicode TR39's
   prototypes; three Greek symbols by how they look, not by their decomposition:
   :data:`~contamscan.sketch.confusables.READ_AS_WRITTEN`) replaced by that letter. This
   is NFKC plus case folding plus accent removal plus confusable folding, computed one code point at a time so that a compiled kernel can
   apply it from a table, and composed and decomposed input agree. Fullwidth and
   mathematical letters (``Ａ``, ``𝐚``) become ASCII by NFKD. Real Greek or Cyrillic text
   is folded too (``σ`` → ``o``), identically in references and documents.
4. Letters, digits and spacing marks (Mc) are word characters; everything else
   (punctuation, symbols, markup, whitespace, controls) separates words. Ideographs and
   kana are words of one character each (those scripts do not separate words by spaces).

A shingle is ``ngram`` consecutive words joined by single spaces (a text with fewer words
is one shingle; a text with no words has none) and its hash is :func:`shingle_hash`,
xxh32 with seed 0 of the UTF-8 bytes. :func:`normalize` and :func:`shingles` are the
readable reference implementation; the kernel in :mod:`contamscan.minhash` computes the
same hashes without a Python call per shingle (a code point whose table entry is empty, a
deleted one, leaves the word open), and the tests hold the two equal.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata

import numpy as np
import xxhash

from .confusables import CONFUSABLE_LATIN, READ_AS_WRITTEN

NORMALIZATION = "nfkd-casefold-nomarks-noignorable-confusables-v2"
UNICODE_VERSION = unicodedata.unidata_version
MAX_TAG_BYTES = 256

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, the same in
# Unicode 14 and 15), as inclusive ranges. Python's unicodedata has no accessor for it;
# Unicode derives it as Other_Default_Ignorable_Code_Point + Cf + Variation_Selector
# - White_Space - FFF9..FFFB - 13430..1343F - Prepended_Concatenation_Mark, and a test
# derives it that way from unicodedata and compares.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (byte-order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
_IGNORABLE = frozenset(cp for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, hi + 1))


def is_default_ignorable(cp: int) -> bool:
    """Whether code point ``cp`` is default-ignorable (deleted by normalisation)."""
    return cp in _IGNORABLE

# Byte patterns, so that the kernel's byte-level scan agrees with them exactly.
_TAG = re.compile(rb"<[A-Za-z/!][^<>\n]{0,%d}>" % (MAX_TAG_BYTES - 3))
_ENTITY = re.compile(rb"&(?:[A-Za-z][A-Za-z0-9]{0,9}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def shingle_hash(b: bytes) -> int:
    """Hash of one shingle: xxh32 (seed 0) of its UTF-8 bytes, as an unsigned int.

    Pass it as ``hashfunc`` to ``datasketch.MinHash(..., scheme="affine32")`` to get
    signatures bit-identical to contamscan's.

    Args:
        b: the shingle's UTF-8 bytes (see :func:`shingles`).

    Returns:
        The 32-bit hash.

    Example:
        >>> shingle_hash(b"the cat sat on the")
        2710036796
    """
    return xxhash.xxh32_intdigest(b)


def _is_solo(ch: str) -> bool:
    """Scripts written without spaces between words: one character, one word."""
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # hiragana, katakana
        or 0x3400 <= cp <= 0x4DBF  # CJK extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= cp <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= cp <= 0x3FFFF  # CJK extensions B and later
    )


@functools.lru_cache(maxsize=None)
def fold_char(ch: str) -> str:
    """Map one code point to its normalised form; separators become a single space, and a
    deleted code point (default-ignorable, a combining mark) the empty string."""
    if ord(ch) in _IGNORABLE:
        return ""
    if ord(ch) in READ_AS_WRITTEN:  # a symbol that reads otherwise than its decomposition
        return READ_AS_WRITTEN[ord(ch)]
    out = []
    for c in unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold()):
        cat = unicodedata.category(c)
        if cat in ("Mn", "Me") or ord(c) in _IGNORABLE:
            continue
        c = CONFUSABLE_LATIN.get(ord(c), c)
        if c.isalnum() or cat == "Mc":
            out.append(f" {c} " if _is_solo(c) else c)
        else:
            out.append(" ")
    return "".join(out)


def normalize(text: str) -> str:
    """Normalised text: words separated by single spaces, no leading or trailing space."""
    raw = _ENTITY.sub(b" ", _TAG.sub(b" ", text.encode("utf-8")))
    folded = "".join(fold_char(c) for c in raw.decode("utf-8"))
    return " ".join(w for w in folded.split(" ") if w)


def words(text: str) -> list[str]:
    return [w for w in normalize(text).split(" ") if w]


def shingles(text: str, ngram: int = 5) -> list[bytes]:
    """The shingles of ``text`` as UTF-8 bytes, in order (duplicates kept)."""
    ws = words(text)
    if not ws:
        return []
    if len(ws) < ngram:
        return [" ".join(ws).encode()]
    return [" ".join(ws[i : i + ngram]).encode() for i in range(len(ws) - ngram + 1)]


def _cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # the tables' digest too: an edited table is never read from an old cache file
    tables = repr((DEFAULT_IGNORABLE, sorted(CONFUSABLE_LATIN.items()), sorted(READ_AS_WRITTEN.items()))).encode()
    digest = xxhash.xxh32_hexdigest(tables)
    return os.path.join(base, "contamscan", f"fold-{NORMALIZATION}-unicode{UNICODE_VERSION}-{digest}.npz")


@functools.lru_cache(maxsize=1)
def fold_table() -> tuple[np.ndarray, np.ndarray]:
    """The per-code-point mapping as a CSR table for the compiled kernel.

    Returns ``(offsets, data)``: the UTF-8 bytes code point ``cp`` maps to are
    ``data[offsets[cp]:offsets[cp + 1]]``, with b" " for a separator and nothing for a
    deleted code point (the kernel then keeps the word open). Surrogates map to nothing
    too (they cannot occur in valid UTF-8). Building takes about half a second, so the
    table is cached on disk (per normalisation and Unicode version) for worker start-up.
    """
    path = _cache_path()
    try:
        with np.load(path) as z:
            return z["offsets"], z["data"]
    except (OSError, KeyError, ValueError):
        pass
    offsets, data = _build_fold_table()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, offsets=offsets, data=data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: rebuild each time
    return offsets, data


def _build_fold_table() -> tuple[np.ndarray, np.ndarray]:
    chunks = []
    lengths = np.zeros(0x110000, dtype=np.int64)
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        if cp < 0x80:
            m = c.lower() if c.isalnum() else " "
        elif unicodedata.category(c) == "Cn" and cp not in _IGNORABLE:
            m = " "  # unassigned in this Unicode version (reserved default-ignorables are deleted)
        else:
            m = fold_char(c)
        b = m.encode()
        lengths[cp] = len(b)
        chunks.append(b)
    fold_char.cache_clear()  # the table replaces the cache
    offsets = np.zeros(0x110001, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8).copy()
    return offsets.astype(np.int32), data
