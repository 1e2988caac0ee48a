"""Confusable letters: letters of other scripts that a reader takes for a Latin letter.

``CONFUSABLE_LATIN`` maps a code point to the Latin letter (lower case) it looks like. It is
applied by normalisation after case folding (rule 3 of :mod:`contamscan.sketch.text`), so its
keys are the case-folded forms; a capital letter goes through its lower case (``О`` → ``о`` →
``o``), which keeps normalisation case-insensitive in every script.

Where it comes from: the single-character prototypes of Unicode TR39's ``confusables.txt``
(as shipped in the ``confusable_homoglyphs`` 3.3.1 package's ``confusables.json``), restricted to
letters of Greek, Cyrillic, Armenian, Cherokee, Coptic and Lisu (scripts whose letters are
not Latin) whose prototype is one ASCII letter. For each such letter ``X`` the Latin letter
chosen is the one of ``X``'s case among those sharing its prototype (Cyrillic ``І`` has
prototype ``l``, shared with ``I``: a capital reads as ``I``). The key is ``X`` case-folded
without marks; where a capital and its lower case read as different Latin letters, the lower
case's letter is the key's (Greek ``ν``: ``v``; ``υ``: ``u``), and a lower case letter with
no single-letter prototype of its own takes its capital's (``η`` from ``Η``: ``h``; ``ь`` from
``Ь``: ``b``). So Greek ``Ν`` folds to ``v`` like ``ν``, and ``Υ`` to ``u`` like ``υ``: an evasion
that writes a Greek capital Nu for ``N`` is not undone, but Greek in capitals (where Nu and
Upsilon are frequent) still matches the same text in lower case. Symbols whose fold goes
through a compatibility decomposition are folded as they look before that
(``READ_AS_WRITTEN``: the lunate sigma ``ϲ``/``Ϲ`` is ``c``, not ``σ``'s ``o``; ``ϒ`` is ``y``).
Prototypes that are digits (``З`` → ``3``) or several characters are left out, and so
are Latin look-alikes that are themselves Latin (``ı``, ``ɑ``, small capitals). Fullwidth
and mathematical forms (``Ａ``, ``𝐚``) need no entry: NFKD already folds them.

Folding these letters also changes real Greek, Cyrillic, … text (``σ`` becomes ``o``, ``н``
becomes ``h``): it happens identically to references and documents, so copies in those
scripts are found as before; only different words of those scripts may now share a spelling.
"""

from __future__ import annotations

__all__ = ["CONFUSABLE_LATIN", "READ_AS_WRITTEN"]

CONFUSABLE_LATIN: dict[int, str] = {
    # Greek
    0x03B1: "a",  # GREEK SMALL LETTER ALPHA
    0x03B2: "b",  # GREEK SMALL LETTER BETA
    0x03B3: "y",  # GREEK SMALL LETTER GAMMA
    0x03B5: "e",  # GREEK SMALL LETTER EPSILON
    0x03B6: "z",  # GREEK SMALL LETTER ZETA
    0x03B7: "h",  # GREEK SMALL LETTER ETA
    0x03B9: "i",  # GREEK SMALL LETTER IOTA
    0x03BA: "k",  # GREEK SMALL LETTER KAPPA
    0x03BC: "m",  # GREEK SMALL LETTER MU
    0x03BD: "v",  # GREEK SMALL LETTER NU
    0x03BF: "o",  # GREEK SMALL LETTER OMICRON
    0x03C1: "p",  # GREEK SMALL LETTER RHO
    0x03C3: "o",  # GREEK SMALL LETTER SIGMA
    0x03C4: "t",  # GREEK SMALL LETTER TAU
    0x03C5: "u",  # GREEK SMALL LETTER UPSILON
    0x03C7: "x",  # GREEK SMALL LETTER CHI
    0x03DD: "f",  # GREEK SMALL LETTER DIGAMMA
    0x03F3: "j",  # GREEK LETTER YOT
    0x03FB: "m",  # GREEK SMALL LETTER SAN
    # Cyrillic
    0x0430: "a",  # CYRILLIC SMALL LETTER A
    0x0432: "b",  # CYRILLIC SMALL LETTER VE
    0x0433: "r",  # CYRILLIC SMALL LETTER GHE
    0x0435: "e",  # CYRILLIC SMALL LETTER IE
    0x043A: "k",  # CYRILLIC SMALL LETTER KA
    0x043C: "m",  # CYRILLIC SMALL LETTER EM
    0x043D: "h",  # CYRILLIC SMALL LETTER EN
    0x043E: "o",  # CYRILLIC SMALL LETTER O
    0x0440: "p",  # CYRILLIC SMALL LETTER ER
    0x0441: "c",  # CYRILLIC SMALL LETTER ES
    0x0442: "t",  # CYRILLIC SMALL LETTER TE
    0x0443: "y",  # CYRILLIC SMALL LETTER U
    0x0445: "x",  # CYRILLIC SMALL LETTER HA
    0x044C: "b",  # CYRILLIC SMALL LETTER SOFT SIGN
    0x0455: "s",  # CYRILLIC SMALL LETTER DZE
    0x0456: "i",  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
    0x0458: "j",  # CYRILLIC SMALL LETTER JE
    0x0461: "w",  # CYRILLIC SMALL LETTER OMEGA
    0x0475: "v",  # CYRILLIC SMALL LETTER IZHITSA
    0x04AF: "y",  # CYRILLIC SMALL LETTER STRAIGHT U
    0x04BB: "h",  # CYRILLIC SMALL LETTER SHHA
    0x04BD: "e",  # CYRILLIC SMALL LETTER ABKHASIAN CHE
    0x04CF: "i",  # CYRILLIC SMALL LETTER PALOCHKA
    0x0501: "d",  # CYRILLIC SMALL LETTER KOMI DE
    0x050D: "g",  # CYRILLIC SMALL LETTER KOMI SJE
    0x051B: "q",  # CYRILLIC SMALL LETTER QA
    0x051D: "w",  # CYRILLIC SMALL LETTER WE
    0xA647: "i",  # CYRILLIC SMALL LETTER IOTA
    # Armenian
    0x0561: "w",  # ARMENIAN SMALL LETTER AYB
    0x0563: "q",  # ARMENIAN SMALL LETTER GIM
    0x0566: "q",  # ARMENIAN SMALL LETTER ZA
    0x0570: "h",  # ARMENIAN SMALL LETTER HO
    0x0578: "n",  # ARMENIAN SMALL LETTER VO
    0x057C: "n",  # ARMENIAN SMALL LETTER RA
    0x057D: "u",  # ARMENIAN SMALL LETTER SEH
    0x057F: "s",  # ARMENIAN SMALL LETTER TIWN
    0x0581: "g",  # ARMENIAN SMALL LETTER CO
    0x0584: "f",  # ARMENIAN SMALL LETTER KEH
    0x0585: "o",  # ARMENIAN SMALL LETTER OH
    # Cherokee
    0x13A0: "d",  # CHEROKEE LETTER A
    0x13A1: "r",  # CHEROKEE LETTER E
    0x13A2: "t",  # CHEROKEE LETTER I
    0x13A5: "i",  # CHEROKEE LETTER V
    0x13A9: "y",  # CHEROKEE LETTER GI
    0x13AA: "a",  # CHEROKEE LETTER GO
    0x13AB: "j",  # CHEROKEE LETTER GU
    0x13AC: "e",  # CHEROKEE LETTER GV
    0x13B1: "r",  # CHEROKEE LETTER HU
    0x13B3: "w",  # CHEROKEE LETTER LA
    0x13B7: "m",  # CHEROKEE LETTER LU
    0x13BB: "h",  # CHEROKEE LETTER MI
    0x13BD: "y",  # CHEROKEE LETTER MU
    0x13C0: "g",  # CHEROKEE LETTER NAH
    0x13C2: "h",  # CHEROKEE LETTER NI
    0x13C3: "z",  # CHEROKEE LETTER NO
    0x13CF: "b",  # CHEROKEE LETTER SI
    0x13D2: "r",  # CHEROKEE LETTER SV
    0x13D4: "w",  # CHEROKEE LETTER TA
    0x13D5: "s",  # CHEROKEE LETTER DE
    0x13D9: "v",  # CHEROKEE LETTER DO
    0x13DA: "s",  # CHEROKEE LETTER DU
    0x13DE: "l",  # CHEROKEE LETTER TLE
    0x13DF: "c",  # CHEROKEE LETTER TLI
    0x13E2: "p",  # CHEROKEE LETTER TLV
    0x13E6: "k",  # CHEROKEE LETTER TSO
    0x13E7: "d",  # CHEROKEE LETTER TSU
    0x13F3: "g",  # CHEROKEE LETTER YU
    0x13F4: "b",  # CHEROKEE LETTER YV
    # Coptic
    0x2C85: "r",  # COPTIC SMALL LETTER GAMMA
    0x2C8F: "h",  # COPTIC SMALL LETTER HATE
    0x2C93: "i",  # COPTIC SMALL LETTER IAUDA
    0x2C95: "k",  # COPTIC SMALL LETTER KAPA
    0x2C99: "m",  # COPTIC SMALL LETTER MI
    0x2C9B: "n",  # COPTIC SMALL LETTER NI
    0x2C9F: "o",  # COPTIC SMALL LETTER O
    0x2CA3: "p",  # COPTIC SMALL LETTER RO
    0x2CA5: "c",  # COPTIC SMALL LETTER SIMA
    0x2CA7: "t",  # COPTIC SMALL LETTER TAU
    0x2CA9: "y",  # COPTIC SMALL LETTER UA
    0x2CAD: "x",  # COPTIC SMALL LETTER KHI
    0x2CD1: "l",  # COPTIC SMALL LETTER L-SHAPED HA
    # Lisu
    0xA4D0: "b",  # LISU LETTER BA
    0xA4D1: "p",  # LISU LETTER PA
    0xA4D2: "d",  # LISU LETTER PHA
    0xA4D3: "d",  # LISU LETTER DA
    0xA4D4: "t",  # LISU LETTER TA
    0xA4D6: "g",  # LISU LETTER GA
    0xA4D7: "k",  # LISU LETTER KA
    0xA4D9: "j",  # LISU LETTER JA
    0xA4DA: "c",  # LISU LETTER CA
    0xA4DC: "z",  # LISU LETTER DZA
    0xA4DD: "f",  # LISU LETTER TSA
    0xA4DF: "m",  # LISU LETTER MA
    0xA4E0: "n",  # LISU LETTER NA
    0xA4E1: "l",  # LISU LETTER LA
    0xA4E2: "s",  # LISU LETTER SA
    0xA4E3: "r",  # LISU LETTER ZHA
    0xA4E6: "v",  # LISU LETTER HA
    0xA4E7: "h",  # LISU LETTER XA
    0xA4EA: "w",  # LISU LETTER WA
    0xA4EB: "x",  # LISU LETTER SHA
    0xA4EC: "y",  # LISU LETTER YA
    0xA4EE: "a",  # LISU LETTER A
    0xA4F0: "e",  # LISU LETTER E
    0xA4F2: "l",  # LISU LETTER I
    0xA4F3: "o",  # LISU LETTER O
    0xA4F4: "u",  # LISU LETTER U
}

# symbols folded before their compatibility decomposition, as they look (the rule above)
READ_AS_WRITTEN: dict[int, str] = {
    0x03D2: "y",  # GREEK UPSILON WITH HOOK SYMBOL (case-folded: upsilon, "u")
    0x03F2: "c",  # GREEK LUNATE SIGMA SYMBOL (case-folded: sigma, "o")
    0x03F9: "c",  # GREEK CAPITAL LUNATE SIGMA SYMBOL (case-folded: sigma, "o")
}
