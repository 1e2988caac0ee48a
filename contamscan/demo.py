"""Deterministic demo workspace for ``contamscan demo``.

:func:`make_demo_workspace` writes a small but realistic workspace without any network
access or external data: the same seed always gives byte-identical files.

Layout (under ``root``)::

    references/outputs_a.parquet      300 model outputs, columns id, model, text
    references/outputs_b.jsonl        300 model outputs, {"id", "model", "meta": {"model", ...}, "text"}
    dataset/web/part-000.parquet      700 documents,  5% planted copies, 1 decoy
    dataset/web/part-001.jsonl        500 documents,  2% planted copies, 3 bad lines
    dataset/forum/part-000.jsonl.gz   400 documents, 12% planted copies, 1 decoy
    dataset/forum/part-001.jsonl.zst  320 documents, 25% planted copies
    dataset/books/part-000.arrow      360 documents,  0% planted copies, 2 decoys
    truth.json                        ground truth (see below)

Reference texts come from four fictional models with their own stylistic vocabulary; the
label is in the ``model`` column of both reference files, and the JSONL file repeats it as
``meta.model`` so that ``--label-field meta.model`` can be shown on that file too.

Dataset records are ``{"id", "text"}``. Most are "human" prose (news, letters, notes, forum
posts, fiction) built from a vocabulary disjoint from the model vocabulary. Planted records
are copies of reference texts of three kinds:

* ``exact``        the reference text unchanged;
* ``edited``       about 3% of the words substituted, deleted or inserted;
* ``reformatted``  same words, different line wrapping and/or letter case.

"Decoys" are model-style texts generated like the references but never indexed; a scanner
must not flag them.

``truth.json``::

    {"seed": 7,
     "planted": [{"shard": "web/part-000.parquet", "row": 12, "id": "web-000-00012",
                  "ref_id": "out-a-0042", "model": "aurora-7b", "kind": "edited",
                  "jaccard5": 0.78}, ...],
     "decoys": [{"shard", "row", "id", "model"}, ...],
     "bad_records": [{"shard", "row", "line", "id", "kind"}, ...],
     "documents_per_shard": {"web/part-000.parquet": 700, ...},
     "records_per_shard": {"web/part-001.jsonl": 503, ...},
     "references": {"files": [...], "count": 600, "per_model": {...}}}

``row`` is the 0-based physical record position in the shard (the line index for JSONL,
counting bad lines); bad lines are always placed after the last planted record of their shard,
so planted rows are the same whether or not a reader counts bad lines. ``jaccard5`` is the
Jaccard similarity of the planted text and its reference over sets of 5-word shingles
(lowercased ``[a-z0-9']+`` words). ``documents_per_shard`` counts readable records with a
string text; ``records_per_shard`` counts all physical records including bad ones.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .io import Location

__all__ = ["DemoWorkspace", "make_demo_workspace", "MODELS", "SHARDS"]


@dataclass(frozen=True)
class DemoWorkspace:
    root: Path
    references: Path  # directory with reference files
    dataset: Path  # directory with the shards to scan
    truth: Path  # truth.json


MODELS: tuple[str, ...] = ("aurora-7b", "basalt-chat", "cinder-2", "dune-instruct")

# (relative path, number of valid documents, planted fraction, decoys, bad lines, genres)
SHARDS: tuple[tuple[str, int, float, int, int, tuple[str, ...]], ...] = (
    ("web/part-000.parquet", 700, 0.05, 1, 0, ("news", "letter", "note")),
    ("web/part-001.jsonl", 500, 0.02, 0, 3, ("news", "note", "letter")),
    ("forum/part-000.jsonl.gz", 400, 0.12, 1, 0, ("forum", "note")),
    ("forum/part-001.jsonl.zst", 320, 0.25, 0, 0, ("forum",)),
    ("books/part-000.arrow", 360, 0.0, 2, 0, ("story",)),
)

N_REFERENCES_PER_FILE = 300

# ---------------------------------------------------------------------------------------------
# Vocabulary. Model texts and human texts draw on disjoint content words, so an unrelated human
# document shares (almost) no 5-word shingle with any reference.
# ---------------------------------------------------------------------------------------------

_TOPICS: dict[str, list[str]] = {
    "gardening": "soil compost seedling mulch pollinator perennial irrigation root-zone trellis "
    "germination fertilizer pruning raised-bed cultivar aphid".split(),
    "finance": "budget portfolio dividend inflation mortgage liquidity index-fund retirement "
    "allocation compound-interest emergency-fund bond expense-ratio diversification equity".split(),
    "astronomy": "nebula exoplanet telescope redshift supernova galaxy orbit spectrum "
    "dark-matter pulsar light-curve parallax accretion-disk comet quasar".split(),
    "cooking": "marinade emulsion braise reduction umami sourdough caramelization brine "
    "seasoning stock roux fermentation knife-work sear glaze".split(),
    "software": "refactoring latency cache dependency pipeline schema concurrency endpoint "
    "test-suite deployment abstraction module interface regression runtime".split(),
    "history": "empire treaty dynasty archive manuscript revolution trade-route "
    "chronicle reform monarchy colony alliance artifact census frontier".split(),
    "fitness": "endurance mobility protein recovery cadence hypertrophy warm-up "
    "interval posture hydration metabolism stamina flexibility core-strength rest-day".split(),
    "climate": "emissions carbon-budget permafrost aerosol feedback-loop glacier "
    "heatwave drought albedo adaptation mitigation monsoon sea-level ecosystem wildfire".split(),
}
_TOPIC_NAMES = sorted(_TOPICS)

_M_ADJ = (
    "essential effective nuanced significant practical complex reliable consistent holistic "
    "foundational dynamic sustainable scalable intricate thoughtful balanced meaningful "
    "strategic innovative comprehensive resilient adaptive subtle valuable".split()
)
_M_VERB = (
    "enhance influence shape support improve reduce clarify strengthen optimize balance "
    "transform highlight reveal streamline maintain evaluate integrate prioritize leverage "
    "explore".split()
)
_M_ADV = (
    "significantly carefully gradually effectively consistently often rarely "
    "substantially naturally steadily".split()
)
_M_ABSTRACT = (
    "approach process outcome perspective strategy factor principle context framework "
    "balance tradeoff goal insight priority dimension aspect".split()
)

_STYLE: dict[str, dict[str, list[str]]] = {
    "aurora-7b": {
        "open": [
            "Certainly! Let's delve into this.",
            "Great question — this is a rich topic.",
            "Absolutely, happy to unpack this.",
            "What a fascinating area to explore.",
        ],
        "trans": ["Moreover,", "Additionally,", "Importantly,", "It's worth noting that", "Beyond that,"],
        "words": "tapestry landscape realm journey mosaic cornerstone testament "
        "interplay symphony beacon".split(),
        "close": [
            "Ultimately, it's a journey worth embracing.",
            "I hope this helps you navigate the realm with confidence!",
            "In conclusion, every thread of this tapestry matters.",
        ],
    },
    "basalt-chat": {
        "open": ["Short answer: it depends.", "Here's the gist.", "Key points:", "TL;DR up front."],
        "trans": ["Also,", "Plus,", "Bottom line:", "In short,", "Tip:"],
        "words": "rule-of-thumb shortcut gotcha quick-win sanity-check "
        "no-brainer trade-off hack default baseline".split(),
        "close": ["Hope that's useful.", "That's basically it.", "Ping me if anything's unclear."],
    },
    "cinder-2": {
        "open": [
            "This question admits several interpretations.",
            "Consider first the underlying assumptions.",
            "The literature offers a mixed picture.",
        ],
        "trans": ["Furthermore,", "Notably,", "Conversely,", "In this light,", "Empirically,"],
        "words": "paradigm heuristic axiom corollary variance "
        "hypothesis construct confound mechanism proposition".split(),
        "close": [
            "Further research is warranted.",
            "The matter therefore remains open to debate.",
            "These caveats should temper any firm conclusion.",
        ],
    },
    "dune-instruct": {
        "open": [
            "Here is a step-by-step guide.",
            "Follow these steps to get started.",
            "Below are the instructions you need.",
        ],
        "trans": ["First,", "Next,", "Then,", "After that,", "Finally,"],
        "words": "checklist workflow setup routine toolkit milestone "
        "walkthrough template playbook step".split(),
        "close": [
            "You're all set!",
            "Repeat as needed until the results look right.",
            "Double-check each step before moving on.",
        ],
    },
}

# Sentence templates for model outputs. Placeholders: {t} topic noun, {a} adjective,
# {v} verb (base form), {vs} verb (3rd person), {adv} adverb, {x} abstract noun,
# {w} model signature word, {T} transition phrase.
_M_TEMPLATES = [
    "{T} the {a} {t} can {adv} {v} your {x} for {t}.",
    "A {a} {x} helps {v} both {t} and {t}.",
    "{T} {t} {vs} the {a} {w} behind every {t}.",
    "When it comes to {t}, a {w} of {a} {x} {vs} {t}.",
    "Understanding {t} will {v} the {x} you bring to {t}.",
    "The {a} {w} of {t} {adv} {vs} {a} {t}.",
    "{T} a {a} {t} tends to {v} {t} in {a} ways.",
    "Many people {adv} {v} {t} without weighing the {a} {x} of {t}.",
    "Think of {t} as a {w} that {vs} {a} {t}.",
    "{T} pairing {t} with {t} can {v} the {a} {x}.",
    "Because {t} {vs} {t}, the {x} becomes {a}.",
    "Each {a} {t} adds a {a} {w} to the {x}.",
    "You can {v} {t} by revisiting your {a} {x} around {t}.",
    "{T} the {x} of {t} {adv} depends on {a} {t}.",
]

# Human prose vocabulary (no overlap with the model content words above).
_FIRST = (
    "Maria James Priya Tom Aisha Lukas Chen Fatima Oliver Sofia Daniel Grace Mateo Hannah "
    "Kwame Elena Samir Ruth Diego Nora Viktor Leila Owen Ingrid Rafael Mei Jonas Amara "
    "Felix Zoe Henrik Lucia Tariq Clara Bruno Ada Marcus Yuki Pablo Esther".split()
)
_LAST = (
    "Alvarez Brennan Okafor Lindqvist Moreau Tanaka Kowalski Haddad Fischer Romano Nguyen "
    "Osei Petrov Castillo Duarte Whitfield Sato Novak Bergstrom Quinn Achebe Laurent Mendes "
    "Ivanova Park Gallagher Rossi Jensen Farouk Delgado".split()
)
_CITY = (
    "Millbrook Ashford Port Calder Eastvale Riverton Halden Westmoor Greyhaven Lakeside "
    "Thornbury Kingsport Marlow Brackwater Fenwick Oakridge Sandhurst Elmstead Corrigan "
    "Northfield Whitby Dunmore Castleford Redcliff Pinehurst".split()
)
_ORG = (
    "water board|transit authority|library trust|school district|harbour commission|"
    "housing office|parks department|hospital foundation|chamber of commerce|fire service|"
    "county court|arts council|football club|farmers' cooperative|planning committee"
).split("|")
_THING = (
    "bridge repairs|bus timetable|new playground|bakery on Elm Street|flood barrier|"
    "school roof|summer fair|bike lane|recycling depot|old cinema|ferry service|"
    "allotment gardens|community pool|night market|post office|town clock|"
    "car park fees|village hall|river path|charity auction"
).split("|")
_ITEM = (
    "milk|stamps|batteries|birthday card|lightbulbs|dog food|train tickets|bread|"
    "printer ink|umbrella|spare keys|paint samples|coffee beans|bin bags|tomatoes|"
    "library books|screws|sunscreen|envelopes|cough drops"
).split("|")
_PRODUCT = (
    "Kestrel K2 kettle|Nimbus 40 tent|Halo desk lamp|Vanta trail shoes|Orbit blender|"
    "Pico router|Meridian e-bike|Tundra sleeping bag|Lumo headphones|Atlas backpack|"
    "Quill fountain pen|Drift kayak|Ember space heater|Sable office chair"
).split("|")
_PART = "handle|zip|battery|hinge|lid|cable|strap|switch|seam|wheel|fan|charger|button|buckle".split("|")
_MONTH = "January February March April May June July August September October November December".split()
_WEEKDAY = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_ROLE = "a spokeswoman|a spokesman|the treasurer|a local resident|the chair|a shop owner|a volunteer|the head teacher".split("|")
_FEEL = "glad|relieved|annoyed|surprised|worried|thrilled|tired|grateful|puzzled|homesick".split("|")
_PLACE = "kitchen|station|harbour|attic|orchard|lighthouse|cellar|market square|chapel|boathouse|meadow|garage".split("|")
_OBJ = "lantern|letter|violin|map|suitcase|photograph|key|notebook|coat|bicycle|teapot|compass".split("|")
_WEATHER = "rain|fog|snow|wind|heat|drizzle|frost|thunder".split("|")
_COLOR = "grey|amber|crimson|pale|silver|green|dusty|golden|blue|black".split("|")

_H_TEMPLATES: dict[str, list[str]] = {
    "news": [
        "{city} officials said on {day} that the {org} would review the {thing} before {month}.",
        '"We have heard from {big} families," said {name}, {role}, adding that the {thing} cost {money}.',
        "The {org} voted {n} to {n2} on {day} to delay the {thing} until {month} {year}.",
        "Residents of {city} queued for {n} minutes outside the {org} on {day} morning.",
        "According to figures released in {month}, about {pct} percent of households in {city} use the {thing}.",
        "{name}, who has lived in {city} since {year}, said the {thing} was long overdue.",
        "A {org} report found {big} complaints about the {thing} in {month} alone.",
        "Police closed the road near the {thing} in {city} for {n} hours on {day}.",
    ],
    "letter": [
        "Thank you for the {item} you sent in {month}, it made {first} laugh.",
        "We finally fixed the {thing} here in {city}, which took {n} weekends.",
        "{first} says hello and is {feel} about starting at the {org} in {month}.",
        "Do you remember the {thing} in {city} back in {year}? It is gone now.",
        "I owe you {money} for the {item}, so remind me when we meet on {day}.",
        "The {weather} has not stopped since {day}, and the {place} is full of boxes.",
        "Give my love to {first} and tell {first2} the {obj} arrived safely.",
    ],
    "note": [
        "Note to self: buy {item} and {item2} before {day}.",
        "Call {first} about the {thing} — number is {phone}.",
        "Meeting with {name} moved to {day} at {hour}:{minute}.",
        "Remember {money} for the {org} on {day}.",
        "Pick up the {obj} from the {place} after {hour} pm.",
        "{first} wants the {item} back by the {dom}th.",
    ],
    "forum": [
        "Has anyone tried the {product}? Mine arrived on {day} and the {part} broke after {n} weeks.",
        "I paid {money} for the {product} in {month} {year} and honestly I'm {feel}.",
        "Update: support replied after {n} days and offered to replace the {part}.",
        "@{first}{n} did yours come with the {color} {part} or the old one?",
        "Same here, my {product} started rattling near the {part} around {month}.",
        "Edit: tried it again with a new {part} and it lasted {n} hours.",
        "Long time lurker from {city}. The {product} is fine but the {part} is flimsy.",
    ],
    "story": [
        "{first} climbed to the {place} with a {color} {obj} under one arm.",
        "The {weather} had followed {first} all the way from {city}.",
        "Nobody in {city} had opened the {obj} since the winter of {year}.",
        '"You kept the {obj}," {first} said, and {first2} looked {feel}.',
        "By the time the {weather} eased, the {place} smelled of {color} smoke.",
        "{first2} counted {n} steps between the {place} and the {place2}.",
        "In {month} the {obj} turned up again, wrapped in a {color} coat.",
        "{first} was {feel}; the {obj} had never belonged in the {place}.",
    ],
}

_WORD_RE = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}


def _jaccard5(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------------------------------------
# Text generators
# ---------------------------------------------------------------------------------------------


def _model_sentence(rng: random.Random, style: dict, topics: list[str]) -> str:
    tpl = rng.choice(_M_TEMPLATES)
    pool = _TOPICS[topics[0]] + _TOPICS[topics[1]] if len(topics) > 1 else _TOPICS[topics[0]]

    def fill(m: re.Match) -> str:
        key = m.group(1)
        if key == "t":
            return rng.choice(pool)
        if key == "a":
            return rng.choice(_M_ADJ)
        if key == "v":
            return rng.choice(_M_VERB)
        if key == "vs":
            return _third_person(rng.choice(_M_VERB))
        if key == "adv":
            return rng.choice(_M_ADV)
        if key == "x":
            return rng.choice(_M_ABSTRACT)
        if key == "w":
            return rng.choice(style["words"])
        if key == "T":
            return rng.choice(style["trans"])
        raise KeyError(key)

    s = re.sub(r"\{(\w+)\}", fill, tpl).replace("  ", " ")
    s = re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", s)
    return _cap(s.strip())


def _model_text(rng: random.Random, model: str) -> str:
    style = _STYLE[model]
    topics = rng.sample(_TOPIC_NAMES, rng.choice((1, 2)))
    target = rng.randint(130, 370)
    paragraphs: list[list[str]] = [[]]
    n_words = 0
    if rng.random() < 0.7:
        opener = rng.choice(style["open"])
        paragraphs[0].append(opener)
        n_words += len(opener.split())
    closer = rng.choice(style["close"]) if rng.random() < 0.6 else ""
    target -= len(closer.split())
    bullets = model == "basalt-chat" and rng.random() < 0.5
    steps = model == "dune-instruct" and rng.random() < 0.5
    step_no = 1
    while n_words < target:
        s = _model_sentence(rng, style, topics)
        if n_words + len(s.split()) > 390 - len(closer.split()):
            break
        if bullets and paragraphs[0]:
            s = "- " + s
        elif steps and paragraphs[0]:
            s = f"Step {step_no}: {s}"
            step_no += 1
        paragraphs[-1].append(s)
        n_words += len(s.split())
        if len(paragraphs[-1]) >= 3 and rng.random() < 0.25:
            paragraphs.append([])
    if closer:
        paragraphs.append([closer])
    sep = "\n" if (bullets or steps) else " "
    return "\n\n".join(sep.join(p) for p in paragraphs if p)


def _human_fields(rng: random.Random) -> dict[str, object]:
    return {
        "city": rng.choice(_CITY),
        "org": rng.choice(_ORG),
        "thing": rng.choice(_THING),
        "day": rng.choice(_WEEKDAY),
        "month": rng.choice(_MONTH),
        "year": rng.randint(1952, 2023),
        "n": rng.randint(2, 40),
        "big": rng.randint(20, 480),
        "n2": rng.randint(1, 9),
        "pct": rng.randint(3, 97),
        "money": f"${rng.randint(4, 2400)}" if rng.random() < 0.5 else f"£{rng.randint(4, 900)}.{rng.randint(0, 99):02d}",
        "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "first": rng.choice(_FIRST),
        "first2": rng.choice(_FIRST),
        "role": rng.choice(_ROLE),
        "item": rng.choice(_ITEM),
        "item2": rng.choice(_ITEM),
        "feel": rng.choice(_FEEL),
        "place": rng.choice(_PLACE),
        "place2": rng.choice(_PLACE),
        "obj": rng.choice(_OBJ),
        "weather": rng.choice(_WEATHER),
        "color": rng.choice(_COLOR),
        "product": rng.choice(_PRODUCT),
        "part": rng.choice(_PART),
        "phone": f"0{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}",
        "hour": rng.randint(1, 12),
        "minute": f"{rng.choice((0, 15, 30, 45)):02d}",
        "dom": rng.randint(4, 28),
    }


def _human_text(rng: random.Random, genre: str, lo: int = 80, hi: int = 380) -> str:
    templates = _H_TEMPLATES[genre]
    target = rng.randint(lo, hi)
    paragraphs: list[list[str]] = [[]]
    n_words = 0
    if genre == "letter":
        paragraphs[0].append(f"Dear {rng.choice(_FIRST)},")
        paragraphs.append([])
    deck: list[str] = []
    while n_words < target:
        if not deck:  # deal templates without replacement so a text rarely repeats itself
            deck = list(templates)
            rng.shuffle(deck)
        s = _cap(deck.pop().format(**_human_fields(rng)))
        paragraphs[-1].append(s)
        n_words += len(s.split())
        if len(paragraphs[-1]) >= 2 and rng.random() < 0.3:
            paragraphs.append([])
    if genre == "letter":
        paragraphs.append([f"{rng.choice(('Love', 'Best', 'Yours', 'Cheers'))}, {rng.choice(_FIRST)}"])
    sep = "\n" if genre == "note" else " "
    return "\n\n".join(sep.join(p) for p in paragraphs if p)


# ---------------------------------------------------------------------------------------------
# Near-copy transformations
# ---------------------------------------------------------------------------------------------

_FILLERS = ["really", "quite", "also", "actually", "just", "very", "still", "even"]
_SWAP = _M_ADJ + _M_VERB + _M_ABSTRACT


def _edit_text(rng: random.Random, text: str, rate: float = 0.03) -> str:
    """Change about ``rate`` of the words (substitute, delete or insert), keep the layout."""
    parts = re.split(r"(\s+)", text)
    word_idx = [i for i, p in enumerate(parts) if p and not p.isspace() and _WORD_RE.search(p.lower())]
    n_edits = max(2, round(rate * len(word_idx)))
    for i in sorted(rng.sample(word_idx, n_edits), reverse=True):
        tok = parts[i]
        m = re.match(r"^(\W*)([\w'-]+)(\W*)$", tok)
        op = rng.random()
        if m is None or op < 0.5:  # substitute
            core = rng.choice(_SWAP)
            if m is not None:
                core = _cap(core) if m.group(2)[:1].isupper() else core
                parts[i] = m.group(1) + core + m.group(3)
            else:
                parts[i] = core
        elif op < 0.75 and i + 1 < len(parts) and m.group(3) == "" and m.group(1) == "":  # delete
            parts[i] = ""
            parts[i + 1] = "" if parts[i + 1] == " " else parts[i + 1]
        else:  # insert a filler before the word
            filler = rng.choice(_FILLERS)
            if m.group(2)[:1].isupper():
                parts[i] = m.group(1) + _cap(filler) + " " + m.group(2)[:1].lower() + m.group(2)[1:] + m.group(3)
            else:
                parts[i] = m.group(1) + filler + " " + m.group(2) + m.group(3)
    return "".join(parts)


def _reformat_text(rng: random.Random, text: str) -> str:
    """Same word sequence, different whitespace and/or letter case."""
    variant = rng.choice(("wrap", "wrap-lower", "flatten", "upper", "lower"))
    paragraphs = [p.replace("\n", " ") for p in text.split("\n\n")]
    if variant.startswith("wrap"):
        width = rng.randint(44, 78)
        out = "\n\n".join(
            textwrap.fill(p, width=width, break_long_words=False, break_on_hyphens=False) for p in paragraphs
        )
    elif variant == "flatten":
        out = "  ".join(paragraphs)
    else:
        out = text
    if variant.endswith("lower"):
        out = out.lower()
    elif variant == "upper":
        out = out.upper()
    return out


# ---------------------------------------------------------------------------------------------
# Writers (everything is serialised in memory, then written atomically)
# ---------------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    Location.of(str(path)).write_atomic(data)


def _jsonl_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _table(records: list[dict]) -> pa.Table:
    cols = list(records[0])
    return pa.table({c: pa.array([r[c] for r in records], type=pa.string()) for c in cols})


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=256, compression="zstd")
    return sink.getvalue().to_pybytes()


def _arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=128):
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _zstd_bytes(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def _write_shard(path: Path, lines: list[str], records: list[dict]) -> None:
    """``lines`` are the JSONL lines (including bad ones); ``records`` the table rows."""
    name = path.name
    if name.endswith(".parquet"):
        _atomic_write(path, _parquet_bytes(_table(records)))
    elif name.endswith(".arrow"):
        _atomic_write(path, _arrow_bytes(_table(records)))
    elif name.endswith(".jsonl.gz"):
        _atomic_write(path, _gzip_bytes(_jsonl_bytes(lines)))
    elif name.endswith(".jsonl.zst"):
        _atomic_write(path, _zstd_bytes(_jsonl_bytes(lines)))
    elif name.endswith(".jsonl"):
        _atomic_write(path, _jsonl_bytes(lines))
    else:  # pragma: no cover - SHARDS is fixed
        raise ValueError(f"unknown shard format: {path}")


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def make_demo_workspace(root: Path, seed: int = 7) -> DemoWorkspace:
    """Generate the demo workspace under ``root`` (created if needed; demo files overwritten).

    Deterministic: the same ``seed`` gives byte-identical files on every run.
    """
    root = Path(root)
    ref_dir = root / "references"
    data_dir = root / "dataset"
    truth_path = root / "truth.json"

    # --- references ---------------------------------------------------------------------------
    rng = random.Random(f"contamscan-demo:{seed}:references")
    references: list[dict] = []  # {"id", "model", "text", "file"}
    for file_tag in ("a", "b"):
        for i in range(N_REFERENCES_PER_FILE):
            model = MODELS[rng.randrange(len(MODELS))]
            references.append(
                {"id": f"out-{file_tag}-{i:04d}", "model": model, "text": _model_text(rng, model), "file": file_tag}
            )
    refs_a = [{"id": r["id"], "model": r["model"], "text": r["text"]} for r in references if r["file"] == "a"]
    lines_b = []
    for r in references:
        if r["file"] == "b":
            meta = {"model": r["model"], "temperature": round(0.2 + 0.1 * (int(r["id"][-4:]) % 9), 1)}
            lines_b.append(_dumps({"id": r["id"], "model": r["model"], "meta": meta, "text": r["text"]}))
    _atomic_write(ref_dir / "outputs_a.parquet", _parquet_bytes(_table(refs_a)))
    _atomic_write(ref_dir / "outputs_b.jsonl", _jsonl_bytes(lines_b))

    # --- dataset ------------------------------------------------------------------------------
    rng = random.Random(f"contamscan-demo:{seed}:dataset")
    ref_order = list(range(len(references)))
    rng.shuffle(ref_order)
    next_ref = 0
    planted: list[dict] = []
    decoys: list[dict] = []
    bad_records: list[dict] = []
    documents_per_shard: dict[str, int] = {}
    records_per_shard: dict[str, int] = {}

    for rel, n_docs, rate, n_decoys, n_bad, genres in SHARDS:
        prefix = rel.split("/")[0] + "-" + rel.split("/")[1].split(".")[0].split("-")[1]
        k = round(n_docs * rate)
        n_edit = round(k * 0.35)
        n_reform = max(1, round(k * 0.2)) if k else 0
        kinds = ["exact"] * (k - n_edit - n_reform) + ["edited"] * n_edit + ["reformatted"] * n_reform
        rng.shuffle(kinds)
        # Planted rows stay before any bad line, so "row" is unambiguous for every reader.
        limit = int(n_docs * 0.6) if n_bad else n_docs
        special = rng.sample(range(limit), k + n_decoys)
        planted_rows = dict(zip(special[:k], kinds))
        decoy_rows = set(special[k:])
        last_special = max(special) if special else -1

        docs: list[dict] = []  # valid documents in order, with bookkeeping
        for row in range(n_docs):
            doc_id = f"{prefix}-{row:05d}"
            if row in planted_rows:
                ref = references[ref_order[next_ref]]
                next_ref += 1
                kind = planted_rows[row]
                if kind == "exact":
                    text = ref["text"]
                elif kind == "edited":
                    text = _edit_text(rng, ref["text"], rate=rng.uniform(0.015, 0.045))
                else:
                    text = _reformat_text(rng, ref["text"])
                docs.append({"id": doc_id, "text": text, "_planted": (ref, kind)})
            elif row in decoy_rows:
                model = MODELS[rng.randrange(len(MODELS))]
                docs.append({"id": doc_id, "text": _model_text(rng, model), "_decoy": model})
            else:
                genre = rng.choice(genres)
                lo, hi = (200, 420) if genre == "story" else ((40, 120) if genre == "note" else (80, 380))
                docs.append({"id": doc_id, "text": _human_text(rng, genre, lo, hi)})

        # Interleave bad lines (JSONL only) after the last planted/decoy record.
        lines: list[str] = [_dumps({"id": d["id"], "text": d["text"]}) for d in docs]
        physical: list[dict | None] = list(docs)
        if n_bad:
            bad_kinds = ["malformed_json", "null_text", "malformed_json"][:n_bad]
            positions = sorted(rng.sample(range(last_special + 2, n_docs), n_bad))
            for offset, (pos, kind) in enumerate(zip(positions, bad_kinds)):
                at = pos + offset
                bad_id = f"{prefix}-bad{offset}"
                if kind == "null_text":
                    line = _dumps({"id": bad_id, "text": None})
                elif offset == 0:
                    line = '{"id": "' + bad_id + '", "text": "The harbour commission said the'
                else:
                    line = "<<<<<<< this line is not JSON >>>>>>>"
                lines.insert(at, line)
                physical.insert(at, None)
                bad_records.append({"shard": rel, "row": at, "line": at + 1, "id": bad_id, "kind": kind})

        for row, d in enumerate(physical):
            if d is None:
                continue
            if "_planted" in d:
                ref, kind = d["_planted"]
                planted.append(
                    {
                        "shard": rel,
                        "row": row,
                        "id": d["id"],
                        "ref_id": ref["id"],
                        "model": ref["model"],
                        "kind": kind,
                        "jaccard5": round(_jaccard5(d["text"], ref["text"]), 4),
                    }
                )
            elif "_decoy" in d:
                decoys.append({"shard": rel, "row": row, "id": d["id"], "model": d["_decoy"]})

        records = [{"id": d["id"], "text": d["text"]} for d in docs]
        _write_shard(data_dir / rel, lines, records)
        documents_per_shard[rel] = n_docs
        records_per_shard[rel] = len(lines)

    per_model = {m: sum(1 for r in references if r["model"] == m) for m in MODELS}
    truth = {
        "seed": seed,
        "planted": planted,
        "decoys": decoys,
        "bad_records": bad_records,
        "documents_per_shard": documents_per_shard,
        "records_per_shard": records_per_shard,
        "references": {
            "files": ["references/outputs_a.parquet", "references/outputs_b.jsonl"],
            "count": len(references),
            "per_model": per_model,
            "label_fields": {"outputs_a.parquet": "model", "outputs_b.jsonl": "model (also meta.model)"},
        },
    }
    _atomic_write(truth_path, (json.dumps(truth, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return DemoWorkspace(root=root, references=ref_dir, dataset=data_dir, truth=truth_path)
