"""Rates, the basis − random difference and confidence, with stimulus-level inference.

Why not binomial intervals: ratings of one stimulus are correlated (some images are simply
clearer) and so are ratings by one annotator (some people say yes more), so treating ratings as
independent makes intervals about 1.5× too narrow. Here:

- each rate is a ratio of sums (yes / ratings), bootstrapped by resampling stimuli within their
  stratum (layer × condition; catch kinds are their own strata), optionally annotators too;
- the difference basis − random takes its interval from the same resamples (conditions are
  resampled independently) and its p-value from a permutation test that shuffles the condition
  label across stimuli within each layer, never across single ratings;
- every number is also given per layer; per-layer p-values get a Holm correction.

A statistic that cannot be estimated (a condition absent, a single stimulus) is reported as
None with a note saying why, never as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import sparse

from analysis import resample
from analysis.results import NO_INTERVAL, Confidence, Difference, Interval, Rate
from service.studies.ratings_file import CATCH_CONDITIONS, STIMULUS_CONDITIONS, Condition

STATS = ("yes", "n", "conf")


@dataclass(frozen=True)
class Options:
    """Resampling settings; every random draw derives from `seed`."""

    n_boot: int = 2000
    n_perm: int = 10_000
    seed: int = 0
    two_way: bool = False
    level: float = 0.95


@dataclass
class Draws:
    """Point sums and bootstrap sums (n_boot × 3: yes, n, conf) of one group of items."""

    point: np.ndarray
    boot: np.ndarray
    n_items: int


@dataclass(frozen=True)
class LayerEstimate:
    """One layer's basis and random rates and their difference."""

    layer: str
    rates: dict[str, Rate]
    difference: Difference


@dataclass
class Estimates:
    """What `estimate` found: rates per condition, the difference, confidence, per layer."""

    rates: dict[str, Rate]
    difference: Difference
    confidence: Confidence
    per_layer: list[LayerEstimate]
    notes: list[str]
    items: pd.DataFrame = field(repr=False)  # its `item_table`


def item_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per-item sufficient statistics: one row per stimulus or catch item, with its sums."""
    is_stim = ratings["condition"].isin(STIMULUS_CONDITIONS).to_numpy(dtype=bool)
    item = np.where(is_stim, ratings["stimulus_id"].to_numpy(dtype=np.float64, na_value=0),
                    ratings["catch_item_id"].to_numpy(dtype=np.float64, na_value=0))
    frame = pd.DataFrame({
        "condition": ratings["condition"].to_numpy(dtype=object),
        "layer": ratings["layer"].astype(object).fillna("").to_numpy(dtype=object),
        "item": item.astype(np.int64),
        "yes": ratings["interpretable"].to_numpy(dtype=np.float64),
        "n": 1.0,
        "conf": ratings["confidence"].to_numpy(dtype=np.float64),
    })
    return frame.groupby(["condition", "layer", "item"], sort=True, as_index=False).sum()


def _ratio(num: float | np.ndarray, den: float | np.ndarray) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(num, dtype=np.float64) / den


def _interval(draws: np.ndarray, level: float, n_items: int) -> Interval:
    if n_items < 2 or not np.isfinite(draws).any():
        return NO_INTERVAL
    lo, hi = resample.percentile_interval(draws, level)
    return lo, hi


def _stratum_draws(
    items: pd.DataFrame, ratings: pd.DataFrame, options: Options
) -> dict[tuple[str, str], Draws]:
    """Bootstrap sums for each (condition, layer) stratum, each from its own random stream."""
    groups = items.groupby(["condition", "layer"], sort=True).groups
    keys = cast(list[tuple[str, str]], list(groups))  # grouped by two columns: pairs
    streams = np.random.SeedSequence(options.seed).spawn(len(keys) + 1)
    weights = None
    annotators = np.unique(ratings["annotator_id"].to_numpy(dtype=np.int64))
    if options.two_way:
        weights = resample.annotator_weights(np.random.default_rng(streams[-1]), options.n_boot,
                                             annotators.size)
    out = {}
    for (condition, layer), stream in zip(keys, streams, strict=False):
        members = items[(items["condition"] == condition) & (items["layer"] == layer)]
        sums = members[list(STATS)].to_numpy()
        rng = np.random.default_rng(stream)
        if weights is None:
            boot = resample.bootstrap_sums(sums, options.n_boot, rng)
        else:
            matrices = _by_annotator(ratings, condition, layer, members["item"].to_numpy(),
                                     annotators)
            boot = resample.bootstrap_sums_two_way(matrices, weights, rng)
        out[(condition, layer)] = Draws(sums.sum(axis=0), boot, len(members))
    return out


def _by_annotator(
    ratings: pd.DataFrame, condition: str, layer: str, item_ids: np.ndarray,
    annotators: np.ndarray,
) -> list[sparse.csr_array]:
    """Items × annotators sparse sums of yes, ratings and confidence for one stratum."""
    rows = ratings[(ratings["condition"] == condition)
                   & (ratings["layer"].astype(object).fillna("") == layer)]
    id_column = "stimulus_id" if condition in STIMULUS_CONDITIONS else "catch_item_id"
    item_index = np.searchsorted(item_ids, rows[id_column].to_numpy(dtype=np.int64))
    annot_index = np.searchsorted(annotators, rows["annotator_id"].to_numpy(dtype=np.int64))
    shape = (item_ids.size, annotators.size)
    values = (rows["interpretable"].to_numpy(dtype=np.float64), np.ones(len(rows)),
              rows["confidence"].to_numpy(dtype=np.float64))
    return [sparse.csr_array((v, (item_index, annot_index)), shape=shape) for v in values]


def _combine(draws: list[Draws]) -> Draws:
    first, rest = draws[0], draws[1:]
    return Draws(sum((d.point for d in rest), first.point), sum((d.boot for d in rest), first.boot),
                 sum(d.n_items for d in draws))


def _rate(d: Draws | None, stat: str, level: float) -> Rate:
    if d is None:
        return Rate.missing()
    j = STATS.index(stat)
    return Rate(p=float(d.point[j] / d.point[1]),
                ci=_interval(_ratio(d.boot[:, j], d.boot[:, 1]), level, d.n_items),
                n=int(d.point[1]))


def _difference(b: Draws | None, r: Draws | None, stat: str, level: float,
                p_value: float | None, method: str) -> Difference:
    if b is None or r is None:
        missing = Condition.BASIS if b is None else Condition.RANDOM
        return Difference.cannot(f"no {missing} ratings")
    j = STATS.index(stat)
    boot = _ratio(b.boot[:, j], b.boot[:, 1]) - _ratio(r.boot[:, j], r.boot[:, 1])
    return Difference(estimate=float(b.point[j] / b.point[1] - r.point[j] / r.point[1]),
                      ci=_interval(boot, level, min(b.n_items, r.n_items)),
                      p_value=p_value, method=method)


def _permutation_p_values(items: pd.DataFrame, options: Options) -> tuple[float | None,
                                                                        dict[str, float]]:
    """Stimulus-level permutation p-values, overall (stratified by layer) and per layer."""
    stim = items[items["condition"].isin(STIMULUS_CONDITIONS)]
    layers = sorted(stim["layer"].unique())
    both = [layer for layer in layers
            if stim.loc[stim["layer"] == layer, "condition"].nunique() == 2]
    if not both or options.n_perm < 1:
        return None, {}
    stim = stim[stim["layer"].isin(both)]
    strata = stim["layer"].map({layer: i for i, layer in enumerate(both)}).to_numpy()
    labels = (stim["condition"] == Condition.BASIS).to_numpy()
    sums = stim[["yes", "n"]].to_numpy()
    rng = np.random.default_rng(np.random.SeedSequence([options.seed, 7]))
    basis = resample.permutation_sums(sums, labels, strata, options.n_perm, rng)
    totals = np.stack([sums[strata == i].sum(axis=0) for i in range(len(both))])
    observed = np.stack([sums[(strata == i) & labels].sum(axis=0) for i in range(len(both))])

    def diff(b: np.ndarray, total: np.ndarray) -> np.ndarray:
        return _ratio(b[..., 0], b[..., 1]) - _ratio(total[..., 0] - b[..., 0],
                                                      total[..., 1] - b[..., 1])

    per_layer = {layer: resample.two_sided_p(diff(basis[:, i], totals[i]),
                                             float(diff(observed[i], totals[i])))
                 for i, layer in enumerate(both)}
    overall = resample.two_sided_p(diff(basis.sum(axis=1), totals.sum(axis=0)),
                                   float(diff(observed.sum(axis=0), totals.sum(axis=0))))
    return overall, per_layer


def estimate(ratings: pd.DataFrame, options: Options) -> Estimates:
    """All resampling-based estimates for validated (and possibly exclusion-filtered) ratings."""
    items = item_table(ratings)
    draws = _stratum_draws(items, ratings, options)
    notes: list[str] = []
    by_condition: dict[Condition, Draws | None] = {}
    for condition in STIMULUS_CONDITIONS + CATCH_CONDITIONS:
        parts = [d for (c, _), d in draws.items() if c == condition]
        by_condition[condition] = _combine(parts) if parts else None
        if not parts:
            notes.append(f"no {condition} ratings: its rate cannot be estimated")
        elif by_condition[condition].n_items < 2:  # type: ignore[union-attr]
            notes.append(f"{condition} has a single item: no interval")
    overall_p, layer_p = _permutation_p_values(items, options)
    kind = "two-way (stimuli and annotators)" if options.two_way else "stimuli"
    method = (f"percentile bootstrap ({options.n_boot} resamples of {kind} within layer × "
              f"condition); permutation p-value ({options.n_perm} shuffles of condition "
              f"across stimuli within layer, two-sided)")
    rates = {c.value: _rate(by_condition[c], "yes", options.level) for c in by_condition}
    basis, random_ = by_condition[Condition.BASIS], by_condition[Condition.RANDOM]
    difference = _difference(basis, random_, "yes", options.level, overall_p, method)
    confidence = Confidence(
        mean={c.value: _rate(by_condition[c], "conf", options.level) for c in by_condition},
        difference=_difference(basis, random_, "conf", options.level, None,
                               "percentile bootstrap, as for the rates"),
    )
    per_layer = []
    for layer in sorted({layer for (c, layer) in draws if c in STIMULUS_CONDITIONS}):
        b, r = draws.get((Condition.BASIS, layer)), draws.get((Condition.RANDOM, layer))
        per_layer.append(LayerEstimate(
            layer=layer,
            rates={Condition.BASIS.value: _rate(b, "yes", options.level),
                   Condition.RANDOM.value: _rate(r, "yes", options.level)},
            difference=_difference(b, r, "yes", options.level, layer_p.get(layer), method),
        ))
    return Estimates(rates, difference, confidence, per_layer, notes, items)
