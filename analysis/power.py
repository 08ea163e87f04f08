"""Power by simulation: how likely a planned study is to detect a given difference.

Each simulated study goes through the same steps as a real one: the pre-declared exclusions
first (careless annotators dropped by the same rules), then the estimates and the verdict
(bootstrap interval, stimulus-level permutation test). So the power reported is the power of the
analysis fvlab will actually run, including the crossed design's loss of information and the
ratings the exclusions take away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.estimate import Options, estimate
from analysis.exclusions import RULES, ExclusionRule, Exclusions
from analysis.pipeline import exclude
from analysis.results import Record
from analysis.simulate import CrowdSpec, Truth, simulate
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
    their mean width (None when no study had one).

    `attentive_excluded` is the exclusion rules' false-positive rate: the share of attentive
    (not careless) simulated annotators that each rule, and the rules together (`total`),
    excluded.
    """

    n_studies: int
    basis_more_often: float
    basis_more_often_margin: float
    random_often_interpretable: float
    random_often_interpretable_margin: float
    finding_reproduced: float
    finding_reproduced_margin: float
    interval_covers_truth: float
    mean_ci_width: float | None
    attentive_excluded: dict[str, float] = field(default_factory=dict)

    def margin(self, criterion: str) -> float:
        return float(self[f"{criterion}_margin"])


class _AttentiveTally:
    """Counts, over simulated studies, the attentive annotators each rule excluded."""

    def __init__(self) -> None:
        self.broken: Counter[str] = Counter()
        self.attentive = 0

    def add(self, excluded: Exclusions, truth: Truth) -> None:
        reasons = excluded.reasons
        attentive = reasons.loc[~reasons.index.isin(sorted(truth.careless_annotators))]
        self.attentive += len(attentive)
        for rule in RULES:
            self.broken[rule] += int(attentive[rule].sum())
        self.broken["total"] += int(attentive.any(axis=1).sum())

    def rates(self) -> dict[str, float]:
        return {key: self.broken[key] / self.attentive if self.attentive else 0.0
                for key in (*RULES, "total")}


def _study(spec: CrowdSpec, i: int) -> tuple[pd.DataFrame, Truth]:
    # the simulator writes well-formed export rows by construction (tests validate them), so
    # the per-study validation pass is skipped here to keep large runs fast
    return simulate(replace(spec, seed=spec.seed * 1_000_003 + i))


def attentive_exclusion_rates(spec: CrowdSpec, n_studies: int,
                              rule: ExclusionRule | None = None) -> dict[str, float]:
    """The exclusion rules' false-positive rate in crowds of design `spec`: the share of
    attentive annotators excluded by each rule and in total (the same studies `power` draws,
    without their estimates)."""
    tally = _AttentiveTally()
    for i in range(n_studies):
        ratings, truth = _study(spec, i)
        tally.add(exclude(ratings, rule or ExclusionRule())[0], truth)
    return tally.rates()


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
    tally = _AttentiveTally()
    for i in range(n_studies):
        ratings, truth = _study(spec, i)
        excluded, kept = exclude(ratings, rule)
        tally.add(excluded, truth)
        if kept.empty:  # everyone excluded: this study finds nothing
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
        attentive_excluded=tally.rates(),
    )
