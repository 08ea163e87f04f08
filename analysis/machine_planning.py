"""Planning a 2-AFC study from the machine annotator's answers to it (`fvlab power --from-machine`).

The machine's answers with synthetic references give the two numbers a 2-AFC power analysis
needs most: the accuracy of basis and of random directions (the share of correct answers, as
`fvlab analyze` computes a rate, shrunk by half an answer each way so that an all-correct
machine still plans below certainty), and how much directions differ in ease, the stimulus SD
on the logit scale that `AfcSpec.stimulus_sd` draws.

Why a fitted model for the SD and not the spread of per-direction accuracies: a direction
answered n times has an observed accuracy that scatters binomially around its true one, and on
the logit scale an observed 0 or 1 is infinite. So the SD is the maximum-likelihood fit of the
simulator's own model to the per-direction counts, logit P(correct) = intercept(condition) +
ease, ease ~ N(0, SD²), each direction's binomial likelihood integrated over its ease by
Gauss–Hermite quadrature: binomial noise is netted out exactly, and a perfect direction counts
as evidence of a large ease, not as infinity. Machine annotators share one embedding, so their
answers carry no annotator effect to separate; the people's annotator SD stays the planner's
assumption (`--annotator-sd`).

The SD is identified only by directions answered more than once (with one answer each, any SD
fits equally well), so fewer than `MIN_ANSWERS_PER_DIRECTION` answers per direction (median)
is refused with what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, special

from analysis.load import machine_rows
from analysis.simulate_afc import AfcSpec
from analysis.tasks import AFC
from service.studies.ratings_file import Condition

PRIMARY = "synthetic"
MIN_ANSWERS_PER_DIRECTION = 2  # the median a direction needs for the SD to be identified
QUADRATURE_NODES = 40
MAX_SD = 10.0  # logit SD bound: beyond it every direction is all right or all wrong anyway
NEEDED_COLUMNS = ("annotator_source", "task", "condition", "reference", "correct",
                  "direction_id", "layer")  # fmt: skip
SD_METHOD = ("maximum likelihood of logit P = intercept(condition) + ease, ease ~ N(0, SD²), "
             f"over per-direction counts ({QUADRATURE_NODES}-node Gauss–Hermite)")


class NoMachineAnswers(ValueError):
    """The ratings hold no machine annotator's 2-AFC answers with synthetic references."""


@dataclass(frozen=True)
class MachineAccuracy:
    """One condition's machine accuracy with synthetic references."""

    p: float  # planning value: (correct + 0.5) / (answers + 1)
    observed: float  # correct / answers, as `fvlab analyze` reports it
    answers: int
    directions: int


@dataclass(frozen=True)
class MachinePlan:
    """What the machine's answers say a study of people should plan for."""

    basis: MachineAccuracy
    random: MachineAccuracy
    stimulus_sd: float
    layers: tuple[str, ...]
    machine_annotators: int
    sd_method: str = SD_METHOD

    @property
    def directions(self) -> int:
        return self.basis.directions + self.random.directions


def _machine_rows(ratings: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in NEEDED_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"the ratings lack column(s) {', '.join(missing)}; a 2-AFC study's "
                         "export has them")
    machine = machine_rows(ratings)
    if not machine.any():
        raise NoMachineAnswers("no machine annotator's answers (annotator_source machine)")
    rows = ratings.loc[machine]
    if set(rows["task"].dropna().astype(str)) - {AFC}:
        raise ValueError("the machine's answers are not 2-AFC answers; --from-machine plans a "
                         "2-AFC study")
    shown = (rows["reference"] == PRIMARY).fillna(False).to_numpy(dtype=bool)
    stimulus = rows["condition"].isin([Condition.BASIS.value, Condition.RANDOM.value])
    rows = rows.loc[shown & stimulus.to_numpy(dtype=bool)]
    if rows.empty:
        raise NoMachineAnswers("no machine annotator's answers with synthetic references")
    return rows


def _counts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per direction: condition, layer, answers `n` and correct `y`."""
    frame = pd.DataFrame({
        "direction": rows["direction_id"].to_numpy(dtype=np.int64),
        "condition": rows["condition"].astype(str).to_numpy(),
        "layer": rows["layer"].astype(str).to_numpy(),
        "y": pd.to_numeric(rows["correct"]).to_numpy(dtype=np.float64),
    })
    if not np.isin(frame["y"], (0.0, 1.0)).all():
        raise ValueError("a machine answer's correct is not 0 or 1")
    return (frame.groupby(["direction", "condition", "layer"], as_index=False)
            .agg(n=("y", "size"), y=("y", "sum")))


def _accuracy(counts: pd.DataFrame, condition: str) -> MachineAccuracy:
    rows = counts[counts["condition"] == condition]
    if rows.empty:
        raise ValueError(f"the machine answered no {condition} direction with synthetic "
                         "references; the plan needs both conditions")
    n, y = float(rows["n"].sum()), float(rows["y"].sum())
    return MachineAccuracy((y + 0.5) / (n + 1), y / n, int(n), len(rows))


def direction_sd(correct: np.ndarray, answers: np.ndarray, group: np.ndarray) -> float:
    """The between-direction SD on the logit scale (see the module docstring).

    Args:
        correct: correct answers per direction; answers: answers per direction;
        group: each direction's intercept group (0, 1, …: its condition).
    """
    y, n = np.asarray(correct, dtype=np.float64), np.asarray(answers, dtype=np.float64)
    g = np.asarray(group, dtype=np.int64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    log_w = np.log(weights / math.sqrt(2 * math.pi))
    log_choose = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
    n_groups = int(g.max()) + 1

    def negative_log_likelihood(params: np.ndarray) -> float:
        eta = params[g][:, None] + params[-1] * nodes[None, :]
        log_binomial = (log_choose[:, None] + y[:, None] * special.log_expit(eta)
                        + (n - y)[:, None] * special.log_expit(-eta))
        return -float(special.logsumexp(log_binomial + log_w[None, :], axis=1).sum())

    pooled = [(y[g == k].sum() + 0.5) / (n[g == k].sum() + 1) for k in range(n_groups)]
    start = np.array([*special.logit(pooled), 1.0])
    bounds = [(None, None)] * n_groups + [(0.0, MAX_SD)]
    fit = optimize.minimize(negative_log_likelihood, start, method="L-BFGS-B", bounds=bounds)
    return float(fit.x[-1])


def plan_from_machine(ratings: pd.DataFrame) -> MachinePlan:
    """The machine's accuracies and stimulus SD, from a 2-AFC study's ratings (any annotators;
    only `annotator_source` machine rows with synthetic references are read).

    Raises:
        NoMachineAnswers: the study has no such answers (let the machine answer it first).
        ValueError: one condition is missing, or too few answers per direction for the SD.
    """
    rows = _machine_rows(ratings)
    counts = _counts(rows)
    basis, random = (_accuracy(counts, c.value) for c in (Condition.BASIS, Condition.RANDOM))
    median = float(np.median(counts["n"]))
    if median < MIN_ANSWERS_PER_DIRECTION:
        raise ValueError(
            f"the machine answered each direction {median:g} time(s) (median) with synthetic "
            f"references; the spread between directions needs at least "
            f"{MIN_ANSWERS_PER_DIRECTION}: let more machine annotators answer "
            "(fvlab machine rate --annotators N)")
    group = (counts["condition"] == Condition.RANDOM.value).to_numpy(dtype=np.int64)
    sd = direction_sd(counts["y"].to_numpy(), counts["n"].to_numpy(), group)
    annotators = int(pd.Series(ratings.loc[rows.index, "annotator_id"]).nunique()
                     if "annotator_id" in ratings.columns else 0)
    return MachinePlan(basis, random, sd, tuple(sorted(counts["layer"].unique())), annotators)


def study_design(plan: MachinePlan, base: AfcSpec, references: tuple[str, ...],
                 ratings_per_item: int, trials_per_session: int,
                 catch_every: int | None = None) -> AfcSpec:
    """`base` (the planner's other assumptions: annotator SD, natural and none accuracies,
    careless share, seed) with the machine's accuracies and SD, and the study's own design:
    its layers and reference kinds, k, each person's trials (`trials_per_session`) and catch
    frequency (None keeps `base`'s); its number of directions, a multiple of 2 × layers,
    starts the search."""
    if ratings_per_item < 1 or trials_per_session < 1:
        raise ValueError("ratings per item and trials per session must be at least 1")
    step = 2 * len(plan.layers)
    directions = max(step, round(plan.directions / step) * step)
    trials = directions * len(references) * ratings_per_item
    annotators = max(ratings_per_item, math.ceil(trials / trials_per_session))
    spec = replace(base, n_stimuli=directions, n_annotators=annotators,
                   ratings_per_item=ratings_per_item, layers=plan.layers,
                   references=references, p_basis=plan.basis.p, p_random=plan.random.p,
                   stimulus_sd=plan.stimulus_sd,
                   catch_every=base.catch_every if catch_every is None else catch_every)
    spec.check()
    return spec


def describe(plan: MachinePlan) -> list[str]:
    """The planning inputs in words, one line each."""
    def one(name: str, acc: MachineAccuracy) -> str:
        right = round(acc.observed * acc.answers)
        return (f"machine accuracy, {name} directions with synthetic references: "
                f"{acc.observed:.3f} ({right} of {acc.answers} answers, {acc.directions} "
                f"directions); planned {acc.p:.3f}")

    return [one(Condition.BASIS.value, plan.basis), one(Condition.RANDOM.value, plan.random),
            f"stimulus SD (logit) between directions: {plan.stimulus_sd:.2f} "
            f"({plan.sd_method})"]
