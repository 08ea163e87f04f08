"""The statistics are right on data with a known truth (small versions of bench/analysis.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analysis.estimate import Options, estimate
from analysis.exclusions import ExclusionRule, apply_exclusions, find_exclusions
from analysis.load import validate
from analysis.power import power
from analysis.simulate import CrowdSpec, simulate

SMALL = CrowdSpec(n_annotators=30, n_stimuli=120, ratings_per_item=5, p_basis=0.55,
                  p_random=0.4, seed=21)


def test_interval_covers_the_true_difference() -> None:
    found = power(SMALL, n_studies=50, options=Options(n_boot=400, n_perm=0))  # interval only
    # 95% nominal; with 50 studies the simulation error alone is about ±6 points
    assert 0.83 <= found["interval_covers_truth"] <= 1.0


def test_null_rarely_claims_basis_more_often() -> None:
    null = replace(SMALL, p_basis=0.4, seed=22)
    found = power(null, n_studies=50, options=Options(n_boot=300, n_perm=200))
    assert found["basis_more_often"] <= 0.1


def test_power_grows_with_the_study() -> None:
    options = Options(n_boot=200, n_perm=200)
    small = power(replace(SMALL, n_stimuli=40), n_studies=20, options=options)
    large = power(replace(SMALL, n_stimuli=400), n_studies=20, options=options)
    assert large["basis_more_often"] > small["basis_more_often"]
    assert large["basis_more_often"] >= 0.9


def test_careless_annotators_are_excluded_and_the_estimate_recovers() -> None:
    spec = replace(SMALL, n_annotators=60, n_stimuli=400, careless_share=0.25, seed=23)
    raw, truth = simulate(spec)
    ratings = validate(raw)
    excluded = find_exclusions(ratings, ExclusionRule())
    caught = set(excluded.annotators)
    assert caught >= truth.careless_annotators
    assert len(caught - truth.careless_annotators) <= 2  # few attentive people lost
    options = Options(n_boot=300, n_perm=200)
    before = estimate(ratings, options).difference["estimate"]
    after = estimate(apply_exclusions(ratings, excluded), options).difference["estimate"]
    assert abs(after - truth.difference) < abs(before - truth.difference)


def test_power_runs_the_analysis_with_its_exclusions() -> None:
    """Each simulated study of `power` drops the annotators the analysis would drop first."""
    spec = replace(SMALL, n_stimuli=80, careless_share=0.3, seed=24)
    options = Options(n_boot=200, n_perm=200)
    found = power(spec, n_studies=2, options=options)
    widths = []
    for i in range(2):
        ratings, _ = simulate(replace(spec, seed=spec.seed * 1_000_003 + i))
        kept = apply_exclusions(ratings, find_exclusions(ratings, ExclusionRule()))
        assert len(kept) < len(ratings)
        lo, hi = estimate(kept, replace(options, seed=options.seed + i)).difference["ci"]
        widths.append(hi - lo)
    assert found["mean_ci_width"] == pytest.approx(sum(widths) / 2, rel=1e-12)
    strict = power(spec, n_studies=2, options=options, rule=ExclusionRule(max_fast_share=1.0))
    assert strict["mean_ci_width"] != found["mean_ci_width"]
