"""Power by simulation: how likely a planned study is to detect a given difference.

Each simulated study goes through the same steps as a real one: the pre-declared exclusions
first (careless annotators dropped by the same rules), then the estimates and the verdict
(bootstrap interval, stimulus-level permutation test). So the power reported is the power of the
analysis fvlab will actually run, including the crossed design's loss of information and the
ratings the exclusions take away. A `CrowdSpec` plans a rating study, an `AfcSpec` a 2-AFC one
(decided on accuracy with synthetic references, against chance and the `none` accuracy).

`design_for` answers the planning question the other way round: how many directions (and
annotators, each doing as many trials as in the given design) reach a target power.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.afc import CHANCE, PRIMARY, as_answers, with_reference
from analysis.estimate import Estimates, Options, estimate
from analysis.exclusions import ExclusionRule, Exclusions
from analysis.pipeline import exclude
from analysis.results import NO_INTERVAL, Rate, Record, Verdict
from analysis.simulate import CrowdSpec, Truth, simulate
from analysis.simulate_afc import AfcSpec, AfcTruth, simulate_afc
from analysis.tasks import AFC, RATING
from analysis.verdict import verdict, verdict_afc
from service.studies.ratings_file import Condition

Spec = CrowdSpec | AfcSpec
MAX_GROWTH = 64  # design_for looks at most this many times the given number of directions

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
        self.rules: list[str] = []
        self.attentive = 0

    def add(self, excluded: Exclusions, truth: Truth | AfcTruth) -> None:
        reasons = excluded.reasons
        attentive = reasons.loc[~reasons.index.isin(sorted(truth.careless_annotators))]
        self.attentive += len(attentive)
        for rule in reasons.columns:
            if rule not in self.rules:
                self.rules.append(rule)
            self.broken[rule] += int(attentive[rule].sum())
        self.broken["total"] += int(attentive.any(axis=1).sum())

    def rates(self) -> dict[str, float]:
        return {key: self.broken[key] / self.attentive if self.attentive else 0.0
                for key in (*self.rules, "total")}


def task_of_spec(spec: Spec) -> str:
    return AFC if isinstance(spec, AfcSpec) else RATING


def _study(spec: Spec, i: int) -> tuple[pd.DataFrame, Truth | AfcTruth]:
    # the simulator writes well-formed export rows by construction (tests validate them), so
    # the per-study validation pass is skipped here to keep large runs fast
    seeded = replace(spec, seed=spec.seed * 1_000_003 + i)
    if isinstance(seeded, AfcSpec):
        frame, afc_truth = simulate_afc(seeded)
        return as_answers(frame), afc_truth
    return simulate(seeded)


def attentive_exclusion_rates(spec: Spec, n_studies: int,
                              rule: ExclusionRule | None = None) -> dict[str, float]:
    """The exclusion rules' false-positive rate in crowds of design `spec`: the share of
    attentive annotators excluded by each rule and in total (the same studies `power` draws,
    without their estimates; the time rules need session times, which are not simulated)."""
    task = task_of_spec(spec)
    tally = _AttentiveTally()
    for i in range(n_studies):
        ratings, truth = _study(spec, i)
        tally.add(exclude(ratings, rule or ExclusionRule.default(task), task)[0], truth)
    return tally.rates()


def _decide_afc(kept: pd.DataFrame, spec: AfcSpec, options: Options,
                alpha: float) -> tuple[Estimates, Verdict]:
    """The 2-AFC verdict of one simulated study: the synthetic comparison in full, and the
    point accuracy of random directions without references (all the verdict reads of it)."""
    found = estimate(with_reference(kept, PRIMARY), options)
    per_reference = {PRIMARY: found.rates}
    if "none" in spec.references:
        rows = kept[(kept["reference"] == "none").fillna(False).to_numpy(dtype=bool)
                    & (kept["condition"] == Condition.RANDOM).to_numpy(dtype=bool)]
        per_reference["none"] = {Condition.RANDOM.value: Rate(
            float(rows["correct"].mean()) if len(rows) else None, NO_INTERVAL, len(rows))}
    return found, verdict_afc(per_reference, found.difference, alpha=alpha,
                              level=options.level, chance=CHANCE)


def power(
    spec: Spec, n_studies: int = 200, options: Options | None = None,
    min_rate: float = 0.2, alpha: float = 0.05, rule: ExclusionRule | None = None,
) -> PowerResult:
    """Simulate `n_studies` studies of design `spec`; share of verdicts that come out true.

    `rule` is the exclusion rule the analysis will apply (default: the task's pre-declared
    one); a study whose exclusions leave no one counts as a study that found nothing.
    `min_rate` is the rating task's floor for "often" (2-AFC compares with chance instead).
    """
    if n_studies < 1:
        raise ValueError("n_studies must be at least 1")
    options = options or Options(n_boot=500, n_perm=500)
    task = task_of_spec(spec)
    rule = rule or ExclusionRule.default(task)
    hits = dict.fromkeys(CRITERIA, 0)
    covered, widths = 0, []
    tally = _AttentiveTally()
    for i in range(n_studies):
        ratings, truth = _study(spec, i)
        excluded, kept = exclude(ratings, rule, task)
        tally.add(excluded, truth)
        if kept.empty:  # everyone excluded: this study finds nothing
            continue
        seeded = replace(options, seed=options.seed + i)
        if isinstance(spec, AfcSpec):
            found, decided = _decide_afc(kept, spec, seeded, alpha)
        else:
            found = estimate(kept, seeded)
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


def _scaled(spec: Spec, n_stimuli: int, trials_each: float) -> Spec:
    """`spec` with `n_stimuli` directions and annotators enough to keep each one's load."""
    per_stimulus = len(spec.references) if isinstance(spec, AfcSpec) else 1
    trials = n_stimuli * per_stimulus * spec.ratings_per_item
    annotators = max(spec.ratings_per_item, math.ceil(trials / trials_each))
    return replace(spec, n_stimuli=n_stimuli, n_annotators=annotators)


def design_for(
    spec: Spec, target: float, criterion: str = "basis_more_often", n_studies: int = 100,
    options: Options | None = None, rule: ExclusionRule | None = None, alpha: float = 0.05,
    min_rate: float = 0.2, log: Callable[[Spec, PowerResult], None] = lambda _s, _r: None,
) -> tuple[Spec, PowerResult] | None:
    """The smallest design like `spec` whose power for `criterion` reaches `target`.

    Directions vary (a multiple of 2 × layers, so conditions and layers stay balanced);
    annotators follow so that each does as many trials as in `spec`. The search doubles (or
    halves) the directions until the target is crossed, then bisects; every design is
    simulated with the same seeds, which keeps the noisy power curve close to monotone.

    Returns:
        The design and its power, or None when even `MAX_GROWTH` times the directions fall
        short of the target.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}")
    step = 2 * len(spec.layers)
    per_stimulus = len(spec.references) if isinstance(spec, AfcSpec) else 1
    trials_each = spec.n_stimuli * per_stimulus * spec.ratings_per_item / spec.n_annotators
    found: dict[int, PowerResult] = {}

    def meets(n_stimuli: int) -> bool:
        design = _scaled(spec, n_stimuli, trials_each)
        if n_stimuli not in found:
            found[n_stimuli] = power(design, n_studies, options, min_rate, alpha, rule)
            log(design, found[n_stimuli])
        return found[n_stimuli][criterion] >= target

    high = max(step, spec.n_stimuli // step * step)
    if meets(high):  # halve while the target still holds: low fails, high meets
        low = high
        while low > step and meets(low):
            high, low = low, max(step, low // 2 // step * step)
        if meets(low):
            return _scaled(spec, low, trials_each), found[low]
    else:  # double until the target holds
        limit = high * MAX_GROWTH
        low, high = high, high * 2
        while not meets(high):
            if high >= limit:
                return None
            low, high = high, high * 2
    while high - low > max(step, high // 10):  # within 10% is as fine as simulation allows
        middle = (low + high) // 2 // step * step
        if middle in (low, high):
            break
        low, high = (low, middle) if meets(middle) else (middle, high)
    return _scaled(spec, high, trials_each), found[high]
