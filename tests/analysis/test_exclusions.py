"""The exclusion rules say who they excluded and why, and their false-positive rate is known."""

from __future__ import annotations

import math
from dataclasses import replace

from analysis.exclusions import (
    RULES,
    SIMULATED_FALSE_POSITIVES,
    SIMULATED_FALSE_POSITIVES_AFC,
    ExclusionRule,
    find_exclusions,
)
from analysis.load import validate
from analysis.power import attentive_exclusion_rates, power
from analysis.simulate import CrowdSpec, simulate
from analysis.simulate_afc import AfcSpec
from service.cli.analysis import _spec
from service.cli.analysis import simulate as simulate_command


def default_design(task: str = "rating") -> CrowdSpec | AfcSpec:
    """The crowd `fvlab simulate --task TASK` draws with every other option at its default."""
    params = simulate_command.make_context("simulate", ["-o", "unused", "--task", task]).params
    return _spec(**{name: value for name, value in params.items() if name != "output"})


def test_the_quoted_false_positive_rate_is_what_the_simulator_measures() -> None:
    """SIMULATED_FALSE_POSITIVES (quoted in every report) against 300 fresh default crowds:
    each share within four binomial standard errors of 18,000 annotators."""
    spec = default_design()
    assert spec.careless_share == 0
    measured = attentive_exclusion_rates(replace(spec, seed=7), 300)
    n = 300 * spec.n_annotators
    for rule in (*RULES, "total"):
        quoted = SIMULATED_FALSE_POSITIVES[rule]
        error = math.sqrt(max(quoted, 1 / n) * (1 - quoted) / n)
        assert abs(measured[rule] - quoted) <= 4 * error, (rule, measured[rule], quoted)


def test_the_quoted_2afc_false_positive_rate_is_what_the_simulator_measures() -> None:
    """SIMULATED_FALSE_POSITIVES_AFC (quoted in 2-AFC reports) against 100 fresh default 2-AFC
    crowds: within four binomial standard errors of 6,000 annotators."""
    spec = default_design("2afc")
    assert isinstance(spec, AfcSpec) and spec.careless_share == 0
    measured = attentive_exclusion_rates(replace(spec, seed=9), 100)
    n = 100 * spec.n_annotators
    assert set(measured) == set(SIMULATED_FALSE_POSITIVES_AFC) == {"catch", "fast", "total"}
    for rule, quoted in SIMULATED_FALSE_POSITIVES_AFC.items():
        error = math.sqrt(max(quoted, 1 / n) * (1 - quoted) / n)
        assert abs(measured[rule] - quoted) <= 4 * error, (rule, measured[rule], quoted)


def test_power_reports_how_often_attentive_people_are_excluded() -> None:
    spec = CrowdSpec(n_annotators=30, n_stimuli=120, careless_share=0.3, seed=3)
    found = power(spec, n_studies=3)
    assert set(found.attentive_excluded) == {*RULES, "total"}
    assert found.attentive_excluded == attentive_exclusion_rates(spec, 3)
    assert 0 <= found.attentive_excluded["total"] < 0.1  # careless ones are not counted


def test_each_exclusion_says_which_rule_and_what_the_annotator_did() -> None:
    ratings = validate(simulate(default_design())[0])  # the README's crowd: careless 0
    excluded = find_exclusions(ratings, ExclusionRule())
    assert excluded.annotators  # two attentive people fail 2 of their 3 catch trials
    for annotator in excluded.annotators:
        assert excluded.broken(annotator) == ["catch"]
        assert excluded.why(annotator).endswith("catch trials wrong (more than 40%)")
    kept = next(a for a in excluded.reasons.index if a not in excluded.annotators)
    assert excluded.broken(int(kept)) == [] and excluded.why(int(kept)) == ""
