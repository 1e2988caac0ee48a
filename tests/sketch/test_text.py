import unicodedata

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from contamscan.sketch.confusables import CONFUSABLE_LATIN, READ_AS_WRITTEN
from contamscan.sketch.minhash import Hasher, xxh32
from contamscan.sketch.text import (
    DEFAULT_IGNORABLE,
    fold_char,
    fold_table,
    is_default_ignorable,
    normalize,
    shingle_hash,
    shingles,
    words,
)


def test_normalize_rules():
    assert normalize("Hello, WORLD!  It's  <b>bold</b> &amp; free") == "hello world it s bold free"
    # compatibility forms, case folding, accents
    assert normalize("ﬁne Straße CAFÉ café") == "fine strasse cafe cafe"
    # composed and decomposed input agree
    assert normalize("e\u0301te\u0301") == normalize("été") == "ete"
    # ideographs and kana are one word each
    assert words("日本語のテキスト") == ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]
    # typographic quotes and dashes are separators like their ASCII forms
    assert normalize("“don’t” — stop") == normalize('"don\'t" - stop')
    # U+2028 is a separator, not a character of a word
    assert normalize("a\u2028b") == "a b"


# the default-ignorable code points an evasion is most likely to use
_INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2060", "\u2061",
              "\u2064", "\u2066", "\u2069", "\ufeff", "\u180e", "\u034f", "\u115f", "\u1160", "\u3164", "\uffa0",
              "\u17b4", "\u17b5", "\u061c", "\ufe00", "\ufe0f", "\U000e0001", "\U000e0041", "\U000e007f",
              "\U000e0100", "\U000e0fff"]


def test_default_ignorable_code_points_are_deleted():
    """They are invisible: the word goes on across them (version 1 cut it there)."""
    for ch in _INVISIBLE:
        assert is_default_ignorable(ord(ch)), hex(ord(ch))
        assert normalize(f"the co{ch}py of a wo{ch}rd{ch} {ch}here") == "the copy of a word here", hex(ord(ch))
    assert normalize("extra\u00adordinarily \ufeffhello\u200b\u200bworld") == "extraordinarily helloworld"
    # in the kernel too: the same signature as without them
    h = Hasher(num_perm=32, ngram=2)
    plain = "one two three four five six"
    for ch in _INVISIBLE:
        hidden = ch.join(plain.replace(" ", f" {ch}")) + ch
        assert np.array_equal(h.signature(hidden), h.signature(plain)), hex(ord(ch))
    # what stays a separator: spaces, the line and paragraph separators, other controls
    for sep in ("\u00a0", "\u2028", "\u2029", "\u3000", "\x1f", "\ufff9"):
        assert normalize(f"a{sep}b") == "a b", hex(ord(sep))


def test_default_ignorable_set_is_unicodes_derivation():
    """DEFAULT_IGNORABLE is DerivedCoreProperties' Default_Ignorable_Code_Point, derived here
    from unicodedata as Unicode derives it (PropList's Other_Default_Ignorable_Code_Point and
    Variation_Selector, Prepended_Concatenation_Mark written out)."""
    other = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2065, 0x3164, 0xFFA0, *range(0xFFF0, 0xFFF9), 0xE0000,
             *range(0xE0002, 0xE0020), *range(0xE0080, 0xE0100), *range(0xE01F0, 0xE1000)}
    selectors = {*range(0x180B, 0x180E), 0x180F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}
    prepended = {*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
    fmt = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"}
    white = {cp for cp in range(0x110000) if chr(cp).isspace()}
    derived = (other | fmt | selectors) - white - set(range(0xFFF9, 0xFFFC)) - set(range(0x13430, 0x13440)) - prepended
    listed = {cp for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, hi + 1)}
    assert derived == listed


def test_confusable_letters_fold_to_latin():
    # Cyrillic and Greek look-alikes, lower case and capitals, read as the Latin letters
    assert normalize("а е о р с у х і ј ѕ ԁ ԛ ԝ һ") == "a e o p c y x i j s d q w h"
    assert normalize("А В Е К М Н О Р С Т Х І Ј Ѕ Ԛ Ԝ") == "a b e k m h o p c t x i j s q w"
    assert normalize("ο α ν ι κ ρ τ υ χ") == "o a v i k p t u x"
    assert normalize("Α Β Ε Ζ Η Ι Κ Μ Ο Ρ Τ Χ") == "a b e z h i k m o p t x"
    # a capital goes through its lower case (Greek in capitals still matches, at the price
    # of Ν and Υ folding as ν and υ do); symbols whose decomposition reads otherwise, as they look
    assert normalize("Ν ν Υ υ ϲ Ϲ σ ς ϒ") == "v v u u c c o o y"
    assert normalize("օ ս հ ո") == "o u h n"  # Armenian
    assert normalize("Ꭺ Ᏼ Ꮯ Ꭼ ꭺ") == "a b c e a"  # Cherokee (lower case folds to its capital)
    assert normalize("Неllо wоrld, ΤΗΕ еnd") == "hello world the end"
    # accents on a confusable letter go like any accent; fullwidth and mathematical forms by NFKD
    assert normalize("ό ё ї") == "o e i"
    assert normalize("Ｈｅｌｌｏ 𝐰𝐨𝐫𝐥𝐝 ｗｏｒｌｄ") == "hello world world"
    # only letters of other scripts: Latin, digits and other scripts' non-confusables stay
    assert normalize("З б ж λ ß") == "з б ж λ ss"


def test_confusable_folding_keeps_normalisation_case_insensitive():
    """The table applies after case folding, so a capital and its lower case agree in
    every script (Greek and Cyrillic text in upper case is still found)."""
    for cp in READ_AS_WRITTEN:
        assert fold_char(chr(cp)) == READ_AS_WRITTEN[cp] != fold_char(unicodedata.normalize("NFKD", chr(cp)).casefold())
    for cp in CONFUSABLE_LATIN:
        ch = chr(cp)
        assert fold_char(ch).isascii() and fold_char(ch).isalpha() and len(fold_char(ch)) == 1, hex(cp)
        for other in {ch.upper(), ch.lower(), ch.title()} - {chr(c) for c in READ_AS_WRITTEN}:
            assert fold_char(other) == fold_char(ch) if len(other) == 1 else normalize(other) == fold_char(ch), hex(cp)
        assert unicodedata.category(ch).startswith("L") and not unicodedata.name(ch).startswith("LATIN"), hex(cp)
    greek = "Η ΓΡΗΓΟΡΗ ΚΑΦΕ ΑΛΕΠΟΥ ΠΗΔΑΕΙ ΠΑΝΩ ΑΠΟ ΤΟ ΤΕΜΠΕΛΙΚΟ ΣΚΥΛΙ"
    assert normalize(greek) == normalize(greek.lower()) and shingles(greek) == shingles(greek.lower())
    russian = "СЪЕШЬ ЖЕ ЕЩЁ ЭТИХ МЯГКИХ ФРАНЦУЗСКИХ БУЛОК ДА ВЫПЕЙ ЧАЮ"
    assert normalize(russian) == normalize(russian.lower())


def test_fold_table_agrees_with_fold_char_where_v2_changed_it():
    off, data = fold_table()
    for cp in [*CONFUSABLE_LATIN, *READ_AS_WRITTEN, *(cp for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, min(hi, lo + 300) + 1))]:
        got = bytes(data[off[cp]:off[cp + 1]]).decode()
        assert got == ("" if is_default_ignorable(cp) else fold_char(chr(cp))), hex(cp)


def test_shingles_short_and_empty():
    assert shingles("", 5) == []
    assert shingles("!!! ...", 5) == []
    assert shingles("one two three", 5) == [b"one two three"]
    assert shingles("a b c d e f", 5) == [b"a b c d e", b"b c d e f"]


def test_shingle_hash_is_xxh32_seed0():
    for s in (b"", b"a", b"the quick brown fox jumps", "über naïve".encode()):
        assert shingle_hash(s) == xxhash.xxh32_intdigest(s, seed=0)


@settings(deadline=None)  # the first call compiles the kernel
@given(st.binary(max_size=80))
def test_kernel_xxh32_matches_xxhash(b):
    arr = np.frombuffer(b, np.uint8)
    assert xxh32(arr, 0, len(b)) == xxhash.xxh32_intdigest(b)


HASHER = Hasher(num_perm=64, seed=3, ngram=3)

# Text with the characters that matter: ASCII words and punctuation, markup, entities,
# accents (composed and combining), compatibility forms, CJK, whitespace of all kinds.
# Also default-ignorable code points (deleted: the word goes on across them) and confusable
# letters of other scripts (folded to Latin), capitals and lower case.
_alphabet = st.sampled_from(list("abcXYZ019 ,.;'\"-_<>/&#!\n\t") + ["&amp;", "<p>", "</b>", "&#39;", "é", "e\u0301",
                                                                        "ß", "ﬁ", "½", "日", "カ", "\u2028", "\u00a0", "Ω", "İ", "ǅ"]
                            + ["\u00ad", "\u200b", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\u180e", "\ufe0f",
                               "\U000e0041", "\U000e0fff", "\u3164", "\u115f", "\u034f",
                               "а", "А", "ѕ", "І", "ӏ", "ο", "Ο", "ν", "Ν", "ς", "ϲ", "Υ", "Η", "ό", "օ", "Ꭺ", "ꭰ", "ꓮ", "Ａ"])
texts = st.lists(_alphabet, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_kernel_matches_reference_shingler(text):
    """The compiled kernel computes exactly the reference implementation's shingle set."""
    from datasketch import MinHash

    m = MinHash(num_perm=64, seed=3, scheme="affine32", hashfunc=shingle_hash)
    sh = shingles(text, 3)
    m.update_batch(sh)
    sig = HASHER.signatures([text])
    assert sig.n_shingles[0] == len(sh)
    assert np.array_equal(sig.values[0], m.hashvalues)


@settings(max_examples=100, deadline=None)
@given(texts)
def test_normalize_is_idempotent(text):
    assert normalize(normalize(text)) == normalize(text)


def test_invalid_utf8_is_detected():
    import pyarrow as pa

    arr = pa.Array.from_buffers(pa.large_string(), 3, [None, pa.py_buffer(np.array([0, 2, 5, 8], np.int64).tobytes()),
                                                          pa.py_buffer(b"ok\xff\xfeabc\xed\xa0\x80")])
    s = HASHER.signatures(arr)
    assert s.status.tolist() == [0, 1, 1]  # lone bytes and an encoded surrogate are invalid


def test_markup_with_non_ascii_is_validated_and_counted():
    import pyarrow as pa

    t = '<a title="café">x</a> héllo wörld'
    s = HASHER.signatures([t])
    assert s.n_chars[0] == len(t) and s.status[0] == 0
    raw = b'<a title="caf\xe9">x</a> hello'  # Latin-1 byte inside a tag
    arr = pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(np.array([0, len(raw)], np.int64).tobytes()),
                                                          pa.py_buffer(raw)])
    assert HASHER.signatures(arr).status.tolist() == [1]


@settings(max_examples=300, deadline=None)
@given(texts)
def test_shingle_positions_map_back_to_their_words(text):
    """Each shingle's byte span in the original text holds its words: spans of matches are
    cut from the text the user has, not from its normalised form. A character that
    normalises to several words (½ is "1 2") is never cut, so a span may hold one more."""
    all_words = words(text)
    sh = HASHER.shingles([text])
    assert len(sh) == len(shingles(text, 3))
    raw = text.encode()
    for k, (w, b0, b1) in enumerate(zip(sh.word, sh.start, sh.stop)):
        assert w == k
        want, got = all_words[k:k + 3], words(raw[b0:b1].decode())
        if "½" in text:
            assert any(got[i:i + len(want)] == want for i in range(len(got) - len(want) + 1))
        else:
            assert got == want
    # anchors are the sampled shingles: same keys and places
    sampled = Hasher(num_perm=64, seed=3, ngram=3, anchor_bits=1).signatures([text]).anchors
    pos = {(int(k), int(b)) for k, b in zip(sh.key, sh.start)}
    assert {(int(k), int(b)) for k, b in zip(sampled.key, sampled.start)} <= pos
