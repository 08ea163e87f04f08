"""results.json from the typed results is, byte for byte, the file the dict-based code wrote.

The golden files in tests/analysis/golden/ were written by the analysis as it stood before its
results became dataclasses (with the package versions fixed), for three simulated studies: one
with careless annotators excluded, one clean, one missing negative catch items and a layer's
random directions. Since then they changed only by the four keys appended after `notes`
(`task`, `chance`, `per_reference`, `annotators`, which the 2-AFC task brought), so a rating
study's numbers are exactly what they were. Numbers are compared to 12 significant digits, so
that a last-bit difference of a BLAS or statsmodels build does not fail the test; every key,
its order, every string and the file's layout must match exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.estimate import Options
from analysis.load import validate
from analysis.pipeline import AnalysisConfig, analyze
from analysis.report import write_report
from analysis.simulate import CrowdSpec, simulate

GOLDEN = Path(__file__).parent / "golden"
FIXED_VERSIONS = {"python": "3.x", "numpy": "fixed"}
CASES = {
    "careless": CrowdSpec(n_annotators=30, n_stimuli=80, seed=11, careless_share=0.2),
    "clean": CrowdSpec(n_annotators=24, n_stimuli=60, seed=4, layers=("a", "b", "c"),
                       p_basis=0.7, p_random=0.3),
}
CASES["partial"] = CASES["clean"]
_NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def _partial(frame: pd.DataFrame) -> pd.DataFrame:
    """No negative catch items and no random directions in layer b."""
    drop = (frame["condition"] == "catch_negative") | (
        (frame["layer"] == "b") & (frame["condition"] == "random"))
    return frame.loc[~drop.to_numpy(dtype=bool)].reset_index(drop=True)


def _normalised(text: str) -> str:
    return _NUMBER.sub(lambda m: f"{float(m.group()):.12g}", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_json_is_what_the_dict_based_analysis_wrote(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("analysis.pipeline.versions", lambda: dict(FIXED_VERSIONS))
    raw = simulate(CASES[case])[0]
    ratings = validate(_partial(raw) if case == "partial" else raw)
    result = analyze(ratings, AnalysisConfig(options=Options(n_boot=200, n_perm=200, seed=2)))
    golden = (GOLDEN / f"{case}.json").read_text()
    assert _normalised(result.to_json()) == _normalised(golden)
    written = write_report(result, tmp_path)["results"].read_text()
    assert written == result.to_json()
    assert json.loads(written) == result.to_dict() == result  # a record equals its JSON
