"""`fvlab machine calibrate`: α and the lapse rate fitted to people's answers, stored, and used by
later machine runs; how well the machine predicts people, as numbers and a figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from analysis.machine_calibration import calibration_report, plot_calibration
from service.cli import fvlab
from service.store.db import unit_of_work
from service.store.models import AnnotationSession, Annotator, Rating, Study, Trial
from service.store.tokens import new_token
from service.studies.errors import StudyError
from service.studies.machine.calibrate import calibrate_study
from service.studies.machine.score import p_correct
from service.studies.machine.shown import TaskEmbedder, study_tasks
from tests.annotate.afc_support import AfcStudyInfo, make_afc_study
from tests.annotate.conftest import make_study
from tests.studies.machine_support import rate, row_counts, tiny_cache

TRUE_SCALE = 2.0  # α = TRUE_SCALE / median |Δ| of the study's tasks
TRUE_LAPSE = 0.1
PEOPLE, TRIALS_EACH = 100, 20  # 2,000 simulated answers
ALPHA_TOLERANCE = 0.25  # |α̂ / α − 1| (the fit's SE at n = 2,000 is near 0.1)
LAPSE_TOLERANCE = 0.08


def afc_study(engine: Engine) -> AfcStudyInfo:
    return make_afc_study(engine, reference_kinds=("synthetic", "natural", "none"), k=3,
                          trials=6, catch_every=3, practice=0, n_basis=5, n_random=5)


def simulate_people(engine: Engine, study_id: int, alpha: float, lapse: float,
                    people: int = PEOPLE, trials_each: int = TRIALS_EACH,
                    seed: int = 0) -> float:
    """People whose answers follow P = λ/2 + (1 − λ)σ(αΔ) on the study's own tasks (`none`
    trials among them, answered at chance); returns the true α."""
    rng = np.random.default_rng(seed)
    with unit_of_work(engine) as db:
        study = db.get_one(Study, study_id)
        ids = [s.id for s in study.stimuli]
        tasks = study_tasks(db, ids, study.reference_kinds or ())
        delta = TaskEmbedder(tiny_cache()).deltas(db, tasks)
        named = {s.direction_id: s.id for s in study.stimuli}
        for person in range(people):
            annotator = Annotator(source="prolific", external_id=f"sim{seed}-{person}")
            db.add(annotator)
            db.flush()
            session = AnnotationSession(study_id=study_id, annotator_id=annotator.id,
                                        token=new_token(), status="completed")
            db.add(session)
            db.flush()
            for position in range(trials_each):
                at = int(rng.integers(len(tasks)))
                task = tasks[at]
                none = rng.random() < 0.1
                p = 0.5 if none else float(p_correct(np.array([delta[at]]), alpha, lapse)[0])
                right = bool(rng.random() < p)
                max_position = int(rng.integers(2))
                trial = Trial(session_id=session.id, position=position, kind="stimulus",
                              stimulus_id=named[task.direction_id],
                              reference="none" if none else task.reference,
                              query_task=int(rng.integers(3)) if none else _pair(tasks, at),
                              max_position=max_position, token=new_token())
                db.add(trial)
                db.flush()
                db.add(Rating(trial_id=trial.id, choice=max_position if right else 1 - max_position,
                              correct=right, confidence=2, rt_ms=1200))
    return alpha


def _pair(tasks: list, at: int) -> int:
    """The query pair of task `at` (tasks list every pair of a direction and kind in order)."""
    task = tasks[at]
    same = [i for i, t in enumerate(tasks)
            if t.direction_id == task.direction_id and t.reference == task.reference]
    return same.index(at)


def true_alpha(engine: Engine, study_id: int) -> float:
    with unit_of_work(engine) as db:
        study = db.get_one(Study, study_id)
        tasks = study_tasks(db, [s.id for s in study.stimuli], study.reference_kinds or ())
        delta = TaskEmbedder(tiny_cache()).deltas(db, tasks)
    return TRUE_SCALE / float(np.median(np.abs(delta)))


def test_calibration_recovers_a_known_alpha_and_later_runs_use_it(engine: Engine) -> None:
    info = afc_study(engine)
    rate(engine, info.id, annotators=2)  # machine answers never enter the fit
    alpha = simulate_people(engine, info.id, true_alpha(engine, info.id), TRUE_LAPSE)
    found = calibrate_study(engine, info.id, tiny_cache())
    assert found.fit.n == len(found.answers.correct) < PEOPLE * TRIALS_EACH  # `none` left out
    assert found.fit.n > 0.85 * PEOPLE * TRIALS_EACH
    assert abs(found.fit.alpha / alpha - 1) < ALPHA_TOLERANCE
    assert abs(found.fit.lapse - TRUE_LAPSE) < LAPSE_TOLERANCE
    with unit_of_work(engine) as db:
        study = db.get_one(Study, info.id)
        assert (study.machine_alpha, study.machine_lapse, study.machine_embedding) == (
            found.fit.alpha, found.fit.lapse, "mean_colour")
    later = rate(engine, info.id, annotators=1)
    assert later.calibrated and (later.alpha, later.lapse) == (found.fit.alpha, found.fit.lapse)
    assert "uncalibrated" not in later.alpha_note
    report = calibration_report(found.p, found.answers.correct, found.answers.stimulus_id,
                                bootstrap=200)
    assert len(report.directions.direction) == 10
    for b in report.bins:
        if b.n >= 200:  # answers follow the fitted model, so each full bin agrees with it
            assert abs(b.observed - b.predicted) < 0.1


def test_a_fitted_alpha_is_not_used_with_another_embedding(engine: Engine) -> None:
    info = afc_study(engine)
    with unit_of_work(engine) as db:
        study = db.get_one(Study, info.id)
        study.machine_alpha, study.machine_lapse, study.machine_embedding = 5.0, 0.0, "dreamsim"
    with pytest.raises(StudyError, match="fitted with the dreamsim embedding, not mean_colour"):
        rate(engine, info.id, annotators=1)
    assert rate(engine, info.id, annotators=1, alpha=5.0).alpha == 5.0


def test_too_few_answers_store_nothing(engine: Engine) -> None:
    info = afc_study(engine)
    simulate_people(engine, info.id, 1.0, 0.0, people=1, trials_each=10)
    with pytest.raises(StudyError, match="calibration needs at least 30"):
        calibrate_study(engine, info.id, tiny_cache())
    with unit_of_work(engine) as db:
        study = db.get_one(Study, info.id)
        assert (study.machine_alpha, study.machine_lapse, study.machine_embedding) == (
            None, None, None)


def test_report_numbers() -> None:
    rng = np.random.default_rng(1)
    direction = np.repeat(np.arange(12), 50)
    p = np.repeat(np.linspace(0.5, 0.95, 12), 50)
    correct = (rng.random(len(p)) < p).astype(float)
    report = calibration_report(p, correct, direction, bootstrap=300, seed=2)
    assert report.correlation is not None and report.correlation > 0.7
    assert report.ci is not None and report.ci[0] < report.correlation < report.ci[1]
    again = calibration_report(p, correct, direction, bootstrap=300, seed=2)
    assert (again.correlation, again.ci) == (report.correlation, report.ci)  # seeded
    assert sum(b.n for b in report.bins) == len(p)
    assert [b.lo for b in report.bins] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    few = calibration_report(p[:100], correct[:100], direction[:100])
    assert few.correlation is None and few.ci is None  # 2 directions: no correlation


def test_report_figure(tmp_path: Path) -> None:
    p = np.array([0.6, 0.7, 0.8, 0.9] * 10)
    report = calibration_report(p, (p > 0.65).astype(float), np.arange(40) % 4, bootstrap=100)
    path = plot_calibration(report, tmp_path / "c.png", "a title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_calibrates(engine: Engine, db_url: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    info = afc_study(engine)
    simulate_people(engine, info.id, true_alpha(engine, info.id), TRUE_LAPSE, people=30)
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    monkeypatch.setattr("service.cli.machine_study.load_embedder",
                        lambda name, weights_dir=None: tiny_cache().embedder)
    result = CliRunner().invoke(fvlab, ["machine", "calibrate", "--study", str(info.id),
                                        "-o", str(tmp_path / "out"), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"study {info.id}: α = ") and ", λ = " in lines[0]
    assert "answers from people (mean_colour); stored" in lines[0]
    assert lines[1].startswith("people's accuracy vs MIS per direction: 10 directions: r = ")
    assert lines[2].startswith("calibration (predicted → observed, answers): ")
    numbers = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert numbers["n"] == int(lines[0].split("n = ")[1].split()[0])
    assert (tmp_path / "out" / "calibration.png").stat().st_size > 1000
    default = CliRunner().invoke(fvlab, ["machine", "calibrate", "--study", str(info.id)])
    assert default.exit_code == 0, default.output
    assert (tmp_path / "var" / "machine" / f"study-{info.id}" / "calibration.png").is_file()


@pytest.mark.parametrize(("case", "message"), [
    ("unknown", "study 9999 does not exist"),
    ("rating", "is a rating study; the machine annotator is calibrated on 2afc studies only"),
    ("few", "answers from people to trials with references; calibration needs at least 30"),
])
def test_cli_refuses_in_one_line(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch,
                                 case: str, message: str) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    monkeypatch.setattr("service.cli.machine_study.load_embedder",
                        lambda name, weights_dir=None: tiny_cache().embedder)
    study_id = {"unknown": 9999, "rating": make_study(engine).id,
                "few": afc_study(engine).id}[case]
    before = row_counts(engine)
    result = CliRunner().invoke(fvlab, ["machine", "calibrate", "--study", str(study_id)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert row_counts(engine) == before
