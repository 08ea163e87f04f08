"""Pre-declared exclusion rules: who is dropped, why, and how many.

The rules and their thresholds are fixed before anyone looks at the estimates (they are options
with stated defaults, recorded in results.json), and the report shows the result both with and
without them, so an exclusion can never be the reason a finding appears.

An annotator is excluded when any of these holds:
- catch: they answered more than `max_catch_fail` of their catch trials wrongly (not the
  `expected_answer`: yes on a negative item, no on a positive one), given at least
  `min_catch_trials` catch trials;
- fast: more than `max_fast_share` of their ratings came faster than `min_rt_ms`;
- one-button: every one of their (at least `min_ratings_for_same`) ratings has the same answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from service.studies.ratings_file import CATCH_CONDITIONS, expected_answer

# Catch conditions an attentive annotator answers yes to (the rule lives in ratings_file).
_YES_EXPECTED = [condition.value for condition in CATCH_CONDITIONS if expected_answer(condition)]


@dataclass(frozen=True)
class ExclusionRule:
    """Thresholds of the three rules; the defaults are the pre-registered ones."""

    max_catch_fail: float = 0.4
    min_catch_trials: int = 3
    min_rt_ms: int = 500
    max_fast_share: float = 0.5
    min_ratings_for_same: int = 10

    def describe(self) -> str:
        """The rule in one sentence, for results.json and the report."""
        return (
            f"exclude an annotator who fails more than {self.max_catch_fail:.0%} of their catch "
            f"trials (when they saw at least {self.min_catch_trials}), answers faster than "
            f"{self.min_rt_ms} ms on more than {self.max_fast_share:.0%} of trials, or gives the "
            f"same answer to all of at least {self.min_ratings_for_same} trials"
        )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


RULES = ("catch", "fast", "one_button")

# How often the default rules exclude an attentive annotator, measured by simulation: in crowds
# of `fvlab simulate`'s default design with no careless annotators (60 annotators, 400 stimuli,
# 5 ratings each, a catch trial in every 10, catch items answered right 95% of the time),
# FALSE_POSITIVE_COMMAND (60,000 simulated annotators) printed these shares of annotators
# excluded. The report quotes them; tests/analysis/test_exclusions.py keeps them true.
SIMULATED_FALSE_POSITIVES = {"catch": 0.0048, "fast": 0.0, "one_button": 0.0001, "total": 0.0049}
FALSE_POSITIVE_COMMAND = "fvlab power --careless 0 --studies 1000"


@dataclass(frozen=True)
class Exclusions:
    """Excluded annotators with the rules each one broke, and the counts the rules looked at."""

    reasons: pd.DataFrame  # index annotator_id; bool columns catch, fast, one_button
    # index annotator_id; n (ratings), n_catch, n_wrong (catch answers), n_fast, n_yes
    evidence: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    rule: ExclusionRule = field(default_factory=ExclusionRule, compare=False)

    @property
    def annotators(self) -> list[int]:
        return sorted(int(a) for a in self.reasons.index[self.reasons.any(axis=1)])

    def broken(self, annotator_id: int) -> list[str]:
        """The rules this annotator broke (empty when kept)."""
        row = self.reasons.loc[annotator_id]
        return [rule for rule in self.reasons.columns if bool(row[rule])]

    def why(self, annotator_id: int) -> str:
        """What the annotator did that broke the rules, in words, e.g. "2 of 3 catch trials
        wrong (more than 40%)"."""
        if self.evidence is None:
            return ", ".join(self.broken(annotator_id))
        e, rule = self.evidence.loc[annotator_id], self.rule
        said = {
            "catch": f"{int(e['n_wrong'])} of {int(e['n_catch'])} catch trials wrong (more than "
                     f"{rule.max_catch_fail:.0%})",
            "fast": f"{int(e['n_fast'])} of {int(e['n'])} answers faster than {rule.min_rt_ms} ms "
                    f"(more than {rule.max_fast_share:.0%})",
            "one_button": f"the same answer to all {int(e['n'])} trials",
        }
        return "; ".join(said[name] for name in self.broken(annotator_id))

    def counts(self) -> dict[str, int]:
        """Annotators broken per rule (one may break several) and in total."""
        counts = {rule: int(self.reasons[rule].sum()) for rule in self.reasons.columns}
        counts["total"] = len(self.annotators)
        return counts


def find_exclusions(ratings: pd.DataFrame, rule: ExclusionRule) -> Exclusions:
    """Apply `rule` to every annotator; vectorised over ratings with one groupby."""
    condition = ratings["condition"].to_numpy(dtype=object)
    yes = ratings["interpretable"].to_numpy(dtype=np.int64)
    is_catch = np.isin(condition, [c.value for c in CATCH_CONDITIONS])
    wrong = is_catch & (yes != np.isin(condition, _YES_EXPECTED))
    per = pd.DataFrame({
        "annotator_id": ratings["annotator_id"].to_numpy(dtype=np.int64),
        "catch": is_catch,
        "wrong": wrong,
        "fast": ratings["rt_ms"].to_numpy(dtype=np.int64) < rule.min_rt_ms,
        "yes": yes,
    }).groupby("annotator_id").agg(
        n=("yes", "size"), n_catch=("catch", "sum"), n_wrong=("wrong", "sum"),
        n_fast=("fast", "sum"), n_yes=("yes", "sum"),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        fail_share = per["n_wrong"] / per["n_catch"]
    reasons = pd.DataFrame({
        "catch": (per["n_catch"] >= rule.min_catch_trials) & (fail_share > rule.max_catch_fail),
        "fast": per["n_fast"] / per["n"] > rule.max_fast_share,
        "one_button": (per["n"] >= rule.min_ratings_for_same)
        & ((per["n_yes"] == 0) | (per["n_yes"] == per["n"])),
    }, index=per.index)
    return Exclusions(reasons=reasons.fillna(False).astype(bool), evidence=per, rule=rule)


def apply_exclusions(ratings: pd.DataFrame, exclusions: Exclusions) -> pd.DataFrame:
    """The ratings without the excluded annotators' rows."""
    drop = ratings["annotator_id"].isin(exclusions.annotators).to_numpy(dtype=bool)
    return ratings.loc[~drop].reset_index(drop=True)
