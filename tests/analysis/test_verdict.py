"""The verdict follows its declared rules."""

from __future__ import annotations

from analysis.verdict import verdict


def _rates(random_ci: list[float | None], noise: float | None = 0.05) -> dict:  # type: ignore[type-arg]
    rates = {"basis": {"p": 0.6, "ci": [0.55, 0.65], "n": 500},
             "random": {"p": 0.4, "ci": random_ci, "n": 500}}
    if noise is not None:
        rates["catch_negative"] = {"p": noise, "ci": [0.0, 0.1], "n": 50}
    return rates


DIFF = {"estimate": 0.2, "ci": [0.1, 0.3], "p_value": 0.001, "method": "m"}


def test_reproduced() -> None:
    found = verdict(_rates([0.35, 0.45]), DIFF)
    assert found["random_often_interpretable"] and found["basis_more_often"]
    assert found["finding_reproduced"]
    assert "40.0%" in found["explanation"] and "+20.0 points" in found["explanation"]


def test_random_bound_must_beat_noise_and_floor() -> None:
    assert not verdict(_rates([0.15, 0.45]), DIFF)["random_often_interpretable"]  # floor 0.2
    assert not verdict(_rates([0.3, 0.45], noise=0.32), DIFF)["random_often_interpretable"]
    assert verdict(_rates([0.3, 0.45], noise=0.32), DIFF, min_rate=0.1)[
        "random_often_interpretable"] is False
    without_catch = verdict(_rates([0.3, 0.45], noise=None), DIFF)
    assert without_catch["random_often_interpretable"]
    assert "no negative catch items" in without_catch["explanation"]


def test_difference_needs_interval_and_permutation() -> None:
    assert not verdict(_rates([0.35, 0.45]), {**DIFF, "ci": [-0.01, 0.3]})["basis_more_often"]
    assert not verdict(_rates([0.35, 0.45]), {**DIFF, "p_value": 0.06})["basis_more_often"]
    assert not verdict(_rates([0.35, 0.45]), {**DIFF, "estimate": -0.2, "ci": [-0.3, -0.1]})[
        "basis_more_often"]


def test_missing_pieces_give_false_with_a_reason() -> None:
    found = verdict(_rates([None, None]), {"estimate": None, "ci": [None, None],
                                           "p_value": None,
                                           "method": "cannot be estimated: no basis ratings"})
    assert found == {**found, "random_often_interpretable": False, "basis_more_often": False,
                     "finding_reproduced": False}
    assert "no basis ratings" in found["explanation"]
