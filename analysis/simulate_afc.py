"""Synthetic 2-AFC studies with a known truth, in the ratings export format.

A 2-AFC item is a direction shown with one reference kind (`synthetic`, `natural` or `none`);
each is answered by k distinct annotators. Whether an answer is correct is drawn from a logistic
model: logit P(correct) = intercept(condition, reference) + annotator skill + direction ease,
both normal, the direction's ease shared by its reference kinds (a direction whose queries are
easy to tell apart is easy however it is shown). The intercepts are solved so that the marginal
accuracies equal the spec's, so the truth an interval should cover is exactly
`p_basis - p_random` (synthetic references). Catch trials are answered right with
`catch_accuracy`; careless annotators answer at random and fast. Each stimulus row carries the
standardized activation gap of its query pair, drawn around `gap_basis` or `gap_random`, so the
query-difficulty check can be tested both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from analysis.simulate import assign, ids, intercept_for, iso_times, marginal_rate, session_order
from analysis.tasks import AFC, REFERENCES
from service.studies.ratings_file import Condition

QUESTION = "Which of the two centre images belongs with the images on the right?"
CHECK_ITEM_ID = 1  # every 2-AFC catch trial names one catch item, as the export does
SOURCE = "prolific"


@dataclass(frozen=True)
class AfcSpec:
    """A simulated 2-AFC study's design and true accuracies (logit scale for the SDs).

    `n_stimuli` counts directions (basis + random; a 2-AFC trial's stimulus names its
    direction), split evenly over layers and conditions; each is shown with every kind in
    `references`, and `ratings_per_item` answers are drawn per direction and reference kind.
    """

    n_annotators: int = 60
    n_stimuli: int = 400
    ratings_per_item: int = 5
    layers: tuple[str, ...] = ("blocks.4", "blocks.10")
    references: tuple[str, ...] = REFERENCES
    p_basis: float = 0.8
    p_random: float = 0.7
    p_natural: float = 0.9
    p_none: float = 0.5
    annotator_sd: float = 0.8
    stimulus_sd: float = 1.0
    gap_basis: float = 3.0
    gap_random: float = 3.0
    gap_sd: float = 0.5
    catch_every: int = 10
    catch_accuracy: float = 0.95
    careless_share: float = 0.0
    seed: int = 0

    def check(self) -> None:
        """Refuse designs the simulator cannot honour, with the reason."""
        for name in ("p_basis", "p_random", "p_natural", "p_none", "catch_accuracy"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie strictly between 0 and 1")
        if self.n_annotators < 1 or self.ratings_per_item < 1:
            raise ValueError("need at least one annotator and one rating per item")
        if self.ratings_per_item > self.n_annotators:
            raise ValueError("ratings per item cannot exceed the number of annotators "
                             "(each item is rated by distinct annotators)")
        if not self.layers or self.n_stimuli < 2 * len(self.layers):
            raise ValueError("need at least one stimulus per layer and condition")
        if not self.references or not set(self.references) <= set(REFERENCES) or len(
                set(self.references)) < len(self.references):
            raise ValueError(f"references must be distinct kinds of {', '.join(REFERENCES)}")
        if not 0 <= self.careless_share <= 1:
            raise ValueError("careless_share must be in 0..1")

    def accuracy(self, condition: str, reference: str) -> float:
        """The true marginal accuracy of one cell condition × reference."""
        if reference == "synthetic":
            return self.p_basis if condition == Condition.BASIS else self.p_random
        return self.p_natural if reference == "natural" else self.p_none


@dataclass(frozen=True)
class AfcTruth:
    """What the analysis should recover: accuracies per (condition, reference)."""

    accuracy: dict[tuple[str, str], float]
    careless_annotators: frozenset[int] = field(default_factory=frozenset)

    @property
    def difference(self) -> float:
        """Basis − random with synthetic references: the primary comparison."""
        return (self.accuracy[(Condition.BASIS, "synthetic")]
                - self.accuracy[(Condition.RANDOM, "synthetic")])


def simulate_afc(spec: AfcSpec) -> tuple[pd.DataFrame, AfcTruth]:
    """Draw one 2-AFC study; returns its rows (export format with the 2-AFC columns) and truth.

    Pass the rows through `analysis.load.validate` before analysing them, as for a file.
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    k, n_ann, n_stim = spec.ratings_per_item, spec.n_annotators, spec.n_stimuli
    conditions = (Condition.BASIS.value, Condition.RANDOM.value)
    total_sd = float(np.hypot(spec.annotator_sd, spec.stimulus_sd))
    truth = {(c, r): spec.accuracy(c, r) for c in conditions for r in spec.references}
    intercepts = np.array([[intercept_for(truth[(c, r)], total_sd) for r in spec.references]
                           for c in conditions])

    layer_of = np.arange(n_stim) % len(spec.layers)
    cond_of = (np.arange(n_stim) // len(spec.layers)) % 2  # 0 basis, 1 random
    ease = rng.normal(0.0, spec.stimulus_sd, size=n_stim)
    skill = rng.normal(0.0, spec.annotator_sd, size=n_ann)
    careless = rng.random(n_ann) < spec.careless_share
    centre = np.where(cond_of == 0, spec.gap_basis, spec.gap_random)
    direction_gap = np.maximum(rng.normal(centre, spec.gap_sd), 0.1)

    n_items = n_stim * len(spec.references)
    annot = assign(rng, n_items, k, n_ann).ravel()
    item = np.repeat(np.arange(n_items), k)
    stim, ref = item // len(spec.references), item % len(spec.references)
    p_stim = expit(intercepts[cond_of[stim], ref] + ease[stim] + skill[annot])
    n_catch = stim.size // spec.catch_every if spec.catch_every > 0 else 0
    annotator = np.concatenate([annot, rng.integers(0, n_ann, size=n_catch)])
    prob = np.where(careless[annotator], 0.5,
                    np.concatenate([p_stim, np.full(n_catch, spec.catch_accuracy)]))
    n_rows, n_stim_rows = prob.size, stim.size
    correct = rng.random(n_rows) < prob
    max_at = rng.integers(0, 2, size=n_rows)  # which centre position shows the max query
    rt = np.where(careless[annotator], rng.lognormal(np.log(350), 0.3, n_rows),
                  rng.lognormal(np.log(4000), 0.5, n_rows)).round().astype(np.int64)
    server_rt = rt + rng.lognormal(np.log(150), 0.5, n_rows).round().astype(np.int64)
    confidence = np.clip(np.rint(1 + 2 * np.abs(2 * prob - 1) + rng.normal(0, 0.6, n_rows)),
                         1, 3)
    gap = np.maximum(direction_gap[stim] + rng.normal(0, 0.2, n_stim_rows), 0.05)
    position, created = session_order(rng, annotator, n_ann)

    is_stim = np.arange(n_rows) < n_stim_rows
    stim_ix = np.concatenate([stim, np.zeros(n_catch, dtype=np.int64)])
    condition = np.where(is_stim, np.array(conditions, dtype=object)[cond_of[stim_ix]],
                         Condition.CATCH_POSITIVE.value)
    reference = np.array(spec.references, dtype=object)[
        np.concatenate([ref, np.zeros(n_catch, dtype=np.int64)])]
    channel = rng.permutation(10_000)[:n_stim]

    def stimulus_only(values: object) -> pd.Series:
        """Text on stimulus rows, empty on catch rows (as the export leaves them)."""
        return pd.Series(values, index=range(n_rows), dtype="string").where(is_stim)

    frame = pd.DataFrame({
        "rating_id": np.arange(1, n_rows + 1),
        "study_id": 1,
        "session_id": annotator + 1,
        "annotator_id": annotator + 1,
        "trial_position": position,
        "stimulus_id": ids(stim_ix + 1, is_stim),
        "catch_item_id": ids(np.full(n_rows, CHECK_ITEM_ID), ~is_stim),
        "direction_id": ids(stim_ix + 1, is_stim),
        "job_id": ids(np.ones(n_rows, dtype=np.int64), is_stim),
        "model": stimulus_only("simulated"),
        "layer": stimulus_only(np.array(spec.layers, dtype=object)[layer_of[stim_ix]]),
        "condition": pd.array(condition, dtype="string"),
        "channel": ids(channel[stim_ix], is_stim & (condition == Condition.BASIS.value)),
        "interpretable": pd.array([pd.NA] * n_rows, dtype="Int64"),
        "confidence": confidence.astype(np.int64),
        "label": pd.array([pd.NA] * n_rows, dtype="string"),
        "rt_ms": rt,
        "created_at": iso_times(created),
        "task": AFC,
        "reference": stimulus_only(reference),
        "correct": correct.astype(np.int64),
        "choice": np.where(correct, max_at, 1 - max_at),
        "annotator_source": SOURCE,
        "question": QUESTION,
        "query_gap": pd.array(np.concatenate([gap, np.full(n_catch, np.nan)]),
                              dtype="Float64"),  # NaN → empty: catch rows have no gap
        "server_rt_ms": server_rt,
    })
    exact = {key: marginal_rate(intercepts[conditions.index(key[0]),
                                           spec.references.index(key[1])], total_sd)
             for key in truth}
    return frame, AfcTruth(accuracy=exact,
                           careless_annotators=frozenset((np.flatnonzero(careless) + 1).tolist()))
