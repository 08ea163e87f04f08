"""Synthetic crowds with a known truth, in the ratings export format.

Each rating is drawn from a logistic model: logit P(yes) = intercept(condition, layer) +
annotator bias + stimulus difficulty, both normal. The intercepts are solved so that the
*marginal* rates (averaged over annotators and stimuli) equal `p_basis` and `p_random`, so the
truth an interval should cover is exactly `p_basis - p_random` (per layer when `layer_sd` moves
the condition effect between layers). Catch items and careless annotators (fast, random buttons)
make the exclusion rules testable. Every array is drawn at once; nothing loops per rating.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from service.studies.ratings_file import Condition

VOCABULARY = tuple(
    "dog cat bird eye face wheel text fur feather leaf flower water sky building car window "
    "stripe spot grid curve circle spiral mesh scale shell insect fish snake tree grass rock "
    "sand cloud fire metal wood cloth hand mouth nose ear wing tail leg door roof road".split()
)
_GAUSS_HERMITE = np.polynomial.hermite_e.hermegauss(64)
START = np.datetime64("2026-01-01T09:00:00", "ms")


@dataclass(frozen=True)
class CrowdSpec:
    """A simulated study's design and true parameters (logit scale for the SDs)."""

    n_annotators: int = 60
    n_stimuli: int = 400
    ratings_per_item: int = 5
    layers: tuple[str, ...] = ("blocks.4", "blocks.10")
    p_basis: float = 0.6
    p_random: float = 0.4
    annotator_sd: float = 0.8
    stimulus_sd: float = 1.0
    layer_sd: float = 0.0
    catch_every: int = 10
    n_catch_items: int = 20
    catch_accuracy: float = 0.95
    careless_share: float = 0.0
    label_share: float = 0.3
    seed: int = 0

    def check(self) -> None:
        """Refuse designs the simulator cannot honour, with the reason."""
        if not (0 < self.p_basis < 1 and 0 < self.p_random < 1):
            raise ValueError("p_basis and p_random must lie strictly between 0 and 1")
        if self.n_annotators < 1 or self.ratings_per_item < 1:
            raise ValueError("need at least one annotator and one rating per item")
        if self.ratings_per_item > self.n_annotators:
            raise ValueError("ratings per item cannot exceed the number of annotators "
                             "(each item is rated by distinct annotators)")
        if not self.layers or self.n_stimuli < 2 * len(self.layers):
            raise ValueError("need at least one stimulus per layer and condition")
        if not 0 <= self.careless_share <= 1:
            raise ValueError("careless_share must be in 0..1")


@dataclass(frozen=True)
class Truth:
    """What the analysis should recover."""

    p_basis: float
    p_random: float
    per_layer: dict[str, tuple[float, float]]
    careless_annotators: frozenset[int] = field(default_factory=frozenset)

    @property
    def difference(self) -> float:
        return self.p_basis - self.p_random


def marginal_rate(intercept: float, sd: float) -> float:
    """E[expit(intercept + sd * Z)] for standard normal Z (Gauss–Hermite quadrature)."""
    nodes, weights = _GAUSS_HERMITE
    return float(np.sum(weights * expit(intercept + sd * nodes)) / np.sqrt(2 * np.pi))


def intercept_for(rate: float, sd: float) -> float:
    """The logit intercept whose marginal rate, under normal effects of SD `sd`, is `rate`."""
    return float(brentq(lambda b: marginal_rate(b, sd) - rate, -30.0, 30.0))


def assign(rng: np.random.Generator, n_items: int, k: int, n_annotators: int) -> np.ndarray:
    """k distinct annotators per item, loads balanced within one: a random cyclic design."""
    step = max(n_annotators // k, 1)
    offsets = rng.integers(0, n_annotators, size=n_items)
    return (offsets[:, None] + step * np.arange(k)[None, :]) % n_annotators


def session_order(rng: np.random.Generator, annotator: np.ndarray,
                  n_annotators: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's trial position in its annotator's session (a random order) and its time."""
    n_rows = annotator.size
    order = np.lexsort((rng.random(n_rows), annotator))
    position = np.empty(n_rows, dtype=np.int64)
    starts = np.searchsorted(annotator[order], np.arange(n_annotators))
    position[order] = np.arange(n_rows) - np.repeat(
        starts, np.bincount(annotator, minlength=n_annotators))
    created = START + annotator.astype("timedelta64[m]") * 90 + position.astype(
        "timedelta64[s]") * 4
    return position, created


def ids(values: np.ndarray, present: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Whole numbers as a nullable column, empty where `present` is False."""
    column = pd.array(values, dtype="Int64")
    column[~present] = pd.NA
    return column


def iso_times(created: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Times as the export writes them (ISO 8601 UTC, milliseconds)."""
    return pd.array(np.char.add(np.datetime_as_string(created, unit="ms"), "Z"), dtype="string")


def simulate(spec: CrowdSpec) -> tuple[pd.DataFrame, Truth]:
    """Draw one study; returns the ratings (export format, as written to file) and the truth.

    Pass the ratings through `analysis.load.validate` before analysing them, as for a file.
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    n_layers, k, n_ann = len(spec.layers), spec.ratings_per_item, spec.n_annotators
    total_sd = float(np.hypot(spec.annotator_sd, spec.stimulus_sd))
    base_b, base_r = (intercept_for(p, total_sd) for p in (spec.p_basis, spec.p_random))
    shifts = rng.normal(0.0, spec.layer_sd, size=n_layers) if spec.layer_sd > 0 else np.zeros(
        n_layers)
    intercepts = np.array([[base_b + s / 2, base_r - s / 2] for s in shifts])  # layer × cond
    per_layer = {name: (marginal_rate(intercepts[i, 0], total_sd),
                        marginal_rate(intercepts[i, 1], total_sd))
                 for i, name in enumerate(spec.layers)}

    n_stim = spec.n_stimuli
    layer_of = np.arange(n_stim) % n_layers
    cond_of = (np.arange(n_stim) // n_layers) % 2  # 0 basis, 1 random: balanced per layer
    difficulty = rng.normal(0.0, spec.stimulus_sd, size=n_stim)
    bias = rng.normal(0.0, spec.annotator_sd, size=n_ann)
    careless = rng.random(n_ann) < spec.careless_share

    annot = assign(rng, n_stim, k, n_ann).ravel()
    stim = np.repeat(np.arange(n_stim), k)
    p_yes = expit(intercepts[layer_of[stim], cond_of[stim]] + difficulty[stim] + bias[annot])

    n_catch_trials = (n_stim * k) // spec.catch_every if spec.catch_every > 0 else 0
    catch_annot = rng.integers(0, n_ann, size=n_catch_trials)
    catch_item = rng.integers(0, 2 * spec.n_catch_items, size=n_catch_trials)
    catch_positive = catch_item < spec.n_catch_items
    catch_p = np.where(catch_positive, spec.catch_accuracy, 1 - spec.catch_accuracy)

    annotator = np.concatenate([annot, catch_annot])
    prob = np.concatenate([p_yes, catch_p])
    lazy = careless[annotator]
    prob = np.where(lazy, 0.5, prob)
    yes = rng.random(prob.size) < prob
    n_rows, n_stim_rows = prob.size, stim.size
    rt = np.where(lazy, rng.lognormal(np.log(350), 0.3, n_rows),
                  rng.lognormal(np.log(2500), 0.5, n_rows)).round().astype(np.int64)
    certainty = np.abs(2 * prob - 1)
    confidence = np.clip(np.rint(1 + 4 * certainty + rng.normal(0, 0.7, n_rows)), 1, 5)

    position, created = session_order(rng, annotator, n_ann)

    is_stim = np.arange(n_rows) < n_stim_rows
    stim_id = np.where(is_stim, np.concatenate([stim, np.zeros(n_catch_trials, int)]) + 1, 0)
    layer_names = np.array(spec.layers, dtype=object)
    cond_names = np.array([Condition.BASIS.value, Condition.RANDOM.value], dtype=object)
    condition = np.concatenate([cond_names[cond_of[stim]],
                                np.where(catch_positive, Condition.CATCH_POSITIVE.value,
                                         Condition.CATCH_NEGATIVE.value)])
    channel = rng.permutation(10_000)[:n_stim]
    concept = rng.integers(0, len(VOCABULARY), size=n_stim)
    wants_label = is_stim & yes & (rng.random(n_rows) < spec.label_share)
    stim_ix = np.where(is_stim, stim_id - 1, 0)
    on_topic = rng.random(n_rows) < np.concatenate([p_yes, np.zeros(n_catch_trials)])
    word = np.where(on_topic, concept[stim_ix], rng.integers(0, len(VOCABULARY), size=n_rows))
    labels = np.where(wants_label, np.array(VOCABULARY, dtype=object)[word], None)  # type: ignore[call-overload]  # numpy's stubs refuse None as a fill value; object arrays take it

    frame = pd.DataFrame({
        "rating_id": np.arange(1, n_rows + 1),
        "study_id": 1,
        "session_id": annotator + 1,
        "annotator_id": annotator + 1,
        "trial_position": position,
        "stimulus_id": ids(stim_id, is_stim),
        "catch_item_id": ids(np.concatenate([np.zeros(n_stim_rows, int), catch_item + 1]),
                             ~is_stim),
        "direction_id": ids(stim_id, is_stim),
        "job_id": ids(np.ones(n_rows, int), is_stim),
        "model": pd.array(np.where(is_stim, "simulated", None),  # type: ignore[call-overload]  # None fill: see labels
                          dtype="string"),
        "layer": pd.array(np.where(is_stim, layer_names[layer_of[stim_ix]], None),  # type: ignore[call-overload]  # None fill: see labels
                          dtype="string"),
        "condition": pd.array(condition, dtype="string"),
        "channel": ids(channel[stim_ix], is_stim & (condition == Condition.BASIS.value)),
        "interpretable": yes.astype(np.int64),
        "confidence": confidence.astype(np.int64),
        "label": pd.array(labels, dtype="string"),
        "rt_ms": rt,
        "created_at": iso_times(created),
    })
    truth = Truth(p_basis=float(np.mean([v[0] for v in per_layer.values()])),
                  p_random=float(np.mean([v[1] for v in per_layer.values()])),
                  per_layer=per_layer,
                  careless_annotators=frozenset((np.flatnonzero(careless) + 1).tolist()))
    return frame, truth
