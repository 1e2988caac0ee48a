"""How far apart a profile's components are, as a tree (``contamscan profile tree``), and where
a shard's AI share attaches to it.

Distance between two components: the symmetric Jeffreys divergence between their rates of
each vocabulary word occurring in a window,

    J(p, q) = (p - q) * (logit p - logit q)   (= KL(p || q) + KL(q || p) for Bernoullis),

averaged over the vocabulary, at one window length: the longest that every component has
documents of (64 words by default). The rates are the profile's own smoothed rates (those the
estimate scores documents with), so a component with few documents sits nearer the pooled
rate, and nearer everything, than a large one.

The tree is average-linkage agglomerative clustering (UPGMA): the two closest clusters merge,
at a height equal to the mean distance between their members, until one is left. Heights
never decrease toward the root. It shows resemblance of word usage, not lineage: two models
of one family usually merge early, but a fine-tune or a distilled model may sit nearer
another maker's models than its own family's.

:func:`nearest_component` and :func:`typical_within_family_distance` let a scan say where a
shard's AI share attaches ("resembles X at distance d; models of one family are typically t
apart"); :func:`share_rates` turns a shard's observed window counts into the AI share's rates.
"""

from __future__ import annotations

import fnmatch
import html
from dataclasses import dataclass

import numpy as np

from ..errors import ContamscanError
from .profile import AI, HUMAN, Profile

EPS = 1e-9  # rates are clipped to [EPS, 1 - EPS], as the profile's own are
HUMAN_FAMILY = "human"  # the family shown for the human baseline's components


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class Distances:
    """Pairwise distances between components of a profile.

    Attributes:
        names: the components, in the profile's order (human first when included).
        kinds: "human" or "ai" per component.
        families: the family of each component (``None`` where unknown).
        matrix: float64 [n, n], symmetric, zero on the diagonal: mean Jeffreys divergence per word.
        window: the window length (in words) the rates are taken at.

    Example:
        >>> d = Distances(("a", "b"), ("ai", "ai"), ("x", "x"), np.array([[0.0, 0.2], [0.2, 0.0]]), 64)
        >>> d.between("a", "b")
        0.2
    """

    names: tuple
    kinds: tuple
    families: tuple
    matrix: np.ndarray
    window: int

    def between(self, a: str, b: str) -> float:
        """The distance between components ``a`` and ``b``."""
        i, j = self.names.index(a), self.names.index(b)
        return float(self.matrix[i, j])


@dataclass(frozen=True)
class Node:
    """A node of the tree: a leaf (one component) or the merge of two clusters.

    Attributes:
        height: for a merge, the mean distance between the members of its two children; 0
            for a leaf.
        name: the component (leaves only).
        kind: "human" or "ai" (leaves only).
        family: the component's family (leaves only; ``None`` where unknown).
        children: the two merged clusters (empty for a leaf).

    Example:
        >>> leaf = Node(0.0, "google/gemma-3-4b-it", "ai", "gemma")
        >>> Node(0.01, children=(leaf, Node(0.0, "google/gemma-3-12b-it", "ai", "gemma"))).leaves
        ('google/gemma-3-4b-it', 'google/gemma-3-12b-it')
    """

    height: float
    name: str | None = None
    kind: str | None = None
    family: str | None = None
    children: tuple = ()

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def leaves(self) -> tuple:
        """The components under this node, in the tree's (drawing) order."""
        if self.is_leaf:
            return (self.name,)
        return tuple(x for c in self.children for x in c.leaves)


@dataclass(frozen=True)
class Tree:
    """A profile's components as an average-linkage tree.

    Attributes:
        root: the top merge (a leaf when there is one component).
        distances: the distances it was built from.
        typical_within_family: median distance between two components of one family (``None``
            when no family has two components).
        within_family_pairs: how many pairs that median is over.
        profile: the profile's path, as shown to people.
    """

    root: Node
    distances: Distances
    typical_within_family: float | None
    within_family_pairs: int
    profile: str = ""


@dataclass(frozen=True)
class Attachment:
    """Where an AI share attaches: the nearest AI component and how near that is.

    Attributes:
        component: the nearest AI component.
        family: its family (``None`` where unknown).
        distance: the distance to it (mean Jeffreys divergence per word).
        runner_up: the second-nearest AI component (``None`` with one component).
        runner_up_distance: the distance to it.
        typical_within_family: median distance between two components of one family, the
            scale to read ``distance`` against (``None`` when no family has two components).
        relative: ``distance / typical_within_family`` (``None`` without that scale). Read it
            against held-out shards, not against 1: on real outputs (tests/style/test_tree.py) a
            pure shard of a profiled model's unseen outputs reads ~1, the same mixed half and
            half with human text ~2.5-3 (taking the human part out adds noise), a model the
            profile lacks 2-4 even pure. A threshold for "none of these" wants calibrating on
            shards like the scan's (benchmarks/bench_attribution.py records the distances).
        window: the window length (words) of the rates compared.
    """

    component: str
    family: str | None
    distance: float
    runner_up: str | None
    runner_up_distance: float | None
    typical_within_family: float | None
    relative: float | None
    window: int


# --------------------------------------------------------------------------- distances


def component_families(profile: Profile, rules=()) -> dict:
    """The family of every component of a profile.

    AI components: the first of ``rules`` that matches (``[(family, [glob, ...]), ...]``, from
    :func:`~contamscan.style.profile.parse_family_rules`), else the manifest's ``families``
    (``{component: family}``) when it has one, else the family whose ``labels`` entry
    (``{family: {label: documents}}``) names the component or is the component, else ``None``.
    Human components are ``"human"``.

    Args:
        profile: an opened profile.
        rules: family rules checked first.

    Returns:
        {component: family or None}.

    Example:
        >>> component_families(profile)  # doctest: +SKIP
        {'writing#1': 'human', 'claude': 'claude', 'gpt': 'gpt'}
    """
    m = profile.manifest
    explicit = m.get("families") if isinstance(m.get("families"), dict) else {}
    from_labels = {}
    for fam, members in (m.get("labels") or {}).items():
        from_labels[fam] = fam
        for label in members or {}:
            from_labels.setdefault(label, fam)
    out = {}
    for c, k in zip(profile.components, profile.kinds):
        if k == HUMAN:
            out[c] = HUMAN_FAMILY
            continue
        fam = next((name for name, globs in rules if any(fnmatch.fnmatchcase(c, g) for g in globs)), None)
        out[c] = fam if fam is not None else explicit.get(c, from_labels.get(c))
    return out


def _window_index(profile: Profile, comps: np.ndarray, window: int | None) -> int:
    windows = list(profile.params.windows)
    if window is not None:
        if window not in windows:
            raise ContamscanError(f"window {window} is not one of the profile's window lengths {windows}")
        b = windows.index(window)
        if not (profile.documents[b, comps] > 0).all():
            raise ContamscanError(f"some components have no documents of {window} words in {profile.path}")
        return b
    ok = [b for b in range(len(windows)) if (profile.documents[b, comps] > 0).all()]
    if not ok:
        raise ContamscanError(f"{profile.path}: no window length has documents of every component")
    return max(ok)


def _rates(profile: Profile, b: int) -> np.ndarray:
    """The profile's smoothed rates at window index ``b``, [components, vocab] (from the
    logits it scores with)."""
    return 1.0 / (1.0 + np.exp(-profile.logit[b]))


def _jeffreys_mean(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the Jeffreys divergence between Bernoulli rates ``p`` and
    ``q`` (broadcast)."""
    p, q = np.clip(p, EPS, 1 - EPS), np.clip(q, EPS, 1 - EPS)
    lp, lq = np.log(p) - np.log1p(-p), np.log(q) - np.log1p(-q)
    return ((p - q) * (lp - lq)).mean(-1)


def distances(profile: Profile, kinds=(AI,), families: dict | None = None, window: int | None = None) -> Distances:
    """Distances between the components of ``profile`` of the given kinds.

    Args:
        profile: an opened profile.
        kinds: which components: ``("ai",)`` (default) or ``("human", "ai")``.
        families: {component: family}; default :func:`component_families`.
        window: window length in words; default the longest every chosen component has
            documents of.

    Returns:
        The :class:`Distances`.

    Raises:
        ContamscanError: no component of those kinds, or no common window length.

    Example:
        >>> d = distances(open_profile("style.profile"))  # doctest: +SKIP
        >>> d.between("claude", "gpt")  # doctest: +SKIP
        0.0213
    """
    fams = component_families(profile) if families is None else families
    comps = np.array([g for g, k in enumerate(profile.kinds) if k in kinds], np.int64)
    if not len(comps):
        raise ContamscanError(f"{profile.path} has no components of kind {' or '.join(kinds)}")
    b = _window_index(profile, comps, window)
    p = _rates(profile, b)[comps]
    d = np.stack([_jeffreys_mean(p[i][None, :], p) for i in range(len(comps))])
    d = (d + d.T) / 2  # exact symmetry whatever the rounding
    np.fill_diagonal(d, 0.0)
    names = tuple(profile.components[g] for g in comps)
    return Distances(names, tuple(profile.kinds[g] for g in comps), tuple(fams.get(n) for n in names), d,
                     int(profile.params.windows[b]))


def _within_family(d: Distances) -> list:
    """Distances between pairs of AI components of one (known) family."""
    out = []
    for i in range(len(d.names)):
        for j in range(i + 1, len(d.names)):
            if d.kinds[i] == d.kinds[j] == AI and d.families[i] is not None and d.families[i] == d.families[j]:
                out.append(float(d.matrix[i, j]))
    return out


def typical_within_family_distance(profile: Profile, families: dict | None = None, window: int | None = None) -> float | None:
    """The typical distance between two AI components of one family: the median over every
    such pair in the profile. The scale against which "this AI share is at distance d from
    component X" is read: d near it or below means as close as a sibling model is.

    Needs per-model components (a profile whose components are families has no pair).

    Args:
        profile: an opened profile.
        families: {component: family}; default :func:`component_families`.
        window: window length in words (default as :func:`distances`).

    Returns:
        The median distance, or ``None`` when no family has two AI components.

    Example:
        >>> typical_within_family_distance(profile, {"openai/o3": "gpt", "openai/gpt-5-mini": "gpt",
        ...                                           "z-ai/glm-4.5": "glm"})  # doctest: +SKIP
        0.0141
    """
    pairs = _within_family(distances(profile, (AI,), families, window))
    return float(np.median(pairs)) if pairs else None


def share_rates(profile: Profile, obs_by_window: np.ndarray, nd: np.ndarray, alpha: float,
                window: int | None = None) -> np.ndarray:
    """The per-word window occurrence rates of a shard's AI share, at one window length: the
    shard's rates with the human baseline's part taken out, ``(r - (1 - α) h) / α``, then
    smoothed toward the profile's mean rate with the profile's ``smoothing`` pseudo-windows
    (as the components' own rates are, so that distances compare like with like).

    The smoothing counts the share as α² · n documents (n the shard's documents of that
    length): the variance of ``(r - (1 - α) h) / α`` is that of ``r`` over α².

    Approximate: it takes the shard's human part to be like the baseline as a whole, which is
    the less true the more the shard's human text differs from it, and is noisy when α² · n
    is small; an error in α leaves some human (or AI) rates in the result.

    Args:
        profile: the profile the shard was scored with.
        obs_by_window: float [windows, vocab]: windows holding each word, per window length
            (a StyleTally's ``obs / OBS_SCALE``; an ai_share's ``_state`` holds it for its
            non-zero words).
        nd: float [windows]: scored documents per window length (StyleTally's ``nd``).
        alpha: the shard's estimated AI share (> 0).
        window: window length in words; default the longest with documents in the shard and
            in every AI component.

    Returns:
        float64 [vocab]: rates for :func:`nearest_component`.

    Raises:
        ContamscanError: α not positive, or no window length with data.

    Example:
        >>> t = StyleTally(profile); t.add(texts); share = t.result()  # doctest: +SKIP
        >>> r = share_rates(profile, t.obs / OBS_SCALE, t.nd, share["alpha"])  # doctest: +SKIP
        >>> nearest_component(profile, r).component  # doctest: +SKIP
        'google/gemma-3-12b-it'
    """
    if not alpha or alpha <= 0:
        raise ContamscanError("an AI share's rates need α > 0")
    obs, nd = np.asarray(obs_by_window, np.float64), np.asarray(nd, np.float64)
    windows = list(profile.params.windows)
    ai = np.array([g for g, k in enumerate(profile.kinds) if k == AI], np.int64)
    if window is None:
        ok = [b for b in range(len(windows)) if nd[b] > 0 and (profile.documents[b, ai] > 0).all()]
        if not ok:
            raise ContamscanError("no window length has documents in both the shard and every AI component")
        b = max(ok)
    else:
        b = _window_index(profile, ai, window)
        if nd[b] <= 0:
            raise ContamscanError(f"the shard has no documents of {window} words")
    r = obs[b] / nd[b]
    raw = np.clip((r - (1 - alpha) * profile.human_rate[b]) / alpha, 0.0, 1.0)
    docs = profile.documents[b]
    mean_rate = (_rates(profile, b) * docs[:, None]).sum(0) / max(docs.sum(), 1e-12)
    s, n = profile.params.smoothing, alpha * alpha * nd[b]
    return np.clip((raw * n + s * mean_rate) / (n + s), EPS, 1 - EPS)


def distances_to(profile: Profile, rates, window: int | None = None) -> np.ndarray:
    """The distance (as :func:`distances`) from per-word rates to every AI component.

    Args:
        profile: an opened profile.
        rates: float [vocab]: window occurrence rates (e.g. from :func:`share_rates`).
        window: window length in words the rates are at (default as :func:`distances`).

    Returns:
        float64 [len(profile.labels)], in the order of ``profile.labels``.

    Raises:
        ContamscanError: rates of another length, or no common window length.

    Example:
        >>> dict(zip(profile.labels, distances_to(profile, rates)))  # doctest: +SKIP
        {'claude': 0.0061, 'gpt': 0.0023}
    """
    x = np.asarray(rates, np.float64).ravel()
    if len(x) != len(profile.words):
        raise ContamscanError(f"expected {len(profile.words)} rates (one per vocabulary word), got {len(x)}")
    ai = np.array([g for g, k in enumerate(profile.kinds) if k == AI], np.int64)
    if not len(ai):
        raise ContamscanError(f"{profile.path} has no AI components")
    b = _window_index(profile, ai, window)
    return _jeffreys_mean(x[None, :], _rates(profile, b)[ai])


def nearest_component(profile: Profile, rates_or_distances, families: dict | None = None,
                      window: int | None = None) -> Attachment:
    """Where an AI share attaches to the profile: its nearest AI component, the distance, the
    runner-up, and the typical within-family distance to read the distance against.

    Args:
        profile: an opened profile.
        rates_or_distances: either per-word rates [vocab] of the AI share at ``window`` (from
            :func:`share_rates`), compared with every AI component by the distance of
            :func:`distances`; or distances already computed, one per AI component
            [len(profile.labels)], in the order of ``profile.labels``.
        families: {component: family}; default :func:`component_families`.
        window: window length in words of the rates (default as :func:`distances`; it must
            be the one the rates were taken at).

    Returns:
        The :class:`Attachment`.

    Raises:
        ContamscanError: a vector of neither length, or a profile without AI components.

    Example:
        >>> a = nearest_component(profile, share_rates(profile, obs, nd, 0.4))  # doctest: +SKIP
        >>> f"attaches to {a.component} at {a.distance:.3f} (typical within-family {a.typical_within_family:.3f})"
        ... # doctest: +SKIP
    """
    fams = component_families(profile) if families is None else families
    labels = list(profile.labels)
    if not labels:
        raise ContamscanError(f"{profile.path} has no AI components")
    x = np.asarray(rates_or_distances, np.float64).ravel()
    d_all = distances(profile, (AI,), fams, window)
    V = len(profile.words)
    if len(x) == V and V != len(labels):
        dist = distances_to(profile, x, d_all.window)
    elif len(x) == len(labels):
        dist = x
    else:
        raise ContamscanError(f"expected {V} rates (one per vocabulary word) or {len(labels)} distances (one per AI "
                              f"component), got {len(x)} values")
    order = np.lexsort((np.arange(len(dist)), dist))
    best = int(order[0])
    ru = int(order[1]) if len(order) > 1 else None
    pairs = _within_family(d_all)
    typical = float(np.median(pairs)) if pairs else None
    d = float(dist[best])
    return Attachment(labels[best], fams.get(labels[best]), d, None if ru is None else labels[ru],
                      None if ru is None else float(dist[ru]), typical,
                      None if not typical else d / typical, d_all.window)


# --------------------------------------------------------------------------- the tree


def average_linkage(d: Distances) -> Node:
    """The UPGMA tree of ``d``: repeatedly merge the two clusters with the smallest mean
    distance between their members (ties: the earliest pair in the profile's order); the
    earlier cluster is the first child.

    Args:
        d: the distances.

    Returns:
        The root :class:`Node`.

    Example:
        >>> d = Distances(("a", "b", "c"), ("ai",) * 3, ("x", "x", "y"),
        ...               np.array([[0, 1, 4], [1, 0, 4.0], [4, 4, 0]]), 64)
        >>> root = average_linkage(d)
        >>> root.height, root.children[0].leaves
        (4.0, ('a', 'b'))
    """
    n = len(d.names)
    nodes = [Node(0.0, name, kind, fam) for name, kind, fam in zip(d.names, d.kinds, d.families)]
    if n == 1:
        return nodes[0]
    m = np.array(d.matrix, np.float64, copy=True)
    np.fill_diagonal(m, np.inf)
    size = np.ones(n)
    alive = np.ones(n, bool)
    for _ in range(n - 1):
        masked = np.where(alive[:, None] & alive[None, :], m, np.inf)
        i, j = divmod(int(np.argmin(masked)), n)
        i, j = min(i, j), max(i, j)
        h = float(masked[i, j])
        nodes[i] = Node(h, children=(nodes[i], nodes[j]))
        merged = (size[i] * m[i] + size[j] * m[j]) / (size[i] + size[j])
        m[i, :], m[:, i] = merged, merged
        m[i, i] = np.inf
        size[i] += size[j]
        alive[j] = False
        m[j, :], m[:, j] = np.inf, np.inf
    return nodes[int(np.flatnonzero(alive)[0])]


def component_tree(profile: Profile, kinds=(AI,), families: dict | None = None, window: int | None = None) -> Tree:
    """A profile's components as an average-linkage tree of their distances.

    Args:
        profile: an opened profile.
        kinds: which components: ``("ai",)`` (default) or ``("human", "ai")``.
        families: {component: family}; default :func:`component_families`.
        window: window length in words (default: the longest every chosen component has).

    Returns:
        The :class:`Tree`.

    Example:
        >>> tree = component_tree(open_profile("style.profile"))  # doctest: +SKIP
        >>> print(render_text(tree))  # doctest: +SKIP
    """
    d = distances(profile, kinds, families, window)
    pairs = _within_family(d)
    return Tree(average_linkage(d), d, float(np.median(pairs)) if pairs else None, len(pairs), str(profile.path))


# --------------------------------------------------------------------------- rendering


def _leaf_text(node: Node) -> str:
    return node.name + (f"  [{node.family}]" if node.family is not None and node.family != node.name else "")


def render_text(tree: Tree) -> str:
    """The tree as indented text: each merge with its height, each leaf with its family.

    Args:
        tree: from :func:`component_tree`.

    Returns:
        Lines joined by newlines, e.g.::

            0.0412
            ├── 0.0105
            │   ├── google/gemma-3-12b-it  [gemma]
            │   └── google/gemma-3-27b-it  [gemma]
            └── claude-sonnet-4-5  [claude]

    Example:
        >>> print(render_text(component_tree(profile)))  # doctest: +SKIP
    """
    d = tree.distances
    head = [f"components of {tree.profile}" if tree.profile else "components",
            f"distance   mean Jeffreys divergence per word, windows of {d.window} words; average linkage",
            "typical    " + (f"{tree.typical_within_family:.4f} between two components of one family "
                             f"(median of {_pairs(tree.within_family_pairs)})" if tree.typical_within_family is not None
                             else "no family has two components"),
            ""]
    lines = []

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        label = _leaf_text(node) if node.is_leaf else f"{node.height:.4f}"
        lines.append(prefix + branch + label)
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for k, c in enumerate(node.children):
            walk(c, child_prefix, k == len(node.children) - 1, False)

    walk(tree.root, "", True, True)
    return "\n".join(head + lines)


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d")


def render_html(tree: Tree) -> str:
    """The tree as a self-contained HTML page (no script, no external resource): an inline SVG
    dendrogram, leaves coloured by family, and the distance to each component's nearest
    neighbour. Every name is escaped.

    Args:
        tree: from :func:`component_tree`.

    Returns:
        The page.

    Example:
        >>> Path("tree.html").write_text(render_html(component_tree(profile)))  # doctest: +SKIP
    """
    esc = html.escape
    d = tree.distances
    leaves = tree.root.leaves
    leaf_nodes = _leaf_nodes(tree.root)
    row, top_pad, label_w, plot_w = 22, 30, max(7 * max(len(_leaf_text(n)) for n in leaf_nodes) + 10, 120), 520
    y_of = {name: top_pad + row * k for k, name in enumerate(leaves)}
    max_h = max(tree.root.height, 1e-12)
    fams = sorted({f for f in d.families if f is not None})
    color = {f: PALETTE[k % len(PALETTE)] for k, f in enumerate(fams)}

    def x_of(h: float) -> float:
        return label_w + 10 + plot_w * h / max_h

    parts = []

    def draw(node: Node) -> tuple:
        if node.is_leaf:
            y = y_of[node.name]
            fill = color.get(node.family, "#000")
            parts.append(f'<text x="{label_w}" y="{y + 4}" text-anchor="end" fill="{fill}" stroke="none">'
                         f'<title>{esc(node.name)}: family {esc(str(node.family))}</title>'
                         f'{esc(_leaf_text(node))}</text>')
            return x_of(0.0), y
        ends = [draw(c) for c in node.children]
        x = x_of(node.height)
        ys = [y for _, y in ends]
        for cx, cy in ends:
            parts.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{x:.1f}" y2="{cy:.1f}"/>')
        parts.append(f'<line x1="{x:.1f}" y1="{min(ys):.1f}" x2="{x:.1f}" y2="{max(ys):.1f}">'
                     f'<title>merge at {node.height:.4f}</title></line>')
        y = sum(ys) / len(ys)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{node.height:.4f}: '
                     f'{esc(", ".join(node.leaves))}</title></circle>')
        return x, y

    draw(tree.root)
    axis_y = top_pad + row * len(leaves)
    ticks = []
    for k in range(5):
        h = max_h * k / 4
        x = x_of(h)
        ticks.append(f'<line x1="{x:.1f}" y1="{axis_y - 6}" x2="{x:.1f}" y2="{axis_y}"/>'
                     f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" stroke="none">{h:.4f}</text>')
    width, height = int(label_w + plot_w + 60), axis_y + 40
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" role="img" '
           f'aria-label="average-linkage tree of the profile components">'
           f'<g stroke="#444" fill="#444">{"".join(parts)}</g>'
           f'<g stroke="#444" fill="#444"><line x1="{x_of(0):.1f}" y1="{axis_y}" x2="{x_of(max_h):.1f}" '
           f'y2="{axis_y}"/>{"".join(ticks)}</g></svg>')
    legend = "".join(f'<li><span style="color:{color[f]}">&#9632;</span> {esc(f)}</li>' for f in fams)
    rows = []
    for i, name in enumerate(d.names):
        if len(d.names) < 2:
            break
        others = [(float(d.matrix[i, j]), d.names[j]) for j in range(len(d.names)) if j != i]
        dist, near = min(others)
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(str(d.families[i]))}</td><td>{esc(near)}</td>"
                    f"<td>{dist:.4f}</td></tr>")
    typical = (f"{tree.typical_within_family:.4f} (median of {_pairs(tree.within_family_pairs)} of components of one "
               "family)" if tree.typical_within_family is not None else "none (no family has two components)")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>contamscan profile tree: {esc(tree.profile)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} ul{{list-style:none;padding:0}}
li{{display:inline-block;margin-right:1.2em}} svg line{{stroke-width:1.2}}</style></head>
<body>
<h1>Profile components as a tree</h1>
<p>Profile <code>{esc(tree.profile)}</code>. Distance: mean symmetric Jeffreys divergence per word between the
components' rates of each word occurring in a window of {d.window} words; tree: average linkage (UPGMA),
merge heights on the axis. Typical distance within a family: {typical}. Resemblance of word usage, not lineage.</p>
<ul>{legend}</ul>
{svg}
<h2>Nearest neighbours</h2>
<table><tr><th>component</th><th>family</th><th>nearest</th><th>distance</th></tr>{"".join(rows)}</table>
</body></html>
"""


def _pairs(n: int) -> str:
    return f"{n} pair" + ("" if n == 1 else "s")


def _leaf_nodes(node: Node) -> list:
    return [node] if node.is_leaf else [x for c in node.children for x in _leaf_nodes(c)]
