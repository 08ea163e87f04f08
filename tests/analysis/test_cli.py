"""`fvlab simulate`, `fvlab analyze` and `fvlab power` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import fvlab
from tests.conftest import create_schema


def test_simulate_then_analyze(tmp_path: Path) -> None:
    runner = CliRunner()
    ratings = tmp_path / "r.csv"
    result = runner.invoke(fvlab, ["simulate", "-o", str(ratings), "--stimuli", "200",
                                   "--annotators", "30", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "true basis − random difference +0.200" in result.output
    out = tmp_path / "out"
    result = runner.invoke(fvlab, ["analyze", "--ratings", str(ratings), "-o", str(out),
                                   "--bootstrap", "300", "--permutations", "300"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["verdict"]["finding_reproduced"] is True
    assert data["settings"]["n_boot"] == 300 and data["settings"]["versions"]["numpy"]
    assert (out / "report.html").exists() and (out / "figures" / "rates.png").exists()
    # the simulator writes the older export (no appended columns): still analysed, as rating
    assert "task" not in ratings.read_text().splitlines()[0].split(",")
    assert (data["task"], data["chance"], data["per_reference"], data["annotators"]) == (
        "rating", None, {}, "human")
    assert "task rating; annotators analysed: human" in result.output


def test_analyze_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("rating_id,condition\n1,basis\n")
    result = runner.invoke(fvlab, ["analyze", "--ratings", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "missing column(s)" in result.output
    assert not (tmp_path / "o").exists()
    both = runner.invoke(fvlab, ["analyze", "--ratings", str(bad), "--study", "1", "-o", "x"])
    assert both.exit_code != 0 and "exactly one of" in both.output


@pytest.mark.parametrize(("args", "message"), [
    (["--ratings-per-item", "50", "--annotators", "10"], "cannot exceed the number of annotators"),
    (["--p-none", "0.5"], "--p-natural, --p-none and --reference are for --task 2afc"),
    (["--task", "2afc", "--reference", "none", "--reference", "none"], "must be distinct kinds"),
])
def test_simulate_refuses_impossible_designs(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    result = CliRunner().invoke(fvlab, ["simulate", "-o", str(tmp_path / "r.csv"), *args])
    assert result.exit_code != 0 and message in result.output


def test_simulate_then_analyze_2afc_with_sessions(tmp_path: Path) -> None:
    import pandas as pd

    from service.studies.export import write_frame
    from service.studies.ratings_file import SESSIONS_COLUMNS

    runner = CliRunner()
    ratings = tmp_path / "r.parquet"
    result = runner.invoke(fvlab, ["simulate", "--task", "2afc", "-o", str(ratings),
                                   "--stimuli", "80", "--annotators", "20", "--p-basis", "0.85",
                                   "--p-random", "0.7", "--reference", "synthetic",
                                   "--reference", "none", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "true basis − random difference +0.150" in result.output
    frame = pd.read_parquet(ratings)
    assert set(frame["reference"].dropna()) == {"synthetic", "none"}
    sessions = pd.DataFrame({name: range(1, 21) for name in SESSIONS_COLUMNS}).assign(
        total_seconds=[100.0] + [600.0] * 19, instructions_seconds=30.0)
    sessions_file = write_frame(sessions, tmp_path / "sessions.csv", "csv")
    common = ["--ratings", str(ratings), "--bootstrap", "100", "--permutations", "100"]
    out = tmp_path / "out"
    result = runner.invoke(fvlab, ["analyze", *common, "-o", str(out),
                                   "--sessions", str(sessions_file)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["task"] == "2afc" and data["chance"] == 0.5
    assert list(data["per_reference"]) == ["synthetic", "none"]
    assert 1 in data["excluded_annotators"]
    assert data["secondary"]["exclusion_counts"]["total_time"] == 1
    assert (out / "figures" / "accuracy.png").exists()
    assert "task 2afc; annotators analysed: human" in result.output
    machine = runner.invoke(fvlab, ["analyze", *common, "-o", str(tmp_path / "m"), "--machine"])
    assert machine.exit_code != 0 and "no machine annotators' answers" in machine.output
    both = runner.invoke(fvlab, ["analyze", *common, "-o", str(tmp_path / "b"), "--all",
                                 "--machine"])
    assert both.exit_code != 0 and "at most one of --machine or --all" in both.output
    everyone = runner.invoke(fvlab, ["analyze", *common, "-o", str(tmp_path / "a"), "--all"])
    assert everyone.exit_code == 0, everyone.output
    assert json.loads((tmp_path / "a" / "results.json").read_text())["annotators"] == "all"
    strict = runner.invoke(fvlab, ["analyze", *common, "-o", str(tmp_path / "s"),
                                   "--max-catch-fail", "0.05"])
    assert strict.exit_code == 0, strict.output
    strict_data = json.loads((tmp_path / "s" / "results.json").read_text())
    assert strict_data["settings"]["exclusions"]["max_catch_fail"] == 0.05
    assert "did not run: no sessions export was given" in strict_data["exclusion_rule"]


def test_power(tmp_path: Path) -> None:
    result = CliRunner().invoke(fvlab, ["power", "--studies", "5", "--stimuli", "100",
                                        "--annotators", "20", "--bootstrap", "200",
                                        "--permutations", "200"])
    assert result.exit_code == 0, result.output
    assert "power basis_more_often:" in result.output
    assert "(catch " in result.output and "one-button" in result.output


def test_power_of_a_2afc_design_and_the_search_for_one() -> None:
    common = ["power", "--task", "2afc", "--studies", "5", "--stimuli", "40", "--annotators",
              "20", "--reference", "synthetic", "--bootstrap", "100", "--permutations", "100"]
    result = CliRunner().invoke(fvlab, common)
    assert result.exit_code == 0, result.output
    assert "design: 2afc with synthetic references, 40 stimuli, 20 annotators" in result.output
    assert "true difference +0.100" in result.output and "(catch " in result.output
    search = CliRunner().invoke(fvlab, [*common, "--p-basis", "0.9", "--p-random", "0.6",
                                        "--target-power", "0.8"])
    assert search.exit_code == 0, search.output
    assert "smallest design reaching power 0.80" in search.output
    assert "directions, " in search.output  # each design tried is shown


def test_analyze_a_study_from_the_database(sqlite_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from service.store.db import make_engine
    from tests.service.test_export import _build

    engine = make_engine(sqlite_url)
    create_schema(engine)
    ids = _build(engine)
    monkeypatch.setenv("FVLAB_DATABASE_URL", sqlite_url)
    out = tmp_path / "out"
    result = CliRunner().invoke(fvlab, ["analyze", "--study", str(ids["study"]), "-o", str(out),
                                        "--bootstrap", "100", "--permutations", "100"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["n_ratings"] == 4 and data["verdict"]["finding_reproduced"] is False
    assert data["rates"]["basis"]["ci"] == [None, None]  # one stimulus: no interval
    assert (out / "figures" / "contact_sheet.png").exists()
    missing = CliRunner().invoke(fvlab, ["analyze", "--study", "999", "-o", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "no study with id 999" in missing.output
