"""The whole analysis of one ratings table, in the order it was declared.

exclusions → estimates (bootstrap, permutation) → odds ratio (cluster-robust GLM) → mixed
model → agreement → verdict, then the same estimates without exclusions so the report can show
that the exclusions did not make the finding. Returns an `AnalysisResult`: results.json's
records, plus the exclusions and the kept ratings' item table the report draws from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.agreement import agreement, alpha
from analysis.estimate import Estimates, Options, estimate
from analysis.exclusions import ExclusionRule, Exclusions, apply_exclusions, find_exclusions
from analysis.glm import odds_ratio
from analysis.mixed import mixed_model
from analysis.results import (
    AnalysisResult,
    Difference,
    LayerAgreement,
    LayerDifference,
    LayerResult,
    Secondary,
    Verdict,
    WithoutExclusions,
    versions,
)
from analysis.verdict import verdict
from service.studies.ratings_file import STIMULUS_CONDITIONS, Condition

ANALYSIS_COLUMNS = ("annotator_id", "stimulus_id", "catch_item_id", "layer", "condition",
                    "interpretable", "confidence", "label", "rt_ms")


@dataclass(frozen=True)
class AnalysisConfig:
    """Every choice the analysis makes; all of it is written to results.json `settings`."""

    options: Options = field(default_factory=Options)
    rule: ExclusionRule = field(default_factory=ExclusionRule)
    min_rate: float = 0.2
    alpha: float = 0.05
    mixed_max_ratings: int = 4_000


def exclude(ratings: pd.DataFrame, rule: ExclusionRule) -> tuple[Exclusions, pd.DataFrame]:
    """The pre-declared exclusions and the ratings they keep (maybe none): the first step of
    every analysis, and of every simulated study `analysis.power` runs."""
    excluded = find_exclusions(ratings, rule)
    return excluded, apply_exclusions(ratings, excluded)


def _stimulus_rows(ratings: pd.DataFrame) -> pd.DataFrame:
    return ratings[ratings["condition"].isin(STIMULUS_CONDITIONS)]


def _odds_ratio(rows: pd.DataFrame, level: float) -> Difference:
    return odds_ratio(rows["interpretable"].to_numpy(dtype=np.float64),
                      (rows["condition"] == Condition.BASIS).to_numpy(dtype=bool),
                      rows["annotator_id"].to_numpy(dtype=np.int64),
                      rows["stimulus_id"].to_numpy(dtype=np.int64), level)


def _holm(entries: list[Difference]) -> list[LayerDifference]:
    """The entries with `p_value_holm`, adjusted across the layers (None stays None)."""
    present = [i for i, e in enumerate(entries) if e.p_value is not None]
    adjusted: dict[int, float] = {}
    if present:
        values = multipletests([entries[i].p_value for i in present], method="holm")[1]
        adjusted = {i: float(v) for i, v in zip(present, values, strict=True)}
    return [LayerDifference(e.estimate, e.ci, e.p_value, e.method, adjusted.get(i))
            for i, e in enumerate(entries)]


@dataclass
class _Core:
    """The estimates on one set of ratings: the resampling estimates and the odds ratios."""

    found: Estimates
    odds_ratio: Difference
    layer_differences: list[LayerDifference]
    layer_odds_ratios: list[LayerDifference]


def _core(ratings: pd.DataFrame, config: AnalysisConfig) -> _Core:
    found = estimate(ratings, config.options)
    stim = _stimulus_rows(ratings)
    level = config.options.level
    layer_or = [_odds_ratio(stim[stim["layer"] == entry.layer], level)
                for entry in found.per_layer]
    return _Core(found, _odds_ratio(stim, level),
                 _holm([entry.difference for entry in found.per_layer]), _holm(layer_or))


def _settings(config: AnalysisConfig) -> dict[str, object]:
    return {**asdict(config.options), "exclusions": config.rule.as_dict(),
            "min_rate": config.min_rate, "alpha": config.alpha,
            "mixed_model_max_ratings": config.mixed_max_ratings, "versions": versions()}


def analyze(
    ratings: pd.DataFrame, config: AnalysisConfig,
    log: Callable[[str], None] = lambda _message: None,
) -> AnalysisResult:
    """Run every step on validated ratings.

    Args:
        ratings: validated export rows (see `analysis.load`).
        config: the pre-declared settings.
        log: receives one line per finished stage with its duration (the CLI and bench print it).

    Returns:
        The result (`to_json()` is results.json), with the exclusions it applied and the item
        table of the ratings it kept, which the report's figures draw.
    """
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        log(f"{name}: {now - clock:.2f} s")
        clock = now

    ratings = ratings[list(ANALYSIS_COLUMNS)]  # a slim copy: every filter below moves less
    excluded, kept = exclude(ratings, config.rule)
    if kept.empty:
        raise ValueError("the exclusion rules removed every annotator; nothing to analyse")
    stage("exclusions")
    core = _core(kept, config)
    found = core.found
    stage("estimates (bootstrap, permutation, GLM)")
    stim = _stimulus_rows(kept)
    mixed = mixed_model(stim["interpretable"].to_numpy(dtype=np.float64),
                        (stim["condition"] == Condition.BASIS).to_numpy(dtype=bool),
                        stim["annotator_id"].to_numpy(dtype=np.int64),
                        stim["stimulus_id"].to_numpy(dtype=np.int64),
                        seed=config.options.seed, max_ratings=config.mixed_max_ratings)
    stage("mixed model")
    agree = agreement(kept)
    per_layer = [
        LayerResult(layer=entry.layer, rates=entry.rates, difference=difference,
                    odds_ratio=layer_or,
                    agreement=LayerAgreement(alpha(stim[stim["layer"] == entry.layer])))
        for entry, difference, layer_or in zip(found.per_layer, core.layer_differences,
                                               core.layer_odds_ratios, strict=True)
    ]
    stage("agreement")

    def decide(estimates: Estimates) -> Verdict:
        return verdict(estimates.rates, estimates.difference, min_rate=config.min_rate,
                       alpha=config.alpha, level=config.options.level)

    decided = decide(found)
    without = None
    if excluded.annotators:
        raw = _core(ratings, config)
        without = WithoutExclusions(
            n_ratings=len(ratings), rates=raw.found.rates, difference=raw.found.difference,
            odds_ratio=raw.odds_ratio, verdict=decide(raw.found),
        )
    stage("without exclusions")
    notes = list(found.notes)
    for label, value in (("odds ratio", core.odds_ratio), ("difference", found.difference)):
        if value.estimate is None:
            notes.append(f"{label}: {value.method}")
    if mixed.log_odds is None:
        notes.append(f"mixed model: {mixed.note}")
    if agree.krippendorff_alpha is None:
        notes.append("Krippendorff's alpha is undefined: no stimulus was rated twice, or every "
                     "answer was the same")
    return AnalysisResult(
        n_ratings=len(kept),
        n_annotators=int(kept["annotator_id"].nunique()),
        n_stimuli=int(stim["stimulus_id"].nunique()),
        excluded_annotators=excluded.annotators,
        exclusion_rule=config.rule.describe(),
        rates=found.rates,
        difference=found.difference,
        odds_ratio=core.odds_ratio,
        mixed_model=mixed,
        agreement=agree,
        per_layer=per_layer,
        verdict=decided,
        settings=_settings(config),
        secondary=Secondary(
            confidence=found.confidence,
            exclusion_counts=excluded.counts(),
            n_ratings_before_exclusions=len(ratings),
            without_exclusions=without,
            mixed_model=mixed,
        ),
        notes=notes,
        item_table=found.items,
        exclusions=excluded,
    )
