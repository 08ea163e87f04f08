"""Planning from the machine's answers: simulated 2-AFC answers relabelled as the machine's give
back the accuracies and stimulus SD they were drawn with, and a design search that makes sense."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.estimate import Options
from analysis.machine_planning import (
    MachineAccuracy,
    MachinePlan,
    NoMachineAnswers,
    describe,
    direction_sd,
    plan_from_machine,
    study_design,
)
from analysis.power import design_for
from analysis.simulate_afc import AfcSpec, simulate_afc

MACHINE = AfcSpec(n_annotators=8, n_stimuli=400, ratings_per_item=8, layers=("l0", "l1"),
                  references=("synthetic", "none"), p_basis=0.85, p_random=0.7,
                  annotator_sd=0.0, stimulus_sd=1.2, seed=5)


def machine_answers(spec: AfcSpec = MACHINE) -> pd.DataFrame:
    frame, _ = simulate_afc(spec)
    return frame.assign(annotator_source="machine")


def test_the_plan_recovers_the_machine_accuracies_and_spread_and_ignores_people() -> None:
    people, _ = simulate_afc(replace(MACHINE, p_basis=0.6, p_random=0.55, annotator_sd=0.8,
                                     stimulus_sd=0.2, seed=6))
    machine = machine_answers()
    both = pd.concat([people, machine.assign(rating_id=machine["rating_id"] + len(people),
                                             annotator_id=machine["annotator_id"] + 1000)],
                     ignore_index=True)
    plan = plan_from_machine(both)
    assert abs(plan.basis.observed - 0.85) < 0.03 and abs(plan.random.observed - 0.70) < 0.03
    assert abs(plan.stimulus_sd - 1.2) < 0.3
    synthetic = machine[(machine["reference"] == "synthetic")
                        & machine["condition"].isin(["basis", "random"])]
    basis = synthetic[synthetic["condition"] == "basis"]
    assert plan.basis.answers == len(basis) and plan.basis.directions == 200
    assert plan.basis.p == pytest.approx((basis["correct"].sum() + 0.5) / (len(basis) + 1))
    assert plan.layers == ("l0", "l1") and plan.machine_annotators == 8
    lines = describe(plan)
    assert lines[0].startswith(f"machine accuracy, basis directions with synthetic references: "
                               f"{plan.basis.observed:.3f} ({basis['correct'].sum()} of "
                               f"{len(basis)} answers, 200 directions)")
    assert "stimulus SD (logit) between directions" in lines[2]


def test_direction_sd_nets_out_binomial_noise() -> None:
    rng = np.random.default_rng(0)
    n = np.full(300, 6)
    same = rng.binomial(n, 0.7)  # one true accuracy: the observed ones scatter, the SD is ~0
    assert direction_sd(same, n, np.zeros(300, dtype=int)) < 0.3
    ease = rng.normal(0, 2.0, 300)
    spread = rng.binomial(n, 1 / (1 + np.exp(-(1.0 + ease))))
    assert abs(direction_sd(spread, n, np.zeros(300, dtype=int)) - 2.0) < 0.4


def test_the_study_design_comes_from_the_study_and_the_machine() -> None:
    plan = MachinePlan(MachineAccuracy(0.9, 0.9, 100, 21), MachineAccuracy(0.7, 0.7, 100, 19),
                       1.5, ("a", "b"), 3)
    base = AfcSpec(annotator_sd=0.5, p_none=0.52, seed=9)
    spec = study_design(plan, base, ("synthetic", "none"), ratings_per_item=4,
                        trials_per_session=30, catch_every=6)
    assert (spec.n_stimuli, spec.layers, spec.references) == (40, ("a", "b"),
                                                              ("synthetic", "none"))
    assert spec.n_annotators == -(-40 * 2 * 4 // 30)  # 11: each person does 30 trials
    assert (spec.p_basis, spec.p_random, spec.stimulus_sd) == (0.9, 0.7, 1.5)
    assert (spec.annotator_sd, spec.p_none, spec.seed, spec.ratings_per_item) == (0.5, 0.52, 9, 4)
    assert spec.catch_every == 6
    assert study_design(plan, base, ("synthetic",), 4, 30).catch_every == base.catch_every


def test_a_bigger_machine_gap_needs_fewer_directions() -> None:
    found = {}
    for p_random in (0.6, 0.75):
        spec = AfcSpec(n_annotators=8, n_stimuli=120, ratings_per_item=8, layers=("l0",),
                       references=("synthetic",), p_basis=0.9, p_random=p_random,
                       annotator_sd=0.0, stimulus_sd=1.0, seed=2)
        plan = plan_from_machine(machine_answers(spec))
        design = study_design(plan, AfcSpec(seed=0), ("synthetic",), 5, 40)
        chosen = design_for(design, 0.8, n_studies=20, options=Options(n_boot=100, n_perm=100))
        assert chosen is not None
        found[p_random] = chosen
        assert chosen[1]["basis_more_often"] >= 0.8
        assert chosen[0].n_annotators * 40 >= chosen[0].n_stimuli * 5  # everyone's trials fit
    assert 2 <= found[0.6][0].n_stimuli < found[0.75][0].n_stimuli < 2000


def test_refusals_say_what_is_missing() -> None:
    machine = machine_answers()
    with pytest.raises(NoMachineAnswers, match="no machine annotator's answers"):
        plan_from_machine(machine.assign(annotator_source="prolific"))
    natural_only = machine.assign(reference=machine["reference"].where(
        machine["reference"] != "synthetic", "natural"))
    with pytest.raises(NoMachineAnswers, match="with synthetic references"):
        plan_from_machine(natural_only)
    with pytest.raises(ValueError, match="no random direction"):
        plan_from_machine(machine[machine["condition"] != "random"])
    once = machine_answers(replace(MACHINE, ratings_per_item=1, n_annotators=4))
    with pytest.raises(ValueError, match=r"each direction 1 time\(s\).*fvlab machine rate "
                                         r"--annotators N"):
        plan_from_machine(once)
    with pytest.raises(ValueError, match="lack column"):
        plan_from_machine(machine.drop(columns=["reference"]))
