"""2-AFC studies: creation through the service and `fvlab study create --task 2afc`, the one-line
refusals, and what the study covers, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from service.cli import fvlab
from service.store.db import unit_of_work
from service.store.models import CatchItem, Stimulus, Study, StudyStimulus
from service.studies.afc_study import AFC_QUESTION
from service.studies.progress import list_studies, study_progress
from service.studies.study import (
    DEFAULT_QUESTION,
    StudyError,
    StudyRequest,
    create_study,
    get_study,
)
from tests.annotate.afc_support import make_afc_job
from tests.service.test_studies import count, make_job


def _request(job_id: int, **changes: object) -> StudyRequest:
    fields: dict[str, object] = {"job_ids": [job_id], "name": "Pictures", "task": "2afc"}
    fields.update(changes)
    return StudyRequest(**fields)  # type: ignore[arg-type]


def test_a_2afc_study_covers_each_direction_once_by_its_first_max_render(engine: Engine) -> None:
    job = make_afc_job(engine, n_basis=3, n_random=2, references=4, pairs=3)
    study_id = create_study(engine, _request(job.job_id, reference_kinds=["natural", "none"],
                                             ratings_per_item=4))
    study = get_study(engine, study_id)
    assert (study.task, study.reference_kinds, study.question, study.machine_alpha) == (
        "2afc", ["natural", "none"], AFC_QUESTION, None)
    with unit_of_work(engine) as db:
        covered = db.execute(
            select(Stimulus.direction_id, Stimulus.sign, Stimulus.replicate)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id)
        ).all()
        checks = db.scalars(select(CatchItem.source)).all()
    directions = job.directions["basis"] + job.directions["random"]
    assert sorted(covered) == sorted((d, "max", 0) for d in directions)
    assert checks == ["fvlab:2afc-reference-check"]  # no rating catch photos for a 2afc study
    [summary] = list_studies(engine)
    assert (summary.task, summary.stimuli, summary.needed) == ("2afc", 5, 5 * 2 * 4)
    rows = [(c.condition, c.reference, c.items, c.needed)
            for c in study_progress(engine, study_id).conditions]
    assert rows == [("basis", "natural", 3, 12), ("basis", "none", 3, 12),
                    ("random", "natural", 2, 8), ("random", "none", 2, 8)]


def test_defaults_synthetic_and_keeps_a_question_given(engine: Engine) -> None:
    job = make_afc_job(engine, n_basis=1, n_random=1)
    study = get_study(engine, create_study(engine, _request(job.job_id, question="Which one?")))
    assert (study.reference_kinds, study.question) == (["synthetic"], "Which one?")
    rating = get_study(engine, create_study(engine, StudyRequest([job.job_id], "Photos")))
    assert (rating.task, rating.reference_kinds, rating.question) == (
        "rating", None, DEFAULT_QUESTION)


def test_a_rating_study_rates_the_renders_of_plus_v_only(engine: Engine) -> None:
    job = make_afc_job(engine, n_basis=2, n_random=2, references=3)
    study_id = create_study(engine, StudyRequest([job.job_id], "Photos"))
    with unit_of_work(engine) as db:
        signs = db.scalars(select(Stimulus.sign).join(
            StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id)).all()
    assert signs == ["max"] * 12


@pytest.mark.parametrize(("changes", "job_options", "message"), [
    ({"task": "3afc"}, {}, "task must be one of rating, 2afc, got '3afc'"),
    ({"task": "rating", "reference_kinds": ["synthetic"]}, {},
     "reference: reference kinds are for 2afc studies (--task 2afc)"),
    ({"reference_kinds": ["photos"]}, {},
     "reference must be one of synthetic, natural, none, got 'photos'"),
    ({"reference_kinds": ["natural", "natural"]}, {},
     "reference: natural, natural names a kind twice"),
    ({"reference_kinds": ["none"], "catch_every": 5}, {},
     "catch_every: 2-AFC catch trials take their queries from the shown references; add "
     "--reference synthetic or natural, or set it to 0"),
    ({}, {"natural": False},
     "jobs: 4 of 4 directions of job {job} have no query pairs, which this 2-AFC study shows "
     "(score it on an image set: fvlab generate … --image-set NAME)"),
    ({}, {"min_renders": False},
     "jobs: 4 of 4 directions of job {job} have no renders of both signs, which this 2-AFC "
     "study shows (render min and max: fvlab generate … --references K)"),
    ({"reference_kinds": ["natural"]}, {"natural_references": False},
     "jobs: 4 of 4 directions of job {job} have no natural references of both signs, which this "
     "2-AFC study shows (score it on an image set: fvlab generate … --image-set NAME)"),
])
def test_bad_2afc_requests_are_refused_in_one_line(engine: Engine, changes: dict[str, object],
                                                   job_options: dict[str, object],
                                                   message: str) -> None:
    job = make_afc_job(engine, n_basis=2, n_random=2, **job_options)  # type: ignore[arg-type]
    with pytest.raises(StudyError) as refused:
        create_study(engine, _request(job.job_id, **changes))
    assert str(refused.value) == message.format(job=job.job_id)
    assert count(engine, Study) == 0 and count(engine, CatchItem) == 0


def test_a_job_without_exemplars_cannot_make_a_2afc_study(engine: Engine) -> None:
    job_id = make_job(engine, n_basis=2, n_random=1)  # renders of +v only, no image set
    with pytest.raises(StudyError, match="3 of 3 directions .* have no query pairs"):
        create_study(engine, _request(job_id, reference_kinds=["none"], catch_every=0))


def test_cli_creates_and_lists_a_2afc_study(engine: Engine, db_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    job = make_afc_job(engine, n_basis=2, n_random=2)
    runner = CliRunner()
    result = runner.invoke(fvlab, ["study", "create", "--job", str(job.job_id), "--name", "Pics",
                                   "--task", "2afc", "--reference", "synthetic",
                                   "--reference", "natural", "--reference", "none",
                                   "--ratings-per-item", "3"])
    assert result.exit_code == 0, result.output
    study = get_study(engine, 1)
    assert (study.task, study.reference_kinds, study.question) == (
        "2afc", ["synthetic", "natural", "none"], AFC_QUESTION)
    listed = runner.invoke(fvlab, ["study", "list"]).output
    assert re.search(rf"1\s+draft\s+2afc\s+0/36\s+{study.slug}\s+Pics", listed), listed


@pytest.mark.parametrize(("arguments", "message"), [
    (["--reference", "natural"], "Error: reference: reference kinds are for 2afc studies "
                                 "(--task 2afc)"),
    (["--task", "2afc", "--reference", "pictures"], "Invalid value for '--reference'"),
    (["--task", "2afc", "--reference", "none", "--catch-every", "4"],
     "Error: catch_every: 2-AFC catch trials take their queries from the shown references"),
])
def test_cli_refuses_bad_2afc_options(engine: Engine, db_url: str,
                                      monkeypatch: pytest.MonkeyPatch, arguments: list[str],
                                      message: str) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    job = make_afc_job(engine, n_basis=1, n_random=1)
    result = CliRunner().invoke(fvlab, ["study", "create", "--job", str(job.job_id),
                                        "--name", "Pics", *arguments])
    assert result.exit_code != 0 and message in result.output, result.output
    assert count(engine, Study) == 0
