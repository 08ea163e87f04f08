"""The 2-AFC analysis: accuracy against chance per condition × reference, its verdict rules,
query difficulty, whose answers are read, and the exclusions that use the server's clock and
the sessions' times."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.estimate import Options
from analysis.exclusions import ExclusionRule
from analysis.load import validate
from analysis.pipeline import AnalysisConfig, analyze
from analysis.report import write_report
from analysis.results import AnalysisResult
from analysis.simulate_afc import AfcSpec, simulate_afc
from analysis.verdict import verdict_afc

FAST = AnalysisConfig(options=Options(n_boot=300, n_perm=300), mixed_max_ratings=600)
SMALL = AfcSpec(n_annotators=30, n_stimuli=120, ratings_per_item=4, seed=8)


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, AnalysisResult]:
    raw, _ = simulate_afc(replace(SMALL, careless_share=0.15))
    ratings = validate(raw)
    return ratings, analyze(ratings, FAST)


def _rate(p: float | None, lo: float | None, hi: float | None = 0.99) -> dict:  # type: ignore[type-arg]
    return {"p": p, "ci": [lo, hi], "n": 300}


def _per_reference(random_lo: float, none: float | None = 0.5) -> dict:  # type: ignore[type-arg]
    found = {"synthetic": {"basis": _rate(0.8, 0.75), "random": _rate(0.65, random_lo)}}
    if none is not None:
        found["none"] = {"basis": _rate(0.5, 0.45), "random": _rate(none, none - 0.05)}
    return found


DIFF = {"estimate": 0.15, "ci": [0.05, 0.25], "p_value": 0.001, "method": "m"}


def test_afc_verdict_rules_on_constructed_numbers() -> None:
    found = verdict_afc(_per_reference(0.58), DIFF)
    assert found["random_often_interpretable"] and found["basis_more_often"]
    assert found["finding_reproduced"]
    assert "65.0%" in found["explanation"] and "+15.0 points" in found["explanation"]
    # the lower bound must clear chance …
    assert not verdict_afc(_per_reference(0.49), DIFF)["random_often_interpretable"]
    assert not verdict_afc(_per_reference(0.5), DIFF)["random_often_interpretable"]
    # … and random directions' accuracy without references, when that was run
    above_none = verdict_afc(_per_reference(0.58, none=0.6), DIFF)
    assert not above_none["random_often_interpretable"] and not above_none["finding_reproduced"]
    no_floor = verdict_afc(_per_reference(0.52, none=None), DIFF)
    assert no_floor["random_often_interpretable"]
    assert "ran no trials without references" in no_floor["explanation"]
    # basis more often: interval above 0 and p < alpha, both
    assert not verdict_afc(_per_reference(0.58), {**DIFF, "ci": [-0.01, 0.2]})["basis_more_often"]
    assert not verdict_afc(_per_reference(0.58), {**DIFF, "p_value": 0.06})["basis_more_often"]
    assert verdict_afc(_per_reference(0.58), {**DIFF, "p_value": 0.06}, alpha=0.1)[
        "basis_more_often"]
    natural_only = verdict_afc({"natural": {"basis": _rate(0.9, 0.85), "random": _rate(
        0.9, 0.85)}}, {"estimate": None, "ci": [None, None], "p_value": None,
                       "method": "cannot be estimated: no basis ratings"})
    assert not any(natural_only[k] for k in ("random_often_interpretable", "basis_more_often"))


def test_results_hold_accuracy_per_condition_and_reference(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ratings, result = study
    data = json.loads(write_report(result, tmp_path)["results"].read_text())
    assert list(data)[-4:] == ["task", "chance", "per_reference", "annotators"]
    assert data["task"] == "2afc" and data["chance"] == 0.5 and data["annotators"] == "human"
    assert list(data["per_reference"]) == ["synthetic", "natural", "none"]
    kept = ratings[~ratings["annotator_id"].isin(data["excluded_annotators"])]
    for kind, rates in data["per_reference"].items():
        for condition in ("basis", "random"):
            rows = kept[(kept["reference"] == kind) & (kept["condition"] == condition)]
            assert rates[condition]["p"] == pytest.approx(rows["correct"].mean())
            assert rates[condition]["n"] == len(rows)
            lo, hi = rates[condition]["ci"]
            assert lo < rates[condition]["p"] < hi
    assert data["rates"]["basis"] == data["per_reference"]["synthetic"]["basis"]
    assert data["rates"]["catch_positive"]["p"] == pytest.approx(
        kept.loc[kept["condition"] == "catch_positive", "correct"].mean())
    assert set(data["secondary"]["by_reference"]) == {"synthetic", "natural", "none"}
    assert data["secondary"]["by_reference"]["synthetic"]["difference"] == data["difference"]
    assert "min_rate" not in data["settings"]
    assert data["settings"]["exclusions"]["max_catch_fail"] == 0.2
    assert data["verdict"]["finding_reproduced"] is True
    assert not any("catch_negative" in note for note in data["notes"])


def test_the_report_draws_accuracy_against_chance(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = write_report(study[1], tmp_path)
    assert written["accuracy"].stat().st_size > 1000
    html = written["report"].read_text()
    assert "Verdict rules (fixed before the data were seen)" in html
    assert "lower bound of their accuracy with synthetic references is above chance" in html
    assert "Accuracy by condition × reference (chance 0.500)" in html
    assert "positive control" in html and "Query difficulty" in html
    assert "Annotators analysed: people only" in html
    assert "did not run: no sessions export was given" in html
    assert html.count("data:image/png;base64,") == 5


def test_query_difficulty_is_compared_and_sized() -> None:
    options = Options(n_boot=300, n_perm=300)
    config = replace(FAST, options=options)
    same = analyze(validate(simulate_afc(SMALL)[0]), config).secondary.query_difficulty
    harder = analyze(validate(simulate_afc(replace(SMALL, gap_random=2.0))[0]),
                     config).secondary.query_difficulty
    assert same is not None and harder is not None
    lo, hi = same.difference.ci
    assert lo < 0 < hi and same.difference.p_value > 0.05
    assert abs(same.standardized_difference) < 0.4
    assert harder.difference.ci[0] > 0 and harder.difference.p_value < 0.01
    assert harder.by_condition["random"].mean == pytest.approx(2.0, abs=0.15)
    assert harder.by_condition["basis"].n_directions == 60
    assert harder.standardized_difference > 1.5  # gaps 3 vs 2, SD 0.5 over directions


def _machine_too(ratings: pd.DataFrame, machines: list[int]) -> pd.DataFrame:
    source = np.where(ratings["annotator_id"].isin(machines), "machine", "prolific")
    return validate(ratings.assign(annotator_source=source))


def test_machine_annotators_are_left_out_unless_asked(study) -> None:  # type: ignore[no-untyped-def]
    ratings = study[0]
    machines = [1, 2, 3, 4, 5, 6]
    both = _machine_too(ratings, machines)
    everyone = ratings["annotator_id"].nunique()
    people = analyze(both, FAST)
    assert people.annotators == "human"
    assert people.n_annotators + len(people.excluded_annotators) == everyone - len(machines)
    machine = analyze(both, replace(FAST, annotators="machine"))
    assert machine.n_annotators + len(machine.excluded_annotators) == len(machines)
    assert machine.to_dict()["annotators"] == "machine"
    together = analyze(both, replace(FAST, annotators="all"))
    assert together.n_annotators + len(together.excluded_annotators) == everyone
    with pytest.raises(ValueError, match="no human annotators' answers.*--machine or --all"):
        analyze(_machine_too(ratings, list(ratings["annotator_id"].unique())), FAST)
    with pytest.raises(ValueError, match="no machine annotators' answers"):
        analyze(ratings, replace(FAST, annotators="machine"))


def test_time_rules_never_judge_the_machine(study) -> None:  # type: ignore[no-untyped-def]
    """Machine sessions take no time and skip the instructions; only people are timed."""
    ratings, result = study
    calm = [int(a) for a in ratings["annotator_id"].unique()
            if a not in result.excluded_annotators]
    machines, person = calm[:4], calm[4]
    both = _machine_too(ratings, machines)
    instant = dict.fromkeys([*machines, person], 0.0)
    sessions = _sessions(both, instant, instant)
    for which in ("machine", "all"):
        found = analyze(both, replace(FAST, annotators=which), sessions=sessions)
        assert not set(machines) & set(found.excluded_annotators), which
        assert found.n_annotators >= len(machines)
    everyone = analyze(both, replace(FAST, annotators="all"), sessions=sessions)
    assert everyone.exclusions.broken(person) == ["total_time", "instructions_time"]


def test_too_fast_by_the_servers_clock(study) -> None:  # type: ignore[no-untyped-def]
    """A page that reports a calm rt_ms for instant answers is caught by server_rt_ms."""
    ratings, result = study
    liar = next(a for a in ratings["annotator_id"].unique()
                if a not in result.excluded_annotators)
    mine = (ratings["annotator_id"] == liar).to_numpy(dtype=bool)
    lying = ratings.assign(rt_ms=np.where(mine, 3000, ratings["rt_ms"]),
                           server_rt_ms=np.where(mine, 120, ratings["server_rt_ms"]))
    found = analyze(validate(lying), FAST)
    assert liar in found.excluded_annotators
    assert "fast" in found.exclusions.broken(int(liar))
    assert "by the page's or the server's clock" in found.exclusion_rule
    unseen = analyze(validate(lying.assign(server_rt_ms=pd.NA)), FAST)
    assert liar not in unseen.excluded_annotators


def _sessions(ratings: pd.DataFrame, total: dict[int, float],
              instructions: dict[int, float]) -> pd.DataFrame:
    ids = sorted(int(a) for a in ratings["annotator_id"].unique())
    return pd.DataFrame({
        "session_id": ids, "annotator_id": ids,
        "total_seconds": [total.get(a, 900.0) for a in ids],
        "instructions_seconds": [instructions.get(a, 60.0) for a in ids],
    })


def test_time_rules_run_only_with_the_sessions_export(study) -> None:  # type: ignore[no-untyped-def]
    ratings, result = study
    calm = [a for a in ratings["annotator_id"].unique() if a not in result.excluded_annotators]
    short, long, hasty, unknown = (int(a) for a in calm[:4])
    sessions = _sessions(ratings, {short: 100.0, long: 3000.0, unknown: float("nan")},
                         {hasty: 5.0})
    found = analyze(ratings, FAST, sessions=sessions)
    assert {short, long, hasty} <= set(found.excluded_annotators)
    assert unknown not in found.excluded_annotators  # an unfinished session is not judged
    assert found.exclusions.broken(short) == ["total_time"]
    assert found.exclusions.why(short) == "a session of 100 s (less than 135 s)"
    assert found.exclusions.why(long) == "a session of 3000 s (more than 2500 s)"
    assert found.exclusions.why(hasty) == "5 s on the instructions (less than 15 s)"
    counts = found.secondary.exclusion_counts
    assert counts["total_time"] == 2 and counts["instructions_time"] == 1
    assert "had a session shorter than 135 s or longer than 2500 s" in found.exclusion_rule
    assert "did not run" not in found.exclusion_rule
    assert found.secondary.without_exclusions is not None
    assert not {short, long, hasty} & set(result.excluded_annotators)
    with pytest.raises(ValueError, match="holds none of the ratings' sessions"):
        analyze(ratings, FAST, sessions=sessions.assign(session_id=sessions["session_id"] + 999))


def test_the_2afc_rule_set_is_imis() -> None:
    rule = ExclusionRule.default("2afc")
    assert (rule.max_catch_fail, rule.min_total_seconds, rule.max_total_seconds,
            rule.min_instructions_seconds) == (0.2, 135, 2500, 15)
    assert rule.rules() == ("catch", "fast")
    assert rule.rules(with_sessions=True) == ("catch", "fast", "total_time", "instructions_time")
    assert ExclusionRule.default("rating") == ExclusionRule()
    assert set(ExclusionRule().as_dict()) == {"max_catch_fail", "min_catch_trials", "min_rt_ms",
                                               "max_fast_share", "min_ratings_for_same"}
