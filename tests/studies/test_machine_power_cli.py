"""`fvlab power --from-machine` and `fvlab analyze --machine` on a 2-AFC study whose machine
answers are in the database (written here as the machine annotator stores them), on SQLite
and PostgreSQL."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, update

from service.cli import fvlab
from service.store.db import unit_of_work
from service.store.models import (
    AnnotationSession,
    Annotator,
    Direction,
    Rating,
    Stimulus,
    Study,
    StudyStimulus,
    Trial,
)
from service.store.tokens import new_token
from tests.annotate.afc_support import make_afc_study

ACCURACY = {"basis": 0.9, "random": 0.6}
FAST = ["--studies", "10", "--bootstrap", "100", "--permutations", "100"]


def add_machine_answers(engine: Engine, study_id: int, annotators: int, seed: int = 0) -> None:
    """`annotators` machine annotators, each answering every direction of the study once with
    synthetic references, correct with its condition's `ACCURACY` (no page time, as the
    machine stores its answers)."""
    rng = np.random.default_rng(seed)
    with unit_of_work(engine) as db:
        named = db.execute(
            select(StudyStimulus.stimulus_id, Direction.kind)
            .join(Stimulus, Stimulus.id == StudyStimulus.stimulus_id)
            .join(Direction, Direction.id == Stimulus.direction_id)
            .where(StudyStimulus.study_id == study_id).order_by(StudyStimulus.stimulus_id)
        ).all()
        for a in range(annotators):
            annotator = Annotator(external_id=f"machine-{study_id}-{a}", source="machine")
            db.add(annotator)
            db.flush()
            session = AnnotationSession(study_id=study_id, annotator_id=annotator.id,
                                        token=new_token(), status="completed")
            db.add(session)
            db.flush()
            for position, (stimulus_id, kind) in enumerate(named):
                trial = Trial(session_id=session.id, position=position, kind="stimulus",
                              stimulus_id=stimulus_id, token=new_token(), reference="synthetic",
                              query_task=0, max_position=0)
                db.add(trial)
                db.flush()
                correct = bool(rng.random() < ACCURACY[kind])
                db.add(Rating(trial_id=trial.id, choice=0 if correct else 1, correct=correct,
                              confidence=3, rt_ms=None))


def invoke(db_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    return CliRunner().invoke(fvlab, list(args))


@pytest.fixture
def study(engine: Engine) -> int:
    info = make_afc_study(engine, n_basis=6, n_random=6, references=2, pairs=1, k=2, trials=8,
                          status="draft")
    add_machine_answers(engine, info.id, annotators=6)
    return info.id


def test_power_from_machine_plans_from_the_machine_answers(
        engine: Engine, db_url: str, study: int, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(db_url, monkeypatch, "power", "--from-machine", str(study), *FAST)
    assert result.exit_code == 0, result.output + result.stderr
    out = result.stdout
    assert f"planning from study {study}'s machine answers (6 machine annotators; " \
           "uncalibrated α" in out
    basis = float(re.search(r"basis directions with synthetic references: ([0-9.]+) "
                            r"\(\d+ of 36 answers, 6 directions\)", out)[1])  # type: ignore[index]
    assert abs(basis - 0.9) < 0.2
    needs = re.search(r"the study needs (\d+) directions and (\d+) people \(k=2 answers per "
                      r"direction and reference kind\) for power ≥ 0.80", out)
    assert needs, out
    directions, people = int(needs[1]), int(needs[2])
    assert directions % 2 == 0 and 2 <= directions <= 64 * 12
    assert people == max(2, -(-directions * 2 // 8))  # k = 2 answers, 8 trials each
    assert "design: 2afc with synthetic references" in out
    assert "searching for power ≥ 0.80" in result.stderr


def test_a_calibrated_study_says_so(engine: Engine, db_url: str, study: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with unit_of_work(engine) as db:
        db.execute(update(Study).where(Study.id == study).values(machine_alpha=7.5))
    result = invoke(db_url, monkeypatch, "power", "--from-machine", str(study),
                    "--target-power", "0.6", *FAST)
    assert result.exit_code == 0, result.output + result.stderr
    assert "calibrated α = 7.5" in result.output and "uncalibrated" not in result.output
    assert "for power ≥ 0.60" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--from-machine", "99"], "Error: study 99 does not exist"),
    (["--from-machine", "{study}", "--p-basis", "0.7", "--stimuli", "8"],
     "--stimuli, --p-basis: --from-machine takes these from the study and its machine answers"),
    (["--from-machine", "{study}", "--task", "rating"],
     "--task: --from-machine takes these from the study and its machine answers"),
])
def test_power_from_machine_refusals(engine: Engine, db_url: str, study: int,
                                     monkeypatch: pytest.MonkeyPatch, args: list[str],
                                     message: str) -> None:
    result = invoke(db_url, monkeypatch, "power", *[a.format(study=study) for a in args])
    assert result.exit_code != 0 and message in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error")] == [
        message if message.startswith("Error") else f"Error: {message}"]


def test_a_study_without_machine_answers_names_machine_rate(
        engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    info = make_afc_study(engine, n_basis=2, n_random=2, references=2, pairs=1, status="draft")
    result = invoke(db_url, monkeypatch, "power", "--from-machine", str(info.id))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: study {info.id} has no machine annotator's answers (annotator_source machine): "
        f"let the machine annotator answer it first (fvlab machine rate --study {info.id})")


def test_analyze_machine_notes_whether_alpha_was_calibrated(
        engine: Engine, db_url: str, study: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["analyze", "--study", str(study), "--machine", "--bootstrap", "100",
            "--permutations", "100", "--max-catch-fail", "1", "-o"]
    result = invoke(db_url, monkeypatch, *args, str(tmp_path / "a"))
    assert result.exit_code == 0, result.output + result.stderr
    note = (f"machine annotator: uncalibrated α (study {study}'s machine_alpha is not fitted; "
            f"fvlab machine calibrate --study {study} fits it to people's answers)")
    assert note in result.output
    assert note in json.loads((tmp_path / "a" / "results.json").read_text())["notes"]
    with unit_of_work(engine) as db:
        db.execute(update(Study).where(Study.id == study).values(machine_alpha=12.25))
    again = invoke(db_url, monkeypatch, *args, str(tmp_path / "b"))
    assert again.exit_code == 0, again.output + again.stderr
    calibrated = "machine annotator: calibrated α = 12.25 (fitted to this study's people)"
    assert calibrated in again.output
    assert html.escape(calibrated) in (tmp_path / "b" / "report.html").read_text()
