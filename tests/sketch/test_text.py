import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from contamscan.sketch.minhash import Hasher, xxh32
from contamscan.sketch.text import normalize, shingle_hash, shingles, words


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
_alphabet = st.sampled_from(list("abcXYZ019 ,.;'\"-_<>/&#!\n\t") + ["&amp;", "<p>", "</b>", "&#39;", "é", "e\u0301",
                                                                        "ß", "ﬁ", "½", "日", "カ", "\u2028", "\u00a0", "Ω", "İ", "ǅ"])
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
