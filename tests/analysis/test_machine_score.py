"""Basis against random MIS with the direction bootstrap, and its figure, from a plain table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.machine_score import ALL_LAYERS, compare_mis, describe, mis_figure


def table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for layer, shift in (("blocks.4", 0.0), ("blocks.10", 0.1)):
        for condition, centre, n in (("basis", 0.8, 30), ("random", 0.6, 20)):
            parts.append(pd.DataFrame({
                "layer": layer, "condition": condition,
                "mis": np.clip(rng.normal(centre + shift, 0.08, n), 0, 1)}))
    return pd.concat(parts, ignore_index=True)


def test_means_intervals_and_layers() -> None:
    frame = table()
    overall, first, second = compare_mis(frame, n_boot=2000, seed=1)
    assert (overall.layer, first.layer, second.layer) == (ALL_LAYERS, "blocks.10", "blocks.4")
    for found, rows in ((overall, frame), (first, frame[frame["layer"] == "blocks.10"])):
        basis = rows.loc[rows["condition"] == "basis", "mis"]
        random = rows.loc[rows["condition"] == "random", "mis"]
        assert found.basis.mean == pytest.approx(basis.mean())
        assert found.random.mean == pytest.approx(random.mean())
        assert (found.basis.n, found.random.n) == (len(basis), len(random))
        assert found.difference == pytest.approx(basis.mean() - random.mean())
        lo, hi = found.ci
        assert lo is not None and hi is not None and lo < found.difference < hi
        # a percentile interval of a mean of n directions: about ± 1.96 SD / √n
        half = 1.96 * np.hypot(basis.std() / np.sqrt(len(basis)),
                               random.std() / np.sqrt(len(random)))
        assert (hi - lo) / 2 == pytest.approx(half, rel=0.2)
    assert compare_mis(frame, n_boot=500, seed=1) != compare_mis(frame, n_boot=500, seed=2)
    assert compare_mis(frame, n_boot=500, seed=1) == compare_mis(frame, n_boot=500, seed=1)


def test_one_layer_is_reported_once_and_a_missing_condition_has_no_difference() -> None:
    frame = table()
    one = frame[frame["layer"] == "blocks.4"]
    [found] = compare_mis(one, n_boot=200)
    assert found.layer == ALL_LAYERS and found.difference is not None
    [basis_only] = compare_mis(one[one["condition"] == "basis"], n_boot=200)
    assert basis_only.random.mean is None and basis_only.difference is None
    assert basis_only.ci == (None, None)
    line = describe([basis_only])[0]
    assert "random MIS n/a (95% CI no interval, 0 directions)" in line
    assert line.endswith("basis − random n/a (95% CI no interval)")


def test_bad_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        compare_mis(pd.DataFrame({"layer": ["a"], "mis": [0.5]}))
    with pytest.raises(ValueError, match="within"):
        compare_mis(pd.DataFrame({"layer": ["a"], "condition": ["basis"], "mis": [1.5]}))
    with pytest.raises(ValueError, match="no basis or random"):
        compare_mis(pd.DataFrame({"layer": ["a"], "condition": ["catch_positive"],
                                  "mis": [0.5]}))


def test_the_figure_is_a_png(tmp_path: Path) -> None:
    frame = table()
    path = mis_figure(frame, compare_mis(frame, n_boot=200), tmp_path / "mis.png", title="t")
    assert path.read_bytes().startswith(b"\x89PNG")
