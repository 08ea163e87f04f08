"""Agreement statistics equal the krippendorff package and hand counts."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest

from analysis.agreement import agreement, alpha_from_counts, label_consistency, pair_agreement


def _reliability(ratings: pd.DataFrame) -> np.ndarray:
    """Annotators × stimuli matrix with NaN for missing cells, as the package wants."""
    rows = ratings[ratings["condition"].isin(["basis", "random"])]
    return rows.pivot_table(index="annotator_id", columns="stimulus_id",
                            values="interpretable", aggfunc="first").to_numpy(dtype=float)


def test_alpha_equals_the_krippendorff_package(study) -> None:  # type: ignore[no-untyped-def]
    ratings = study[0]
    found = agreement(ratings)
    expected = krippendorff.alpha(reliability_data=_reliability(ratings),
                                  level_of_measurement="nominal")
    assert found["krippendorff_alpha"] == pytest.approx(expected, abs=1e-10)
    basis = ratings[ratings["condition"] == "basis"]
    assert found["by_condition"]["basis"]["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=_reliability(basis),
                           level_of_measurement="nominal"), abs=1e-10)


def test_hand_counts() -> None:
    # item 1: yes yes no; item 2: no no; item 3: a single rating (not pairable)
    yes, total = np.array([2.0, 0, 1]), np.array([3.0, 2, 1])
    assert pair_agreement(yes[:2], total[:2]) == pytest.approx((1 + 1) / (3 + 1))
    data = np.array([[1, 0, 1], [1, 0, np.nan], [0, np.nan, np.nan]], dtype=float)
    assert alpha_from_counts(yes, total) == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    assert alpha_from_counts(np.array([1.0]), np.array([1.0])) is None  # nothing pairable
    assert alpha_from_counts(np.array([2.0, 3]), np.array([2.0, 3])) is None  # no variation


def test_label_consistency_uses_normalised_tokens() -> None:
    ratings = pd.DataFrame({
        "stimulus_id": [1, 1, 1, 2, 2, 3],
        "label": ["Dog face", "dog, FACE!", "cat", "wheel", "car wheel", "alone"],
    })
    found = label_consistency(ratings)
    # item 1: pairs (1,1)=1, (1,0)=0, (1,0)=0 -> 1/3; item 2: 1/2; item 3 has one label
    assert found["n_items"] == 2
    assert found["mean_overlap"] == pytest.approx((1 / 3 + 1 / 2) / 2)
