"""The whole analysis of one ratings table, in the order it was declared.

exclusions → estimates (bootstrap, permutation) → odds ratio (cluster-robust GLM) → mixed
model → agreement → verdict, then the same estimates without exclusions so the report can show
that the exclusions did not make the finding. Returns the results.json dictionary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.agreement import agreement, alpha
from analysis.estimate import Estimates, Options, estimate
from analysis.exclusions import ExclusionRule, Exclusions, apply_exclusions, find_exclusions
from analysis.glm import odds_ratio
from analysis.mixed import mixed_model
from analysis.verdict import verdict

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
    """The pre-declared exclusions and the ratings they keep: the first step of every analysis
    (and of every simulated study `analysis.power` runs). ValueError when no one is kept."""
    excluded = find_exclusions(ratings, rule)
    kept = apply_exclusions(ratings, excluded)
    if kept.empty:
        raise ValueError("the exclusion rules removed every annotator; nothing to analyse")
    return excluded, kept


def _stimulus_rows(ratings: pd.DataFrame) -> pd.DataFrame:
    return ratings[ratings["condition"].isin(("basis", "random"))]


def _odds_ratio(rows: pd.DataFrame, level: float) -> dict[str, Any]:
    return odds_ratio(rows["interpretable"].to_numpy(dtype=np.float64),
                      (rows["condition"] == "basis").to_numpy(dtype=bool),
                      rows["annotator_id"].to_numpy(dtype=np.int64),
                      rows["stimulus_id"].to_numpy(dtype=np.int64), level)


def _holm(entries: list[dict[str, Any]]) -> None:
    """Add `p_value_holm` to each entry (None stays None), adjusting across the layers."""
    present = [e for e in entries if e.get("p_value") is not None]
    if present:
        adjusted = multipletests([e["p_value"] for e in present], method="holm")[1]
        for entry, value in zip(present, adjusted, strict=True):
            entry["p_value_holm"] = float(value)
    for entry in entries:
        entry.setdefault("p_value_holm", None)


def _core(ratings: pd.DataFrame, config: AnalysisConfig) -> tuple[Estimates, dict[str, Any]]:
    found = estimate(ratings, config.options)
    stim = _stimulus_rows(ratings)
    level = config.options.level
    overall_or = _odds_ratio(stim, level)
    for entry in found.per_layer:
        entry["odds_ratio"] = _odds_ratio(stim[stim["layer"] == entry["layer"]], level)
    _holm([e["difference"] for e in found.per_layer])
    _holm([e["odds_ratio"] for e in found.per_layer])
    return found, overall_or


def analyze(
    ratings: pd.DataFrame, config: AnalysisConfig,
    log: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    """Run every step on validated ratings; returns the results.json dictionary.

    Args:
        ratings: validated export rows (see `analysis.load`).
        config: the pre-declared settings.
        log: receives one line per finished stage with its duration (the CLI and bench print it).
    """
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        log(f"{name}: {now - clock:.2f} s")
        clock = now

    ratings = ratings[list(ANALYSIS_COLUMNS)]  # a slim copy: every filter below moves less
    excluded, kept = exclude(ratings, config.rule)
    stage("exclusions")
    found, overall_or = _core(kept, config)
    stage("estimates (bootstrap, permutation, GLM)")
    stim = _stimulus_rows(kept)
    mixed = mixed_model(stim["interpretable"].to_numpy(dtype=np.float64),
                        (stim["condition"] == "basis").to_numpy(dtype=bool),
                        stim["annotator_id"].to_numpy(dtype=np.int64),
                        stim["stimulus_id"].to_numpy(dtype=np.int64),
                        seed=config.options.seed, max_ratings=config.mixed_max_ratings)
    stage("mixed model")
    agree = agreement(kept)
    for entry in found.per_layer:
        layer_rows = stim[stim["layer"] == entry["layer"]]
        entry["agreement"] = {"krippendorff_alpha": alpha(layer_rows)}
    stage("agreement")
    decided = verdict(found.rates, found.difference, min_rate=config.min_rate,
                      alpha=config.alpha, level=config.options.level)
    if excluded.annotators:
        raw, raw_or = _core(ratings, config)
        without = {"n_ratings": len(ratings), "rates": raw.rates, "difference": raw.difference,
                   "odds_ratio": raw_or, "verdict": verdict(raw.rates, raw.difference,
                                                            min_rate=config.min_rate,
                                                            alpha=config.alpha,
                                                            level=config.options.level)}
    else:
        without = {"same_as_main": True}
    stage("without exclusions")
    notes = list(found.notes)
    for label, value in (("odds ratio", overall_or), ("difference", found.difference)):
        if value["estimate"] is None:
            notes.append(f"{label}: {value['method']}")
    if mixed["log_odds"] is None:
        notes.append(f"mixed model: {mixed['note']}")
    if agree["krippendorff_alpha"] is None:
        notes.append("Krippendorff's alpha is undefined: no stimulus was rated twice, or every "
                     "answer was the same")
    return {
        "n_ratings": len(kept),
        "n_annotators": int(kept["annotator_id"].nunique()),
        "n_stimuli": int(stim["stimulus_id"].nunique()),
        "excluded_annotators": excluded.annotators,
        "exclusion_rule": config.rule.describe(),
        "rates": found.rates,
        "difference": found.difference,
        "odds_ratio": overall_or,
        "mixed_model": {k: mixed[k] for k in ("log_odds", "annotator_sd", "stimulus_sd")},
        "agreement": agree,
        "per_layer": found.per_layer,
        "verdict": decided,
        "settings": {**asdict(config.options), "exclusions": config.rule.as_dict(),
                     "min_rate": config.min_rate, "alpha": config.alpha,
                     "mixed_model_max_ratings": config.mixed_max_ratings},
        "secondary": {
            "confidence": found.confidence,
            "exclusion_counts": excluded.counts(),
            "n_ratings_before_exclusions": len(ratings),
            "without_exclusions": without,
            "mixed_model": {"n_ratings_used": mixed["n_ratings_used"], "note": mixed["note"]},
        },
        "notes": notes,
    }
