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

from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class Exclusions:
    """Excluded annotators with the rules each one broke."""

    reasons: pd.DataFrame  # index annotator_id; bool columns catch, fast, one_button

    @property
    def annotators(self) -> list[int]:
        return sorted(int(a) for a in self.reasons.index[self.reasons.any(axis=1)])

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
    return Exclusions(reasons=reasons.fillna(False).astype(bool))


def apply_exclusions(ratings: pd.DataFrame, exclusions: Exclusions) -> pd.DataFrame:
    """The ratings without the excluded annotators' rows."""
    drop = ratings["annotator_id"].isin(exclusions.annotators).to_numpy(dtype=bool)
    return ratings.loc[~drop].reset_index(drop=True)
