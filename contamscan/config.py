"""Parameters, with their defaults, help and validation in one place.

Each option is a field of a frozen dataclass whose metadata (:func:`option`) holds its help
text and how the command line spells it; ``contamscan.cli.options`` generates the click
options from these fields, so a new option is one field here (and the code that uses it).
Metadata also says whether an option changes a scan's results (``results``: part of what
``--resume`` checks) and whether it is a match rule recorded in report.json (``rule``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields

from .errors import ContamscanError


def option(default, help: str, *, flag: str | None = None, unit: int = 1, choices: tuple | None = None,
           cli: bool = True, results: bool = False, rule: bool = False, multiple: bool = False,
           path: bool = False, empty_is_none: bool = False, metavar: str | None = None,
           old_flags: tuple = ()):
    """A dataclass field with the metadata the CLI and the scan read.

    Args:
        default: the default value.
        help: one line for ``--help``.
        flag: the command-line flag, if not ``--`` + the name with dashes.
        unit: the flag takes the value in this unit (``--batch-mb`` for ``batch_bytes``: 2**20).
        choices: the accepted values.
        cli: False for options of the Python API only.
        results: the option changes what a scan finds (a resumed scan must have the same).
        rule: a match rule, recorded in report.json's ``match_rules``.
        multiple: the flag may be repeated (a tuple of values).
        path: the value is a path or URI.
        empty_is_none: an empty string on the command line means None.
        metavar: how ``--help`` names the value.
        old_flags: former spellings of the flag, still accepted with a deprecation warning.
    """
    return field(default=default, metadata={"help": help, "flag": flag, "unit": unit, "choices": choices,
                                            "cli": cli, "results": results, "rule": rule, "multiple": multiple,
                                            "path": path, "empty_is_none": empty_is_none, "metavar": metavar,
                                            "old_flags": tuple(old_flags)})


def flag_of(f) -> str:
    """The command-line flag of a dataclass field made by :func:`option`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def replace_options(options, overrides: dict):
    """``options`` with the fields given in ``overrides`` replaced (an unknown name is a TypeError,
    as for a function's keyword arguments)."""
    if not overrides:
        return options
    names = {f.name for f in fields(options)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; {type(options).__name__} has "
                        f"{', '.join(sorted(names))}")
    return dataclasses.replace(options, **overrides)


def available_cpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may use: its affinity mask (``taskset``, a container's cpuset),
    capped by a cgroup v2 CPU quota (``cpu.max``: QUOTA PERIOD, rounded up) when there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    own = ""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), "")
    except OSError:
        pass
    parts = [p for p in own.split("/") if p]
    for k in range(len(parts), -1, -1):  # this cgroup and its ancestors: the tightest quota
        try:
            with open(os.path.join(cgroup, *parts[:k], "cpu.max")) as f:
                quota, period = f.read().split()[:2]
            if quota != "max" and int(period) > 0:
                n = min(n, max(1, -(-int(quota) // int(period))))
        except (OSError, ValueError):
            pass
    return max(1, n)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ContamscanError(message)


@dataclass(frozen=True)
class IndexParams:
    """How references are turned into signatures and LSH bands.

    A scan always uses the parameters of its index, so that document and reference
    signatures are comparable.

    Example:
        >>> IndexParams(threshold=0.6).num_perm
        128
    """

    threshold: float = option(0.5, "Estimated Jaccard similarity at which a document is flagged; sets the LSH bands.")
    num_perm: int = option(128, "MinHash permutations.")
    ngram: int = option(5, "Words per shingle.")
    seed: int = option(1, "Permutation seed (datasketch's default is 1).")
    anchor_bits: int = option(3, "Partial matches: one shingle in 2**N is an anchor; 0 = whole-document matches only.")
    max_anchor_refs: int = option(64, "Anchors shared by more references are stock phrases: dropped.", cli=False)

    def __post_init__(self):
        _check(0.0 < self.threshold < 1.0, f"`threshold` must be between 0 and 1 (exclusive), got {self.threshold}")
        _check(16 <= self.num_perm <= 1024, f"`num_perm` must be between 16 and 1024, got {self.num_perm}")
        _check(1 <= self.ngram <= 32, f"`ngram` must be between 1 and 32, got {self.ngram}")
        _check(0 <= self.seed < 2**32, f"`seed` must be a 32-bit unsigned integer, got {self.seed}")
        _check(0 <= self.anchor_bits <= 8, f"`anchor_bits` must be between 0 and 8, got {self.anchor_bits}")
        _check(self.max_anchor_refs >= 1, f"`max_anchor_refs` must be positive, got {self.max_anchor_refs}")


@dataclass(frozen=True)
class BuildOptions:
    """How reference records are read when an index is built (or added to).

    Example:
        >>> BuildOptions(label_field="meta.model").id_field
        'id'
    """

    text_field: str = option("text", "Field holding the text: a selector (doc.body, messages[-1].content, "
                                     "'messages[role=assistant].content', text|content).")
    label_field: str = option("model", "Field naming the model that wrote the text (a selector).")
    label: str | None = option(None, "One label for every reference (instead of --label-field).")
    label_from_path: bool = option(False, "Label each reference by the name of its file's directory (instead of "
                                          "--label-field).")
    id_field: str | None = option("id", "Field with a unique reference id; where absent, ids are FILE:ROW.",
                                  empty_is_none=True)
    store_text: bool = option(False, "Keep reference texts in the index (for `scan --verify exact` and evidence "
                                     "in reports).")
    strict: bool = option(False, "Fail on the first bad record instead of counting and skipping it.")
    # text people wrote that models also quote (public-domain books, encyclopaedias, speeches):
    # a passage a document shares with a reference only through it does not flag the document
    known_human: tuple = option((), "Text known to be human-written (files, directories, globs; its field is "
                                    "--text-field): passages a reference shares with it flag no document "
                                    "(repeatable).", multiple=True, metavar="PATH")

    def __post_init__(self):
        _check(not (self.label is not None and self.label_from_path),
               "`label` and `label_from_path` exclude each other: give one")
        _check(self.label is None or bool(self.label.strip()), "`label` must not be empty")


@dataclass(frozen=True)
class ScanOptions:
    """Everything a scan needs besides its inputs, its index and its output directory.

    Example:
        >>> ScanOptions(workers=8, write_clean="crawl-clean/").match_rules()
        {'verify': 'estimate', 'min_anchors': 4.0, 'min_tight_anchors': 3.0, 'miss_penalty': 0.1, 'min_words': 25}
    """

    text_field: str = option("text", "Field holding the text: a selector (doc.body, messages[-1].content, "
                                     "'messages[role=assistant].content', text|content).", results=True)
    per_turn: bool = option(False, "Each list item the text selector picks (each assistant turn) is matched on its "
                                   "own; matches name their turn.", results=True)
    id_field: str | None = option("id", "Field copied into matches as doc_id, where present.", results=True,
                                  empty_is_none=True)
    workers: int = option(0, "Worker processes; 0 = one per CPU this process may use (affinity, cgroup quota).")
    executor: str = option("local", "local: a process pool here; ray: tasks on a Ray cluster "
                                    "(pip install 'contamscan[ray]').", choices=("local", "ray"))
    ray_address: str | None = option(None, "Ray cluster address (e.g. 10.0.0.5:6379); default: a local cluster.")
    # Parquet shards are scanned as pieces of whole row groups of at most this, in parallel
    # (not with clean/flagged outputs or a profile, which need the whole shard in one task);
    # a small dataset in smaller pieces, so that workers finish together (scanner.shard.plan_units)
    piece_bytes: int = option(256 << 20, "Parquet shards are scanned as pieces of whole row groups of at most this "
                                         "size (a small dataset's in smaller ones, so that workers finish together), "
                                         "in parallel.", flag="--piece-mb", unit=1 << 20)
    strict: bool = option(False, "A bad record fails its shard instead of being counted and skipped.", results=True)
    batch_bytes: int = option(16 << 20, "Text per batch, in MB (bounds memory per worker).", flag="--batch-mb",
                              unit=1 << 20)
    top_matches: int = option(10, "Strongest matches kept per shard in report.json.", cli=False)
    # "estimate": similarity and containment estimated from signatures and anchors;
    # "exact": flags re-checked on the exact shingle sets (needs an index with stored text)
    verify: str = option("estimate", "exact: re-check every flag on the exact shingle sets (needs "
                                     "`index build --store-text`).", choices=("estimate", "exact"), results=True,
                         rule=True)
    # partial matches (indexes with anchors): a document is flagged when one reference
    # shares a co-linear chain of anchors with it (index.kernels.best_chain) that scores at
    # least `min_anchors` (+1 per shared anchor, -`miss_penalty` per unshared one inside the
    # chain, less its drift) and spans `min_words` words; a tight chain (it skips no anchor of
    # the document and each of its anchors is in that reference only: a verbatim passage of
    # text no other reference has) needs `min_tight_anchors`, which lets a ~50-word passage
    # (~6 anchors expected, fewer than 4 one time in five) be found
    min_anchors: float = option(4.0, "Partial matches: score a chain of shared anchors must reach (+1 shared, "
                                     "-0.1 unshared, less its drift).", results=True, rule=True)
    min_tight_anchors: float = option(3.0, "Partial matches: score a tight chain (no anchor skipped, each in "
                                           "that reference only) must reach.", cli=False, results=True, rule=True)
    miss_penalty: float = option(0.1, "Partial matches: what an unshared anchor inside a chain costs.", cli=False,
                                 results=True, rule=True)
    min_words: int = option(25, "Partial matches: words a matched passage must span.", results=True, rule=True)
    # copies of the input shards without / with only the flagged documents (same relative
    # paths, formats and schemas); None: not written
    write_clean: str | None = option(None, "Write each shard without its flagged documents to DIR (same relative "
                                           "path, format and schema).", path=True, results=True)
    write_flagged: str | None = option(None, "Write each shard's flagged documents only to DIR (same relative path, "
                                             "format and schema).", path=True, results=True)
    # one row per input record, aligned with the shard (dolma's attributes layout, or
    # Parquet): flagged, label, reference, spans; None: not written
    write_annotations: str | None = option(None, "Write, per shard, one annotation row per input record, in order "
                                                 "(id, flagged, label, ref_id, spans) to DIR, mirroring the shard paths "
                                                 "(dolma attributes layout).", path=True, results=True)
    annotations_format: str = option("jsonl", "Annotation files: jsonl (gzip'd JSON Lines, dolma attributes) or "
                                              "parquet.", choices=("jsonl", "parquet"), results=True)
    # what the scan expects of its index (None: anything); a mismatch fails before any work
    expect_threshold: float | None = option(None, "Fail unless the index was built with this threshold.",
                                            flag="--expect-threshold", old_flags=("--threshold",))
    expect_ngram: int | None = option(None, "Fail unless the index was built with this ngram.", flag="--ngram")
    expect_num_perm: int | None = option(None, "Fail unless the index was built with this num_perm.",
                                         flag="--num-perm")
    # a style profile (`contamscan profile build`): each shard also gets the estimated share
    # of AI-written documents and the model family it resembles; None: not estimated
    profile: str | None = option(None, "Style profile from `profile build`: also estimate each shard's share of "
                                       "AI-written documents (alpha, with a 95% interval) and the model family it "
                                       "resembles.", path=True, results=True)

    # inputs: files whose relative path or path matches one of these globs are not scanned
    exclude: tuple = option((), "Do not scan files whose relative path or path matches GLOB (repeatable; * "
                                "crosses /).", multiple=True, metavar="GLOB", results=True)
    # loud failures: a shard whose bad records are more than this share of its records fails
    max_bad_share: float = option(0.01, "A shard fails when its bad records are more than this share of its "
                                        "records (1 = never).", results=True)
    # a quick look: the first `limit` documents of each shard, or a deterministic share of them
    limit: int | None = option(None, "Quick look: scan only the first N documents of each shard (the report says "
                                     "so).", results=True)
    sample: float | None = option(None, "Quick look: scan a deterministic share P of each shard's records (by a "
                                        "hash of the row number; the report says so).", results=True)

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(self.exclude))
        _check(0 <= self.max_bad_share <= 1, f"`max_bad_share` must be between 0 and 1, got {self.max_bad_share}")
        _check(self.limit is None or self.limit >= 1, f"`limit` must be at least 1, got {self.limit}")
        _check(self.sample is None or 0 < self.sample <= 1, f"`sample` must be in (0, 1], got {self.sample}")
        _check(not ((self.limit is not None or self.sample is not None) and (self.write_clean or self.write_flagged)),
               "`limit` and `sample` scan part of each shard, and `write_clean` / `write_flagged` copy whole shards: "
               "use one or the other")
        _check(not ((self.limit is not None or self.sample is not None) and self.write_annotations),
               "`limit` and `sample` scan part of each shard, and `write_annotations` annotates every record: use one "
               "or the other")
        _check(self.annotations_format in ("jsonl", "parquet"),
               f"`annotations_format` must be 'jsonl' or 'parquet', got {self.annotations_format!r}")
        _check(self.executor in ("local", "ray"), f"`executor` must be 'local' or 'ray', got {self.executor!r}")
        _check(self.workers >= 0, f"`workers` must be >= 0, got {self.workers}")
        _check(self.batch_bytes >= 1 << 16, "`batch_bytes` must be at least 64 KiB")
        _check(self.piece_bytes >= 1, f"`piece_bytes` must be positive, got {self.piece_bytes}")
        _check(self.min_anchors >= 2, f"`min_anchors` must be at least 2, got {self.min_anchors}")
        _check(2 <= self.min_tight_anchors <= self.min_anchors,
               f"`min_tight_anchors` must be between 2 and `min_anchors`, got {self.min_tight_anchors}")
        _check(self.miss_penalty >= 0, f"`miss_penalty` must be >= 0, got {self.miss_penalty}")
        _check(self.verify in ("estimate", "exact"), f"`verify` must be 'estimate' or 'exact', got {self.verify!r}")
        _check(self.min_words >= 1, f"`min_words` must be positive, got {self.min_words}")

    @property
    def n_workers(self) -> int:
        return self.workers or available_cpus()

    def sampling(self) -> dict | None:
        """What report.json's ``sampling`` says of a quick look (None: every document was scanned)."""
        if self.limit is None and self.sample is None:
            return None
        return {"limit": self.limit, "sample": self.sample}

    def result_fields(self) -> dict:
        """The options a scan's results depend on (not workers, batch size or display)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["results"]}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}  # as JSON holds them

    def match_rules(self) -> dict:
        """The match rules, as report.json records them (with a ``note`` where a mode's recall
        is known to be lower, so that a rate is not read as more than it is)."""
        rules = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["rule"]}
        if self.verify == "exact":
            rules["note"] = ("verify exact drops flags that do not hold on the exact shingle sets: on the accuracy "
                             "benchmark its recall is 0.89-0.94 on shuffled sentences, half of the content words "
                             "replaced and 300-600 character passages (0.99-1.00 otherwise), so rates are lower "
                             "bounds there")
        return rules


@dataclass(frozen=True)
class ProfileParams:
    """How a style profile is built (recorded in its manifest; scans use the profile's).

    Example:
        >>> ProfileParams(clusters=3).max_words
        1024
    """

    windows: tuple = option((16, 32, 64), "Window lengths in words; a document uses the longest it holds.", cli=False)
    max_windows: int = option(16, "Windows per document, spread over its first max_windows * max(windows) words.",
                              cli=False)
    vocab_size: int = option(4000, "Words chosen for human-vs-AI divergence (plus 100 per AI family).")
    label_words: int = option(100, "Per AI label, words that set it apart from the other labels.", cli=False)
    min_docs: int = option(10, "A candidate word occurs in at least this many profile documents.", cli=False)
    smoothing: float = option(10.0, "Pseudo-windows of the pooled rate added to each component's counts.", cli=False)
    clusters: int = option(2, "Human components per group, refined by classification EM.")
    min_cluster_docs: int = option(20, "A group is split only when each part would have this many documents.",
                                   cli=False)
    cluster_iterations: int = option(30, "Classification EM iterations for the human components.", cli=False)
    seed: int = option(0, "Seed of the human sub-components' start.", cli=False)
    fallback: str = option("auto", "A broad human component from wordfreq's English word frequencies, for human "
                                   "genres the baseline lacks: auto = when wordfreq is installed "
                                   "(pip install 'contamscan[style]'), wordfreq = required, none = without.",
                           choices=("auto", "wordfreq", "none"))

    def __post_init__(self):
        _check(self.fallback in ("auto", "wordfreq", "none"),
               f"`fallback` must be 'auto', 'wordfreq' or 'none', got {self.fallback!r}")
        w = tuple(int(x) for x in self.windows)
        _check(bool(w) and list(w) == sorted(set(w)) and w[0] >= 1,
               f"`windows` must be increasing positive word counts, got {self.windows}")
        object.__setattr__(self, "windows", w)
        _check(1 <= self.max_windows <= 16, f"`max_windows` must be between 1 and 16, got {self.max_windows}")
        _check(self.vocab_size >= 1 and self.label_words >= 0 and self.min_docs >= 1,
               "`vocab_size` and `min_docs` must be positive, `label_words` >= 0")
        _check(self.smoothing > 0, f"`smoothing` must be positive, got {self.smoothing}")
        _check(self.clusters >= 1, f"`clusters` must be at least 1, got {self.clusters}")

    @property
    def max_words(self) -> int:
        return self.max_windows * self.windows[-1]


@dataclass(frozen=True)
class ProfileBuildOptions:
    """How the human and AI records of a style profile are read and grouped.

    Example:
        >>> ProfileBuildOptions(families=["anthropic=claude-*"]).families
        ('anthropic=claude-*',)
    """

    text_field: str = option("text", "Field holding the text.")
    label_field: str = option("model", "(AI) field naming the model.")
    family_by: str = option("lineage", "Families of the AI components (one per model label): lineage = the model "
                                       "line (chatgpt-4o and openai/o3 -> gpt, a gemma fine-tune -> gemma); org = "
                                       "the organisation prefix (openai/o3 -> openai); label = each model its own.",
                            choices=("lineage", "org", "label"))
    families: tuple = option((), "Put labels matching the globs in family NAME (repeatable; checked before "
                                 "--family-by).", flag="--family", multiple=True)
    group_field: str | None = option("source", "(human) field grouping the baseline (each group gets its own "
                                               "components); files without it are one group each.",
                                     empty_is_none=True)
    strict: bool = option(False, "Fail on the first bad record instead of counting and skipping it.")

    def __post_init__(self):
        _check(self.family_by in ("lineage", "org", "label"),
               f"`family_by` must be 'lineage', 'org' or 'label', got {self.family_by!r}")
        object.__setattr__(self, "families", tuple(self.families))
