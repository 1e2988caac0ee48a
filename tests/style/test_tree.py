"""Distances between a profile's components, their tree (contamscan profile tree) and where an AI
share attaches, on real model outputs and human text."""

import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SHARED

from contamscan.cli import cli
from contamscan.errors import ContamscanError
from contamscan.style import StyleTally, build_profile
from contamscan.style.profile import OBS_SCALE
from contamscan.style.tree import (
    Distances,
    average_linkage,
    component_families,
    component_tree,
    distances,
    distances_to,
    nearest_component,
    render_html,
    render_text,
    share_rates,
    typical_within_family_distance,
)

GEMMA = ("google/gemma-3-12b-it", "google/gemma-3-27b-it")
CLAUDE = "claude-sonnet-4-5"
ODD = 'glm <b>&"4.5"</b>'  # z-ai/glm-4.5 under a label that must be escaped in HTML
MODELS = {**{m: m for m in GEMMA}, CLAUDE: CLAUDE, "openai/gpt-5-mini": "openai/gpt-5-mini", "z-ai/glm-4.5": ODD}
LINEAGE = {GEMMA[0]: "gemma", GEMMA[1]: "gemma", CLAUDE: "claude", "openai/gpt-5-mini": "gpt", ODD: "glm"}


@pytest.fixture(scope="module")
def data(ai_table):
    """Outputs of five models (prompts of even index in the profile, odd ones held out) and
    every 8th document of two human sources."""
    rows = [r for r in ai_table.select(["id", "model", "prompt_index", "text"]).to_pylist()
            if r["model"] in MODELS and r["text"]]
    for r in rows:
        r["model"] = MODELS[r["model"]]
    path = SHARED / "human" / "detectgpt_originals.parquet"
    human = [r for r in pq.read_table(path, columns=["id", "source", "text"]).to_pylist()
             if r["text"] and r["source"] in ("writing", "xsum")][::8]
    return {"profile": [r for r in rows if r["prompt_index"] % 2 == 0],
            "test": [r for r in rows if r["prompt_index"] % 2 == 1], "human": human}


@pytest.fixture(scope="module")
def per_model(tmp_path_factory, data):
    """A profile with one component per model (family_by="label")."""
    root = tmp_path_factory.mktemp("tree-profile")
    pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "source": r["source"], "text": r["text"]}
                                         for r in data["human"]]), root / "human.parquet")
    pq.write_table(pa.Table.from_pylist([{"id": str(r["id"]), "model": r["model"], "text": r["text"]}
                                         for r in data["profile"]]), root / "ai.parquet")
    return build_profile([str(root / "human.parquet")], [str(root / "ai.parquet")], root / "profile",
                         family_by="label")


def _parents(node, out=None):
    out = [] if out is None else out
    if not node.is_leaf:
        out.append(node)
        for c in node.children:
            _parents(c, out)
    return out


def _lowest_common(node, names):
    """The smallest subtree holding every one of ``names``."""
    for c in node.children:
        if set(names) <= set(c.leaves):
            return _lowest_common(c, names)
    return node


def test_tree_has_every_component_once(per_model):
    ai = component_tree(per_model)
    assert sorted(ai.root.leaves) == sorted(per_model.labels)
    both = component_tree(per_model, kinds=("human", "ai"))
    assert sorted(both.root.leaves) == sorted(per_model.components)
    for node in _parents(both.root):  # average linkage never merges lower than below it
        assert len(node.children) == 2
        assert all(node.height >= c.height for c in node.children)


def test_same_lineage_merges_before_another_maker(per_model):
    tree = component_tree(per_model)
    gemmas = _lowest_common(tree.root, GEMMA)
    assert set(gemmas.leaves) == set(GEMMA)  # the two sizes merge with each other first
    assert CLAUDE not in gemmas.leaves
    d = tree.distances
    assert d.between(*GEMMA) < min(d.between(g, CLAUDE) for g in GEMMA)


def test_distances_are_a_dissimilarity(per_model):
    d = distances(per_model, kinds=("human", "ai"))
    m = d.matrix
    assert m.shape == (len(per_model.components),) * 2
    assert np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    assert np.all(m[~np.eye(len(m), dtype=bool)] > 0)
    assert d.window == per_model.params.windows[-1]
    assert d.families[d.names.index("writing#1" if "writing#1" in d.names else "writing")] == "human"
    with pytest.raises(ContamscanError):
        distances(per_model, window=17)


def test_average_linkage_averages_members():
    # a and b merge at 1; c joins them at the mean of its distances to a and b, (4 + 6) / 2
    m = np.array([[0, 1, 4, 9], [1, 0, 6, 9], [4, 6, 0, 9], [9, 9, 9, 0]], np.float64)
    root = average_linkage(Distances(("a", "b", "c", "d"), ("ai",) * 4, (None,) * 4, m, 64))
    assert root.height == 9.0 and root.leaves == ("a", "b", "c", "d")
    abc = root.children[0]
    assert abc.height == 5.0 and abc.children[0].leaves == ("a", "b") and abc.children[0].height == 1.0
    one = average_linkage(Distances(("a",), ("ai",), (None,), np.zeros((1, 1)), 64))
    assert one.is_leaf and one.leaves == ("a",)


def test_typical_within_family_distance(per_model):
    t = typical_within_family_distance(per_model, LINEAGE)
    assert t == pytest.approx(distances(per_model, families=LINEAGE).between(*GEMMA))
    assert typical_within_family_distance(per_model) is None  # per-model families: no pair
    assert component_tree(per_model, families=LINEAGE).typical_within_family == pytest.approx(t)


def test_component_families(per_model):
    fams = component_families(per_model)
    assert all(fams[c] == c for c in per_model.labels)  # family_by="label": each label its own family
    assert {fams[c] for c, k in zip(per_model.components, per_model.kinds) if k == "human"} == {"human"}
    ruled = component_families(per_model, [("gemma", ["google/gemma-*"])])
    assert ruled[GEMMA[0]] == ruled[GEMMA[1]] == "gemma" and ruled[CLAUDE] == CLAUDE


def _ai_share(profile, texts):
    tally = StyleTally(profile)
    tally.add(pa.array(texts, pa.large_string()))
    return tally, tally.result()


@pytest.mark.parametrize("n_human", [0, 120])
def test_nearest_component_of_a_held_out_shard(per_model, data, n_human):
    """Unseen outputs of one gemma size, alone or half of a shard with unseen human text,
    attach to a gemma component, nearer than to claude; alone, about as near as the two gemma
    sizes are to each other."""
    ai = [r["text"] for r in data["test"] if r["model"] == GEMMA[1]][:120]
    human = [r["text"] for r in data["human"][1::2]][:n_human]
    tally, share = _ai_share(per_model, ai + human)
    rates = share_rates(per_model, tally.obs / OBS_SCALE, tally.nd, share["alpha"])
    assert rates.shape == (len(per_model.words),) and np.all((rates > 0) & (rates < 1))
    att = nearest_component(per_model, rates, LINEAGE)
    assert att.component in GEMMA and att.family == "gemma"
    assert att.runner_up is not None and att.runner_up_distance >= att.distance
    to = distances_to(per_model, rates)
    assert to.min() == pytest.approx(att.distance) and to[per_model.labels.index(CLAUDE)] > att.distance
    assert att.typical_within_family == pytest.approx(typical_within_family_distance(per_model, LINEAGE))
    assert att.relative == pytest.approx(att.distance / att.typical_within_family)
    if n_human == 0:
        assert att.relative < 2
    assert att.window == per_model.params.windows[-1]


def test_nearest_component_of_a_component_and_of_distances(per_model):
    b = len(per_model.params.windows) - 1
    own = 1 / (1 + np.exp(-per_model.logit[b, per_model.components.index(CLAUDE)]))
    att = nearest_component(per_model, own)
    assert att.component == CLAUDE and att.distance == pytest.approx(0.0, abs=1e-12)
    vec = np.arange(len(per_model.labels), 0, -1, dtype=float)  # the last label is nearest
    att = nearest_component(per_model, vec)
    assert att.component == per_model.labels[-1] and att.distance == 1.0
    assert att.runner_up == per_model.labels[-2] and att.typical_within_family is None and att.relative is None
    with pytest.raises(ContamscanError):
        nearest_component(per_model, np.ones(3))
    with pytest.raises(ContamscanError):
        share_rates(per_model, np.zeros((3, len(per_model.words))), np.ones(3), 0.0)


def test_text_rendering(per_model):
    tree = component_tree(per_model, families=LINEAGE)
    text = render_text(tree)
    for c in per_model.labels:
        assert text.count(c) == 1
    assert f"{tree.root.height:.4f}" in text and "median of 1 pair)" in text
    assert f"{GEMMA[0]}  [gemma]" in text


def test_html_is_well_formed_and_escapes_names(per_model):
    page = render_html(component_tree(per_model, kinds=("human", "ai"), families=LINEAGE))
    assert ODD not in page and "<b>" not in page and "glm &lt;b&gt;&amp;&quot;4.5&quot;&lt;/b&gt;" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    root = ET.fromstring(page.split("\n", 1)[1])  # after <!DOCTYPE html>: XML-well-formed
    svg = root.find(".//{http://www.w3.org/2000/svg}svg")
    assert svg is not None
    ns = "{http://www.w3.org/2000/svg}"
    leaves = [t for t in svg.iter(ns + "text") if t.get("text-anchor") == "end"]
    assert sorted(t.find(ns + "title").text.rsplit(": family ", 1)[0] for t in leaves) == sorted(per_model.components)


def test_cli_profile_tree(per_model, tmp_path):
    out = tmp_path / "tree.html"
    r = CliRunner().invoke(cli, ["profile", "tree", str(per_model.path), "--html", str(out),
                                 "--family", "gemma=google/gemma-*"])
    assert r.exit_code == 0, r.output
    for c in per_model.labels:
        assert c in r.output
    assert "writing" not in r.output  # AI components only by default
    assert "median of 1 pair)" in r.output and f"wrote {out}" in r.output
    ET.fromstring(out.read_text().split("\n", 1)[1])
    r = CliRunner().invoke(cli, ["profile", "tree", str(per_model.path), "--human"])
    assert r.exit_code == 0 and "[human]" in r.output
    r = CliRunner().invoke(cli, ["profile", "tree", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "not a style profile" in r.output
