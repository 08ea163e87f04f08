"""Power by simulation: how likely a planned study is to detect a given difference.

Each simulated study goes through the same steps as a real one: the pre-declared exclusions
first (careless annotators dropped by the same rules), then the estimates and the verdict
(bootstrap interval, stimulus-level permutation test). So the power reported is the power of the
analysis fvlab will actually run, including the crossed design's loss of information and the
ratings the exclusions take away.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from analysis.estimate import Options, estimate
from analysis.exclusions import ExclusionRule
from analysis.pipeline import exclude
from analysis.results import Record
from analysis.simulate import CrowdSpec, simulate
from analysis.verdict import verdict

CRITERIA = ("basis_more_often", "random_often_interpretable", "finding_reproduced")


def _margin(share: float, n_studies: int) -> float:
    """The 95% normal-approximation margin of simulation error of a share."""
    return float(1.96 * np.sqrt(share * (1 - share) / n_studies))


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class PowerResult(Record):
    """Estimated powers (shares of simulated studies meeting each verdict criterion), each with
    `<criterion>_margin`, its 95% normal-approximation margin of simulation error (it shrinks
    with more simulated studies); the share of intervals that held the true difference, and
    their mean width (None when no study had one)."""

    n_studies: int
    basis_more_often: float
    basis_more_often_margin: float
    random_often_interpretable: float
    random_often_interpretable_margin: float
    finding_reproduced: float
    finding_reproduced_margin: float
    interval_covers_truth: float
    mean_ci_width: float | None

    def margin(self, criterion: str) -> float:
        return float(self[f"{criterion}_margin"])


def power(
    spec: CrowdSpec, n_studies: int = 200, options: Options | None = None,
    min_rate: float = 0.2, alpha: float = 0.05, rule: ExclusionRule | None = None,
) -> PowerResult:
    """Simulate `n_studies` studies of design `spec`; share of verdicts that come out true.

    `rule` is the exclusion rule the analysis will apply (default: its pre-declared one); a
    study whose exclusions leave no one counts as a study that found nothing.
    """
    if n_studies < 1:
        raise ValueError("n_studies must be at least 1")
    options = options or Options(n_boot=500, n_perm=500)
    rule = rule or ExclusionRule()
    hits = dict.fromkeys(CRITERIA, 0)
    covered, widths = 0, []
    for i in range(n_studies):
        # the simulator writes well-formed export rows by construction (tests validate them),
        # so the per-study validation pass is skipped here to keep large runs fast
        ratings, truth = simulate(replace(spec, seed=spec.seed * 1_000_003 + i))
        try:
            _, kept = exclude(ratings, rule)
        except ValueError:  # everyone excluded: this study finds nothing
            continue
        found = estimate(kept, replace(options, seed=options.seed + i))
        decided = verdict(found.rates, found.difference, min_rate=min_rate, alpha=alpha,
                          level=options.level)
        for key in hits:
            hits[key] += bool(decided[key])
        lo, hi = found.difference.ci
        if lo is not None and hi is not None:
            covered += lo <= truth.difference <= hi
            widths.append(hi - lo)
    shares = {key: count / n_studies for key, count in hits.items()}
    return PowerResult(
        n_studies=n_studies,
        basis_more_often=shares["basis_more_often"],
        basis_more_often_margin=_margin(shares["basis_more_often"], n_studies),
        random_often_interpretable=shares["random_often_interpretable"],
        random_often_interpretable_margin=_margin(shares["random_often_interpretable"],
                                                  n_studies),
        finding_reproduced=shares["finding_reproduced"],
        finding_reproduced_margin=_margin(shares["finding_reproduced"], n_studies),
        interval_covers_truth=covered / n_studies,
        mean_ci_width=float(np.mean(widths)) if widths else None,
    )
