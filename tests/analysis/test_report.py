"""The whole analysis and its report: DESIGN.md keys, no NaN, bad input handled with words."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.estimate import Options, item_table
from analysis.pipeline import AnalysisConfig, analyze
from analysis.report import write_report
from analysis.results import AnalysisResult

FAST = AnalysisConfig(options=Options(n_boot=300, n_perm=300), mixed_max_ratings=600)
TOP_KEYS = {"n_ratings", "n_annotators", "n_stimuli", "excluded_annotators", "exclusion_rule",
            "rates", "difference", "odds_ratio", "mixed_model", "agreement", "per_layer",
            "verdict", "settings"}


@pytest.fixture(scope="module")
def results(study) -> AnalysisResult:  # type: ignore[no-untyped-def]
    """The full analysis of the shared study, run once for the tests that only read it."""
    return analyze(study[0], FAST)


def _no_nan(text: str) -> None:
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


def test_report_has_the_design_keys(study, results, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ratings, truth = study
    written = write_report(results, tmp_path)
    text = written["results"].read_text()
    _no_nan(text)
    data = json.loads(text)
    assert TOP_KEYS <= set(data)
    assert set(data["rates"]) == {"basis", "random", "catch_positive", "catch_negative"}
    assert set(data["rates"]["basis"]) == {"p", "ci", "n"}
    for key in ("difference", "odds_ratio"):
        assert set(data[key]) == {"estimate", "ci", "p_value", "method"}
    assert set(data["mixed_model"]) == {"log_odds", "annotator_sd", "stimulus_sd"}
    assert set(data["verdict"]) == {"random_often_interpretable", "basis_more_often",
                                    "finding_reproduced", "explanation"}
    assert "krippendorff_alpha" in data["agreement"] and data["agreement"]["by_condition"]
    assert [e["layer"] for e in data["per_layer"]] == ["blocks.10", "blocks.4"]
    assert all("p_value_holm" in e["difference"] for e in data["per_layer"])
    assert set(data["excluded_annotators"]) >= truth.careless_annotators
    assert data["verdict"]["finding_reproduced"] is True
    lo, hi = data["difference"]["ci"]
    assert lo <= truth.difference <= hi
    assert "rates" in data["secondary"]["without_exclusions"]
    html = written["report"].read_text()
    assert data["verdict"]["explanation"].split(" (")[0] in html
    assert html.count("data:image/png;base64,") == 4 and "http" not in html.split("<style>")[0]
    assert "statsmodels" in html and "Without exclusions" in html
    assert all((tmp_path / "figures" / f"{n}.png").stat().st_size > 1000
               for n in ("rates", "per_layer", "stimulus_rates", "agreement"))


def test_contact_sheet_when_images_exist(study, results, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from service.store.images import encode_png

    ratings = study[0]
    items = item_table(ratings)
    png = encode_png(np.full((8, 8, 3), 128, dtype=np.uint8)).png
    images = {int(i): png for i in items.loc[items["condition"] == "basis", "item"]}
    written = write_report(results, tmp_path, images)
    assert written["contact_sheet"].exists()


def test_one_condition_absent_is_reported_not_crashed(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ratings = study[0]
    only_basis = ratings[ratings["condition"] != "random"].reset_index(drop=True)
    results = analyze(only_basis, FAST)
    written = write_report(results, tmp_path)
    _no_nan(written["results"].read_text())
    assert results["rates"]["random"] == {"p": None, "ci": [None, None], "n": 0}
    assert results["difference"]["estimate"] is None
    assert results["verdict"]["finding_reproduced"] is False
    assert any("no random ratings" in note for note in results["notes"])
    assert "What could not be estimated" in written["report"].read_text()


def test_single_annotator_says_what_cannot_be_estimated(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ratings = study[0]
    busiest = ratings["annotator_id"].value_counts().index[0]
    alone = ratings[ratings["annotator_id"] == busiest].reset_index(drop=True)
    results = analyze(alone, FAST)
    _no_nan(write_report(results, tmp_path)["results"].read_text())
    assert results["odds_ratio"]["estimate"] is None
    assert results["mixed_model"]["annotator_sd"] is None
    assert results["agreement"]["krippendorff_alpha"] is None
    assert any("alpha is undefined" in note for note in results["notes"])


def test_exclusions_removing_everyone_is_an_error(study) -> None:  # type: ignore[no-untyped-def]
    ratings = study[0].copy()
    ratings["rt_ms"] = pd.array([10] * len(ratings), dtype="Int64")
    with pytest.raises(ValueError, match="removed every annotator"):
        analyze(ratings, FAST)


def test_the_report_prints_the_confidence_level_it_used(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 90% analysis says 90% everywhere: in the verdict, the report's tables and the figure."""
    ratings, _ = study
    config = AnalysisConfig(options=Options(n_boot=200, n_perm=200, level=0.9),
                            mixed_max_ratings=600)
    found = analyze(ratings, config)
    explanation = found["verdict"]["explanation"]
    assert "90% CI" in explanation and "95%" not in explanation
    written = write_report(found, tmp_path)
    html = written["report"].read_text()
    assert "95%" not in html
    assert "<h2>Rates (90% percentile bootstrap over stimuli)</h2>" in html
    assert html.count("<th>90% CI</th>") >= 3


def test_the_report_says_why_attentive_people_were_excluded(tmp_path: Path) -> None:
    """`fvlab simulate`'s default crowd has no careless annotator, yet the catch rule drops
    two: the report names the rule, what each did, and the rate expected by chance."""
    from analysis.load import validate
    from analysis.simulate import simulate
    from tests.analysis.test_exclusions import default_design

    found = analyze(validate(simulate(default_design())[0]), FAST)
    html = write_report(found, tmp_path)["report"].read_text()
    assert "<h3>Who was excluded, and why</h3>" in html
    for annotator in found["excluded_annotators"]:
        assert f"<td>{annotator}</td><td>catch</td><td>2 of 3 catch trials wrong" in html
    assert "fvlab power --careless 0 --studies 1000" in html
    assert "they excluded 0.49% of annotators" in html
    assert "about 0.3 would be excluded by chance alone; 2 were." in html


def test_the_contact_sheet_shows_each_stimulus_once() -> None:
    """With 6 stimuli a condition the most and least rows split them; with many, they hold
    the 6 most and the 6 least; a lone stimulus gets one row."""
    from analysis.figures import sheet_rows

    def items(per_condition: dict[str, int]) -> pd.DataFrame:
        rows = [{"condition": c, "layer": "l", "item": 100 * i + j, "yes": j, "n": n, "conf": 0}
                for i, (c, n) in enumerate(per_condition.items()) for j in range(n)]
        return pd.DataFrame(rows)

    for counts, shown in (({"basis": 6, "random": 6}, [3, 3, 3, 3]),
                          ({"basis": 20, "random": 13}, [6, 6, 6, 6]),
                          ({"basis": 1, "random": 7}, [1, 4, 3])):
        rows = sheet_rows(items(counts))
        assert [len(chosen) for _, chosen in rows] == shown
        ids = [int(i) for _, chosen in rows for i in chosen["item"]]
        assert len(ids) == len(set(ids))
        for title, chosen in rows:
            rates = list(chosen["yes"] / chosen["n"])
            assert rates == sorted(rates, reverse=title.endswith("most"))
