"""Small simulated studies shared by the analysis tests."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.load import validate
from analysis.simulate import CrowdSpec, Truth, simulate


@pytest.fixture(scope="session")
def study() -> tuple[pd.DataFrame, Truth]:
    """A validated 2,200-rating study with a true difference of 0.2 and 10% careless people."""
    raw, truth = simulate(CrowdSpec(seed=5, careless_share=0.1))
    return validate(raw), truth
