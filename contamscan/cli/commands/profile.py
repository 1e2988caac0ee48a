"""``contamscan profile build|info|tree``."""

from __future__ import annotations

import click

from ...config import ProfileBuildOptions, ProfileParams
from ...style import build_profile, open_profile, parse_family_rules
from ...style.tree import component_families, component_tree, render_html, render_text
from ..options import dataclass_from, dataclass_options
from ..progress import ProgressBar


@click.group("profile")
def profile_group():
    """Build and inspect style profiles (for `scan --profile`)."""


@profile_group.command("build")
@click.option("--human", "human", multiple=True, required=True,
              help="Human text: files, directories or globs (repeatable).")
@click.option("--ai", "ai", multiple=True, required=True,
              help="AI text with a label per record (--label-field): files, directories or globs (repeatable).")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Profile directory to write (manifest.json and Parquet tables; a profile there is replaced).")
@dataclass_options(ProfileBuildOptions)
@dataclass_options(ProfileParams)
def profile_build(human, ai, out, **params):
    """Build a style profile: word occurrence statistics of a human baseline and of each AI family."""
    options = dataclass_from(ProfileBuildOptions, params)
    profile_params = dataclass_from(ProfileParams, params)
    progress = ProgressBar("profiling")
    try:
        profile = build_profile(list(human), list(ai), out, options, params=profile_params, progress=progress.batch)
    finally:
        progress.close()
    print_profile(profile)


@profile_group.command("info")
@click.argument("profile_path", metavar="PROFILE")
def profile_info(profile_path):
    """Print a profile's components, vocabulary and parameters."""
    print_profile(open_profile(profile_path))


@profile_group.command("tree")
@click.argument("profile_path", metavar="PROFILE")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Also write the tree to FILE as a self-contained HTML page (inline SVG, no script).")
@click.option("--human/--no-human", "with_human", default=False,
              help="Include the human baseline's components (default: AI components only).")
@click.option("--family", "families", multiple=True, metavar="NAME=GLOB[,GLOB...]",
              help="Put components matching the globs in family NAME for display (repeatable; checked before the "
                   "profile's own families).")
@click.option("--window", type=int, default=None,
              help="Window length (words) the distances are taken at (default: the longest every component has).")
def profile_tree(profile_path, html_out, with_human, families, window):
    """Print a profile's components as a tree of their distances (average linkage over the mean
    Jeffreys divergence per word of their window occurrence rates)."""
    profile = open_profile(profile_path)
    fams = component_families(profile, parse_family_rules(families))
    tree = component_tree(profile, ("human", "ai") if with_human else ("ai",), fams, window)
    click.echo(render_text(tree))
    if html_out:
        with open(html_out, "w", encoding="utf-8") as f:
            f.write(render_html(tree))
        click.echo(f"wrote {html_out}")


def print_profile(profile) -> None:
    m = profile.manifest
    p = profile.params
    lines = [f"profile    {profile.path}",
             f"words      {len(profile.words):,}  ({m['normalization']}, {m['word_hash']})",
             f"windows    {', '.join(map(str, p.windows))} words, up to {p.max_windows} per document",
             f"documents  {m['documents']['human']:,} human, {m['documents']['ai']:,} AI",
             "components"]
    families, orgs = profile.families, m.get("organisations", {})
    for c in m["components"]:
        extra = ""
        if c["kind"] == "ai":
            org = orgs.get(c["name"])
            extra = f"  family {families.get(c['name'], c['name'])}" + (f" ({org})" if org else "")
        lines.append(f"  {c['kind']:<6} {c['name']:<40} {c['documents']:>7,}{extra}")
    cal = profile.calibration
    if cal:
        lines.append(f"calibration  attribution margin {cal['family_margin']:.4f} nats/word; baseline fit deficit "
                     f"{cal['fit_deficit']:.4f} (+{cal.get('fit_noise', 0):.3f}/sqrt(documents))")
        if cal.get("human_alpha") is not None and cal.get("ai_alpha") is not None:
            lines.append(f"             α of the profile's own text: human {cal['human_alpha']:.4f}, AI {cal['ai_alpha']:.4f} "
                         "(a scan's α is rescaled from this range to 0-1)")
        if cal.get("strong_margin") is not None:
            lines.append(f"             absent models' outputs reading strongly as AI (margin {cal['strong_margin']:.4f} "
                         f"nats/word): {cal['strong_share']:.2f} of a model's outputs, ± {cal['strong_share_spread']:.2f} "
                         "between models")
    sizes = {}
    for fam in families.values():
        sizes[fam] = sizes.get(fam, 0) + 1
    single = sorted(f for f, k in sizes.items() if k == 1)
    if single:
        lines.append(f"warning: families with one model ({', '.join(single)}): their attribution rests on that model alone")
    click.echo("\n".join(lines))
