"""``contamscan profile build|info``."""

from __future__ import annotations

import click

from ...config import ProfileBuildOptions, ProfileParams
from ...style import build_profile, open_profile
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
    sizes = {}
    for fam in families.values():
        sizes[fam] = sizes.get(fam, 0) + 1
    single = sorted(f for f, k in sizes.items() if k == 1)
    if single:
        lines.append(f"warning: families with one model ({', '.join(single)}): their attribution rests on that model alone")
    click.echo("\n".join(lines))
