"""The crossed mixed model recovers variance components of a simulated crowd."""

from __future__ import annotations

import numpy as np

from analysis.load import validate
from analysis.mixed import mixed_model
from analysis.simulate import CrowdSpec, simulate


def test_recovers_variance_components_roughly() -> None:
    spec = CrowdSpec(n_annotators=40, n_stimuli=120, ratings_per_item=6, annotator_sd=1.0,
                     stimulus_sd=1.0, seed=8)
    ratings = validate(simulate(spec)[0])
    rows = ratings[ratings["condition"].isin(["basis", "random"])]
    args = (rows["interpretable"].to_numpy(float), (rows["condition"] == "basis").to_numpy(),
            rows["annotator_id"].to_numpy(np.int64), rows["stimulus_id"].to_numpy(np.int64))
    found = mixed_model(*args, seed=1)
    assert 0.6 < found["annotator_sd"] < 1.5
    assert 0.5 < found["stimulus_sd"] < 1.5
    assert found["log_odds"] > 0.3  # basis 0.6 vs random 0.4 is about +1.0 conditionally
    capped = mixed_model(*args, seed=1, max_ratings=300)
    assert 0 < capped["n_ratings_used"] <= 350 and capped["stimulus_sd"] is not None
    assert capped == mixed_model(*args, seed=1, max_ratings=300)  # seeded: same subset, same fit
