"""The closed-form clustered GLM equals statsmodels' own fit on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from analysis.glm import fit_two_way, odds_ratio


def _arrays(ratings: pd.DataFrame) -> tuple[np.ndarray, ...]:
    rows = ratings[ratings["condition"].isin(["basis", "random"])]
    return (rows["interpretable"].to_numpy(dtype=float),
            (rows["condition"] == "basis").to_numpy(dtype=bool),
            rows["annotator_id"].to_numpy(dtype=np.int64),
            rows["stimulus_id"].to_numpy(dtype=np.int64))


def test_matches_statsmodels(study) -> None:  # type: ignore[no-untyped-def]
    yes, basis, annot, stim = _arrays(study[0])
    params, cov = fit_two_way(yes, basis, annot, stim)
    reference = sm.GLM(yes, sm.add_constant(basis.astype(float)),
                       family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": np.column_stack([annot, stim])})
    np.testing.assert_allclose(params, reference.params, rtol=1e-8)
    np.testing.assert_allclose(cov, reference.cov_params(), rtol=1e-8)
    found = odds_ratio(yes, basis, annot, stim)
    np.testing.assert_allclose(found["estimate"], np.exp(reference.params[1]), rtol=1e-8)
    np.testing.assert_allclose(found["ci"], np.exp(reference.conf_int()[1]), rtol=1e-8)
    np.testing.assert_allclose(found["p_value"], reference.pvalues[1], rtol=1e-6)


def test_cannot_estimate_is_said_not_nan() -> None:
    yes = np.array([1.0, 0, 1, 0])
    annot = np.array([1, 1, 1, 1])
    stim = np.array([1, 2, 3, 4])
    one_annotator = odds_ratio(yes, np.array([1, 1, 0, 0], bool), annot, stim)
    assert one_annotator["estimate"] is None and "two annotators" in one_annotator["method"]
    only_basis = odds_ratio(yes, np.ones(4, bool), np.arange(4), stim)
    assert only_basis["estimate"] is None and "both" in only_basis["method"]
    separated = odds_ratio(np.array([1.0, 1, 0, 1]), np.array([1, 1, 0, 0], bool),
                           np.arange(4), stim)
    assert separated["estimate"] is None and "infinite" in separated["method"]
