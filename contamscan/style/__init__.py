"""The style estimate: profiles (:mod:`.profile`), their kernels (:mod:`.kernels`), the
estimate of α and attribution (:mod:`.estimate`), and building a profile (:mod:`.build`)."""

from .build import build_profile
from .estimate import StyleTally, combine, estimate, fingerprint, fit_mixture, public
from .profile import DocTerms, Profile, family_of, open_cached, open_profile, parse_family_rules

__all__ = ["Profile", "DocTerms", "StyleTally", "build_profile", "open_profile", "open_cached", "family_of",
           "parse_family_rules", "estimate", "fit_mixture", "fingerprint", "combine", "public"]
