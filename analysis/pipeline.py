"""The whole analysis of one ratings table, in the order it was declared.

whose answers (people's by default; a machine annotator's only when asked) → exclusions →
estimates (bootstrap, permutation) → odds ratio (cluster-robust GLM) → mixed model → agreement
→ verdict, then the same estimates without exclusions so the report can show that the
exclusions did not make the finding. A 2-AFC study runs the same steps on accuracy, once per
reference kind, decides on synthetic references and adds the query-difficulty check
(`analysis.afc`). Returns an `AnalysisResult`: results.json's records, plus the exclusions and
the kept ratings' item table the report draws from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.afc import (
    CHANCE,
    PRIMARY,
    as_answers,
    query_difficulty,
    references_run,
    with_reference,
)
from analysis.agreement import agreement, alpha
from analysis.estimate import Estimates, Options, estimate
from analysis.exclusions import ExclusionRule, Exclusions, apply_exclusions, find_exclusions
from analysis.glm import odds_ratio
from analysis.load import machine_rows, task_of
from analysis.mixed import mixed_model
from analysis.results import (
    AnalysisResult,
    Difference,
    LayerAgreement,
    LayerDifference,
    LayerResult,
    Rate,
    ReferenceComparison,
    Secondary,
    Verdict,
    WithoutExclusions,
    versions,
)
from analysis.tasks import AFC, RATING
from analysis.verdict import verdict, verdict_afc
from service.studies.ratings_file import STIMULUS_CONDITIONS, Condition

ANALYSIS_COLUMNS = ("annotator_id", "session_id", "stimulus_id", "catch_item_id", "layer",
                    "condition", "interpretable", "confidence", "label", "rt_ms", "server_rt_ms",
                    "reference", "correct", "choice", "query_gap",
                    "annotator_source")  # the time rules pass over the machine's sessions
ANNOTATOR_GROUPS = ("human", "machine", "all")  # whose answers an analysis reads


@dataclass(frozen=True)
class AnalysisConfig:
    """Every choice the analysis makes; all of it is written to results.json `settings`
    (whose annotators were analysed: its `annotators`)."""

    options: Options = field(default_factory=Options)
    rule: ExclusionRule | None = None  # None: the task's pre-declared rule set
    min_rate: float = 0.2
    alpha: float = 0.05
    mixed_max_ratings: int = 4_000
    annotators: str = "human"

    def rule_for(self, task: str) -> ExclusionRule:
        return self.rule if self.rule is not None else ExclusionRule.default(task)


def select_annotators(ratings: pd.DataFrame, which: str) -> pd.DataFrame:
    """The answers of people (`human`: any source but `machine`, or none recorded), of the
    machine annotator (`machine`) or of everyone (`all`).

    Machine annotators pilot a study; left in by default they would pass for a very
    consistent crowd, so they are read only when asked for.

    Raises:
        ValueError: `which` is unknown, or no answer is left (the message says what to ask).
    """
    if which not in ANNOTATOR_GROUPS:
        raise ValueError(f"annotators must be one of {', '.join(ANNOTATOR_GROUPS)}, not "
                         f"{which!r}")
    if which == "all":
        return ratings
    machine = machine_rows(ratings)
    keep = machine if which == "machine" else ~machine
    if not keep.any():
        other = "machine annotators'" if which == "human" else "people's"
        raise ValueError(f"the file holds no {which} annotators' answers, only {other}; "
                         "analyse them with --machine or --all")
    return ratings.loc[keep].reset_index(drop=True)


def exclude(ratings: pd.DataFrame, rule: ExclusionRule, task: str = RATING,
            sessions: pd.DataFrame | None = None) -> tuple[Exclusions, pd.DataFrame]:
    """The pre-declared exclusions and the ratings they keep (maybe none): the first step of
    every analysis, and of every simulated study `analysis.power` runs."""
    excluded = find_exclusions(ratings, rule, task, sessions)
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


def _cores(ratings: pd.DataFrame, config: AnalysisConfig,
           task: str) -> tuple[_Core, dict[str, _Core]]:
    """The primary comparison's estimates and, for 2-AFC, every reference kind's."""
    if task == RATING:
        return _core(ratings, config), {}
    by_reference = {kind: _core(with_reference(ratings, kind), config)
                    for kind in references_run(ratings)}
    primary = by_reference.get(PRIMARY) or _core(with_reference(ratings, PRIMARY), config)
    return primary, by_reference


def _per_reference(by_reference: dict[str, _Core]) -> dict[str, dict[str, Rate]]:
    return {kind: {c.value: core.found.rates[c.value] for c in STIMULUS_CONDITIONS}
            for kind, core in by_reference.items()}


def _settings(config: AnalysisConfig, rule: ExclusionRule, task: str) -> dict[str, object]:
    chosen = {"min_rate": config.min_rate} if task == RATING else {}  # the rating task's floor
    return {**asdict(config.options), "exclusions": rule.as_dict(), **chosen,
            "alpha": config.alpha, "mixed_model_max_ratings": config.mixed_max_ratings,
            "versions": versions()}


def _notes(found: Estimates, core: _Core, task: str) -> list[str]:
    notes = list(found.notes)
    if task == AFC:  # one kind of catch trial, all naming the one reference-check item
        single = f"{Condition.CATCH_POSITIVE.value} has a single item: no interval"
        notes = [("catch trials all name one catch item (the reference check), so their "
                  "accuracy has no interval" if note == single else note)
                 for note in notes if Condition.CATCH_NEGATIVE.value not in note]
        if found.rates[Condition.BASIS].n + found.rates[Condition.RANDOM].n == 0:
            notes.append("no trials with synthetic references: the verdict cannot be decided")
    for label, value in (("odds ratio", core.odds_ratio), ("difference", found.difference)):
        if value.estimate is None:
            notes.append(f"{label}: {value.method}")
    return notes


def analyze(
    ratings: pd.DataFrame, config: AnalysisConfig,
    log: Callable[[str], None] = lambda _message: None,
    sessions: pd.DataFrame | None = None,
) -> AnalysisResult:
    """Run every step on validated ratings.

    Args:
        ratings: validated export rows of one task (see `analysis.load`).
        config: the pre-declared settings.
        log: receives one line per finished stage with its duration (the CLI and bench print it).
        sessions: the validated sessions export (`analysis.load.read_sessions`); the time rules
            of the exclusion rule set run only with it.

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

    task = task_of(ratings)
    ratings = select_annotators(ratings, config.annotators)
    if task == AFC:
        ratings = as_answers(ratings)
    ratings = ratings[list(ANALYSIS_COLUMNS)]  # a slim copy: every filter below moves less
    rule = config.rule_for(task)
    excluded, kept = exclude(ratings, rule, task, sessions)
    if kept.empty:
        raise ValueError("the exclusion rules removed every annotator; nothing to analyse")
    stage("exclusions")
    core, by_reference = _cores(kept, config, task)
    found = core.found
    stage("estimates (bootstrap, permutation, GLM)")
    primary = _stimulus_rows(kept if task == RATING else with_reference(kept, PRIMARY))
    mixed = mixed_model(primary["interpretable"].to_numpy(dtype=np.float64),
                        (primary["condition"] == Condition.BASIS).to_numpy(dtype=bool),
                        primary["annotator_id"].to_numpy(dtype=np.int64),
                        primary["stimulus_id"].to_numpy(dtype=np.int64),
                        seed=config.options.seed, max_ratings=config.mixed_max_ratings)
    stage("mixed model")
    agree = agreement(kept if task == RATING else with_reference(kept, PRIMARY))
    per_layer = [
        LayerResult(layer=entry.layer, rates=entry.rates, difference=difference,
                    odds_ratio=layer_or,
                    agreement=LayerAgreement(alpha(primary[primary["layer"] == entry.layer])))
        for entry, difference, layer_or in zip(found.per_layer, core.layer_differences,
                                               core.layer_odds_ratios, strict=True)
    ]
    stage("agreement")

    def decide(primary_core: _Core, references: dict[str, _Core]) -> Verdict:
        level = config.options.level
        if task == AFC:
            return verdict_afc(_per_reference(references), primary_core.found.difference,
                               alpha=config.alpha, level=level, chance=CHANCE)
        return verdict(primary_core.found.rates, primary_core.found.difference,
                       min_rate=config.min_rate, alpha=config.alpha, level=level)

    decided = decide(core, by_reference)
    without = None
    if excluded.annotators:
        raw, raw_references = _cores(ratings, config, task)
        without = WithoutExclusions(
            n_ratings=len(ratings), rates=raw.found.rates, difference=raw.found.difference,
            odds_ratio=raw.odds_ratio, verdict=decide(raw, raw_references),
        )
    stage("without exclusions")
    difficulty = query_difficulty(kept, config.options) if task == AFC else None
    notes = _notes(found, core, task)
    if mixed.log_odds is None:
        notes.append(f"mixed model: {mixed.note}")
    if agree.krippendorff_alpha is None:
        notes.append("Krippendorff's alpha is undefined: no stimulus was rated twice, or every "
                     "answer was the same")
    server_clock = bool(ratings["server_rt_ms"].notna().any())
    return AnalysisResult(
        n_ratings=len(kept),
        n_annotators=int(kept["annotator_id"].nunique()),
        n_stimuli=int(_stimulus_rows(kept)["stimulus_id"].nunique()),
        excluded_annotators=excluded.annotators,
        exclusion_rule=rule.describe(with_sessions=sessions is not None,
                                     server_clock=server_clock),
        rates=found.rates,
        difference=found.difference,
        odds_ratio=core.odds_ratio,
        mixed_model=mixed,
        agreement=agree,
        per_layer=per_layer,
        verdict=decided,
        settings=_settings(config, rule, task),
        secondary=Secondary(
            confidence=found.confidence,
            exclusion_counts=excluded.counts(),
            n_ratings_before_exclusions=len(ratings),
            without_exclusions=without,
            mixed_model=mixed,
            by_reference=None if task == RATING else {
                kind: ReferenceComparison(c.found.difference, c.odds_ratio)
                for kind, c in by_reference.items()},
            query_difficulty=difficulty,
        ),
        notes=notes,
        task=task,
        chance=CHANCE if task == AFC else None,
        per_reference=_per_reference(by_reference),
        annotators=config.annotators,
        item_table=found.items,
        exclusions=excluded,
    )
