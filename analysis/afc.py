"""What the 2-AFC task adds to the analysis: its outcome, its reference kinds, query difficulty.

The estimators (`analysis.estimate`, the GLM, the mixed model, agreement) count a success per
row in the `interpretable` column. For the 2-AFC task the success is a correct choice, so its
rows are handed to them with `correct` in that column (`as_answers`); every interval, test and
variance component then means the same thing for accuracy as it does for the yes-rate, with the
direction (a 2-AFC trial's stimulus) as the unit of resampling.

The primary comparison is basis vs random with synthetic references; `natural` (the
direction's own natural exemplars: a positive control) and `none` (no references: a floor) are
analysed the same way, one reference kind at a time, and reported as controls.

Query difficulty: an easier query pair makes a condition look more interpretable, and random
directions mix many channels, so their activations over natural images may spread differently
from a single channel's. Each trial's `query_gap` is the standardized activation gap of its two
queries; `query_difficulty` compares basis and random directions' mean gaps, with the same
stimulus-level bootstrap and permutation test, and says by how much they differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import resample
from analysis.estimate import Options
from analysis.results import NO_INTERVAL, Difference, GapSummary, QueryDifficulty
from analysis.tasks import REFERENCES
from service.studies.ratings_file import STIMULUS_CONDITIONS, Condition

CHANCE = 0.5  # two alternatives
PRIMARY = "synthetic"  # the reference kind the verdict is decided on


def as_answers(ratings: pd.DataFrame) -> pd.DataFrame:
    """2-AFC rows with their success (`correct`) where the estimators count one."""
    return ratings.assign(interpretable=ratings["correct"])


def references_run(ratings: pd.DataFrame) -> list[str]:
    """The reference kinds the study's stimulus rows show, in the order synthetic, natural, none."""
    shown = set(ratings.loc[ratings["condition"].isin(STIMULUS_CONDITIONS), "reference"]
                .dropna().astype(str))
    return [kind for kind in REFERENCES if kind in shown]


def with_reference(ratings: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The stimulus rows shown with `reference`, and every catch row (their own strata)."""
    stimulus = ratings["condition"].isin(STIMULUS_CONDITIONS).to_numpy(dtype=bool)
    shown = (ratings["reference"] == reference).fillna(False).to_numpy(dtype=bool)
    return ratings.loc[~stimulus | shown].reset_index(drop=True)


def _direction_gaps(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per direction with an answered gap: its condition, layer and mean gap."""
    rows = ratings[ratings["condition"].isin(STIMULUS_CONDITIONS) & ratings["query_gap"].notna()]
    frame = pd.DataFrame({
        "condition": rows["condition"].astype(str).to_numpy(),
        "layer": rows["layer"].astype(str).to_numpy(),
        "direction": rows["stimulus_id"].to_numpy(dtype=np.int64),
        "gap": rows["query_gap"].to_numpy(dtype=np.float64),
    })
    return frame.groupby(["condition", "layer", "direction"], as_index=False).agg(
        gap=("gap", "mean"))


def _summary(gaps: pd.Series) -> GapSummary:
    if gaps.empty:
        return GapSummary(None, None, 0)
    sd = float(gaps.std(ddof=1)) if len(gaps) > 1 else None
    return GapSummary(mean=float(gaps.mean()), sd=sd, n_directions=int(len(gaps)))


def _cohens_d(basis: GapSummary, random: GapSummary) -> float | None:
    if basis.sd is None or random.sd is None or basis.mean is None or random.mean is None:
        return None
    n_b, n_r = basis.n_directions, random.n_directions
    pooled = np.sqrt(((n_b - 1) * basis.sd**2 + (n_r - 1) * random.sd**2) / (n_b + n_r - 2))
    return float((basis.mean - random.mean) / pooled) if pooled > 0 else None


def _mean_difference(sums: np.ndarray) -> np.ndarray:
    """basis − random mean from stacked (basis gap sum, basis count, random sum, count)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[..., 0] / sums[..., 1] - sums[..., 2] / sums[..., 3]


def _bootstrap(directions: pd.DataFrame, options: Options) -> np.ndarray:
    """Resampled (basis sum, count, random sum, count) of direction gaps, within layer ×
    condition: the draws the difference's interval comes from."""
    out = np.zeros((options.n_boot, 4))
    groups = directions.groupby(["condition", "layer"], sort=True)
    streams = np.random.SeedSequence([options.seed, 11]).spawn(groups.ngroups)
    for ((condition, _), members), stream in zip(groups, streams, strict=True):
        sums = np.column_stack([members["gap"].to_numpy(), np.ones(len(members))])
        column = 0 if condition == Condition.BASIS else 2
        out[:, column:column + 2] += resample.bootstrap_sums(sums, options.n_boot,
                                                             np.random.default_rng(stream))
    return out


def _permutation_p(directions: pd.DataFrame, options: Options) -> float | None:
    """Shuffle condition across directions within each layer that has both conditions."""
    both = [layer for layer, rows in directions.groupby("layer")
            if rows["condition"].nunique() == 2]
    if not both or options.n_perm < 1:
        return None
    rows = directions[directions["layer"].isin(both)]
    strata = rows["layer"].map({layer: i for i, layer in enumerate(both)}).to_numpy()
    labels = (rows["condition"] == Condition.BASIS).to_numpy()
    sums = np.column_stack([rows["gap"].to_numpy(), np.ones(len(rows))])
    rng = np.random.default_rng(np.random.SeedSequence([options.seed, 13]))
    basis = resample.permutation_sums(sums, labels, strata, options.n_perm, rng).sum(axis=1)
    total = sums.sum(axis=0)
    null = _mean_difference(np.concatenate([basis, total - basis], axis=1))
    observed = sums[labels].sum(axis=0)
    return resample.two_sided_p(null, float(_mean_difference(
        np.concatenate([observed, total - observed]))))


def query_difficulty(ratings: pd.DataFrame, options: Options) -> QueryDifficulty:
    """Per condition, the mean standardized query gap over directions, and basis − random.

    A direction's gap is the mean over its answered trials (all reference kinds), so each
    direction counts once however many pairs it was shown with.
    """
    directions = _direction_gaps(ratings)
    by_condition = {c.value: _summary(directions.loc[directions["condition"] == c, "gap"])
                    for c in STIMULUS_CONDITIONS}
    basis, random = (by_condition[c.value] for c in STIMULUS_CONDITIONS)
    if basis.mean is None or random.mean is None:
        missing = "basis" if basis.mean is None else "random"
        return QueryDifficulty(by_condition, Difference.cannot(
            f"no query_gap values on {missing} rows"), None)
    draws = _mean_difference(_bootstrap(directions, options))
    ci = (resample.percentile_interval(draws, options.level)
          if min(basis.n_directions, random.n_directions) >= 2 else NO_INTERVAL)
    method = (f"mean over directions of each direction's mean query gap; percentile bootstrap "
              f"({options.n_boot} resamples of directions within layer × condition); "
              f"permutation p-value ({options.n_perm} shuffles of condition across directions "
              f"within layer, two-sided)")
    return QueryDifficulty(
        by_condition=by_condition,
        difference=Difference(estimate=basis.mean - random.mean, ci=ci,
                              p_value=_permutation_p(directions, options), method=method),
        standardized_difference=_cohens_d(basis, random))
