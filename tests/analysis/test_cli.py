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


def test_analyze_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("rating_id,condition\n1,basis\n")
    result = runner.invoke(fvlab, ["analyze", "--ratings", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "missing column(s)" in result.output
    assert not (tmp_path / "o").exists()
    both = runner.invoke(fvlab, ["analyze", "--ratings", str(bad), "--study", "1", "-o", "x"])
    assert both.exit_code != 0 and "exactly one of" in both.output


@pytest.mark.parametrize("args", [["--ratings-per-item", "50", "--annotators", "10"]])
def test_simulate_refuses_impossible_designs(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(fvlab, ["simulate", "-o", str(tmp_path / "r.csv"), *args])
    assert result.exit_code != 0 and "cannot exceed the number of annotators" in result.output


def test_power(tmp_path: Path) -> None:
    result = CliRunner().invoke(fvlab, ["power", "--studies", "5", "--stimuli", "100",
                                        "--annotators", "20", "--bootstrap", "200",
                                        "--permutations", "200"])
    assert result.exit_code == 0, result.output
    assert "power basis_more_often:" in result.output


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
