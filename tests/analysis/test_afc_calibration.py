"""The 2-AFC statistics are right on simulated studies with a known truth (bench/analysis.py
--task 2afc runs the same with more resamples and records the numbers)."""

from __future__ import annotations

from dataclasses import replace

from analysis.estimate import Options
from analysis.power import design_for, power
from analysis.simulate_afc import AfcSpec

# small studies (synthetic references only: the other kinds never enter the primary interval)
SMALL = AfcSpec(n_annotators=30, n_stimuli=80, ratings_per_item=5, references=("synthetic",),
                p_basis=0.8, p_random=0.7, seed=41)
N_STUDIES = 200


def test_the_accuracy_difference_interval_covers_the_truth() -> None:
    found = power(SMALL, n_studies=N_STUDIES, options=Options(n_boot=200, n_perm=0))
    # 95% nominal; 200 studies give a simulation error of about ±3 points
    assert 0.92 <= found["interval_covers_truth"] <= 0.98, found["interval_covers_truth"]


def test_no_true_difference_is_rarely_claimed() -> None:
    null = replace(SMALL, p_basis=0.7, seed=42)
    found = power(null, n_studies=N_STUDIES, options=Options(n_boot=200, n_perm=200))
    assert found["basis_more_often"] <= 0.06, found["basis_more_often"]
    assert found["random_often_interpretable"] >= 0.9  # 70% is well above chance


def test_random_at_chance_is_not_called_interpretable() -> None:
    chance = replace(SMALL, p_random=0.5, references=("synthetic", "none"), seed=43)
    found = power(chance, n_studies=40, options=Options(n_boot=200, n_perm=200))
    assert found["random_often_interpretable"] <= 0.1
    assert found["finding_reproduced"] <= 0.1


def test_the_design_search_finds_the_smallest_design_that_reaches_the_target() -> None:
    spec = replace(SMALL, n_stimuli=40, n_annotators=20, p_random=0.65, seed=44)
    tried: list[tuple[int, int, float]] = []
    chosen = design_for(spec, 0.8, n_studies=20, options=Options(n_boot=200, n_perm=200),
                        log=lambda design, found: tried.append(
                            (design.n_stimuli, design.n_annotators, found["basis_more_often"])))
    assert chosen is not None
    design, found = chosen
    assert found["basis_more_often"] >= 0.8 and design.n_stimuli % 4 == 0
    assert all(p < 0.8 for n, _, p in tried if n < design.n_stimuli)
    assert any(n < design.n_stimuli for n, _, _ in tried)
    # each annotator keeps the given design's load: 40 × 5 / 20 = 10 trials
    assert all(abs(n * 5 / a - 10) < 1 for n, a, _ in tried)
