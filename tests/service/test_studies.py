"""Study creation, status changes, progress figures and `fvlab study`, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from service.cli import fvlab
from service.store.db import unit_of_work, utcnow
from service.store.images import store
from service.store.models import (
    AnnotationSession,
    Annotator,
    CatchItem,
    Direction,
    Job,
    Rating,
    Stimulus,
    Study,
    StudyStimulus,
    Trial,
)
from service.store.tokens import new_token
from service.studies.progress import contact_sheet, list_studies, stimulus_png, study_progress
from service.studies.study import (
    DEFAULT_QUESTION,
    StudyError,
    StudyRequest,
    annotator_links,
    close_study,
    create_study,
    effective_redirect,
    get_study,
    open_study,
)
from tests.annotate.conftest import stimulus_pixels

_pixels = itertools.count(1)


def make_job(engine: Engine, *, n_basis: int = 3, n_random: int = 3, size: int = 32,
             status: str = "done", layer: str = "blocks.10", rendered: bool = True) -> int:
    """A job with one stored stimulus per direction, written straight with the ORM."""
    with unit_of_work(engine) as db:
        job = Job(name=f"job {layer}", model="efficientnet_lite0", layers=[layer],
                  n_basis=n_basis, n_random=n_random, image_size=size, steps=8, seed=1,
                  status=status)
        db.add(job)
        db.flush()
        for kind, count in (("basis", n_basis), ("random", n_random)):
            for index in range(count):
                direction = Direction(job_id=job.id, layer=layer, kind=kind, index=index,
                                      channel=index * 5 if kind == "basis" else None,
                                      vector=b"\0" * 8, seed=index)
                db.add(direction)
                db.flush()
                if not rendered:
                    continue
                # render-like pictures: uniform noise has one PNG length, which no catch photo has
                image = store(db, stimulus_pixels(next(_pixels), size))
                db.add(Stimulus(direction_id=direction.id, token=new_token(),
                                image_sha256=image.sha256, objective=1.0, render_seconds=0.1))
        return job.id


def count(engine: Engine, model: type) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(select(func.count()).select_from(model)))


def test_create_with_defaults_makes_a_draft_with_catch_items(engine: Engine) -> None:
    job_id = make_job(engine)
    study_id = create_study(engine, StudyRequest(job_ids=[job_id], name="Pictures 1"))
    study = get_study(engine, study_id)
    assert study.status == "draft"
    assert study.question == DEFAULT_QUESTION
    assert re.fullmatch(r"[a-z0-9]{12}", study.slug)
    assert re.fullmatch(r"[0-9A-F]{8}", study.completion_code)
    assert (study.ratings_per_item, study.trials_per_session, study.catch_every,
            study.practice_count) == (5, 40, 10, 3)
    assert study.redirect_url is None
    assert effective_redirect(study) == (
        f"https://app.prolific.com/submissions/complete?cc={study.completion_code}")
    assert count(engine, StudyStimulus) == 6
    assert count(engine, CatchItem) == 12  # six positive, six negative, of the stimuli's size
    second = create_study(engine, StudyRequest(job_ids=[job_id], name="Pictures 2"))
    assert get_study(engine, second).slug != study.slug
    assert count(engine, CatchItem) == 12  # made once per size, not per study


def test_create_over_two_jobs_with_every_setting(engine: Engine) -> None:
    jobs = [make_job(engine), make_job(engine, layer="blocks.5", n_basis=2, n_random=1)]
    study_id = create_study(engine, StudyRequest(
        job_ids=jobs, name="Pictures", ratings_per_item=3, trials_per_session=12,
        catch_every=4, practice_count=0, question="Can you name it?", consent_text="I agree.",
        completion_code="ABC-123", redirect_url="https://example.org/done?x=1"))
    study = get_study(engine, study_id)
    assert (study.ratings_per_item, study.trials_per_session, study.catch_every,
            study.practice_count) == (3, 12, 4, 0)
    assert (study.question, study.consent_text, study.completion_code) == (
        "Can you name it?", "I agree.", "ABC-123")
    assert effective_redirect(study) == "https://example.org/done?x=1"
    assert count(engine, StudyStimulus) == 9
    [summary] = list_studies(engine)
    assert (summary.stimuli, summary.needed, summary.ratings) == (9, 27, 0)


BAD_REQUESTS = [
    ({"job_ids": []}, "jobs: choose at least one"),
    ({"job_ids": [999]}, "job 999 does not exist"),
    ({"name": "  "}, "name must not be empty"),
    ({"name": "x" * 201}, "name is 201 characters"),
    ({"name": "Study of blocks.10"}, "name mentions 'blocks.10'"),
    ({"name": "EfficientNet_Lite0 images"}, "name mentions 'efficientnet_lite0'"),
    ({"ratings_per_item": 0}, "ratings_per_item must be between 1 and 1000"),
    ({"trials_per_session": 0}, "trials_per_session must be between"),
    ({"catch_every": -1}, "catch_every must be between 0 and 1000"),
    ({"practice_count": 51}, "practice_count must be between 0 and 50"),
    ({"ratings_per_item": True}, "ratings_per_item must be a whole number"),
    ({"question": ""}, "question must not be empty"),
    ({"question": "q" * 1001}, "question is 1001 characters"),
    ({"consent_text": "c" * 20_001}, "consent_text is 20001 characters"),
    ({"completion_code": "a b"}, "completion_code must be 4–100 letters"),
    ({"redirect_url": "javascript:alert(1)"}, "redirect_url must be an http(s) address"),
    ({"redirect_url": "https://"}, "redirect_url must be an http(s) address"),
]


def test_bad_settings_are_refused_and_write_nothing(engine: Engine,
                                                    subtests: pytest.Subtests) -> None:
    job_id = make_job(engine)
    for change, message in BAD_REQUESTS:
        with subtests.test(msg=message):
            request = replace(StudyRequest(job_ids=[job_id], name="Pictures"), **change)
            with pytest.raises(StudyError, match=re.escape(message)):
                create_study(engine, request)
            assert count(engine, Study) == 0
            assert count(engine, CatchItem) == 0


def test_the_name_check_matches_whole_words_not_substrings(engine: Engine) -> None:
    """A layer called `stem` leaks in "stem cells" but not in "Ecosystem pictures"."""
    job_id = make_job(engine, layer="stem")
    for refused, leaked in (("stem cells", "stem"), ("Stem-cell pictures", "stem"),
                            ("Pictures of efficientnet lite0", "efficientnet_lite0"),
                            ("Job stem", "job stem")):
        with pytest.raises(StudyError, match=re.escape(f"name mentions {leaked!r}")):
            create_study(engine, StudyRequest(job_ids=[job_id], name=refused))
    for allowed in ("Ecosystem pictures", "Systems", "Efficient pictures", "Headstem"):
        create_study(engine, StudyRequest(job_ids=[job_id], name=allowed))
    assert count(engine, Study) == 4


def test_jobs_that_cannot_make_a_study(engine: Engine) -> None:
    running = make_job(engine, status="running")
    empty = make_job(engine, rendered=False)
    small, large = make_job(engine, size=32), make_job(engine, size=48)
    cases = [([running], f"job {running} is running, not done"),
             ([empty], "have no rendered stimuli"),
             ([small, large], "one square size"),
             ([small, small], "lists a job twice")]
    for job_ids, message in cases:
        with pytest.raises(StudyError, match=re.escape(message)):
            create_study(engine, StudyRequest(job_ids=job_ids, name="Pictures"))
    assert count(engine, Study) == 0


def test_open_close_and_reopen(engine: Engine) -> None:
    study_id = create_study(engine, StudyRequest(job_ids=[make_job(engine)], name="Pictures"))
    open_study(engine, study_id)
    assert get_study(engine, study_id).status == "open"
    open_study(engine, study_id)  # already open: nothing to do
    close_study(engine, study_id)
    assert get_study(engine, study_id).status == "closed"
    open_study(engine, study_id)
    assert get_study(engine, study_id).status == "open"
    for change in (open_study, close_study, get_study):
        with pytest.raises(StudyError, match="study 999 does not exist"):
            change(engine, 999)


def test_annotator_links_carry_platform_parameters() -> None:
    links = annotator_links("https://site.example/", "abc")
    assert links["direct"] == links["mturk"] == "https://site.example/study/abc"
    assert links["prolific"] == (
        "https://site.example/study/abc?PROLIFIC_PID={{%PROLIFIC_PID%}}"
        "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")


def _rated_session(engine: Engine, study_id: int) -> None:
    """One finished session: 2 basis + 1 random rated, catch: positive 'no' (a failure) and
    negative 'no' (right), and a practice trial that must not count."""
    with unit_of_work(engine) as db:
        study = db.get_one(Study, study_id)
        stimuli = db.execute(
            select(Stimulus.id, Direction.kind).join(Direction)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id).order_by(Stimulus.id)).all()
        basis = [sid for sid, kind in stimuli if kind == "basis"]
        random_ = [sid for sid, kind in stimuli if kind == "random"]
        positive = db.scalars(select(CatchItem).where(CatchItem.kind == "positive")).first()
        negative = db.scalars(select(CatchItem).where(CatchItem.kind == "negative")).first()
        annotator = Annotator(external_id="pid-1", source="prolific")
        db.add(annotator)
        db.flush()
        now = utcnow()
        session = AnnotationSession(study_id=study.id, annotator_id=annotator.id,
                                    token=new_token(), status="completed",
                                    started_at=now - timedelta(seconds=300), finished_at=now)
        db.add(session)
        db.flush()
        plan = [("practice", basis[2], None, True), ("stimulus", basis[0], None, True),
                ("stimulus", basis[1], None, False), ("stimulus", random_[0], None, True),
                ("catch", None, positive.id, False), ("catch", None, negative.id, False)]
        for position, (kind, stimulus_id, catch_id, answer) in enumerate(plan):
            trial = Trial(session_id=session.id, position=position, kind=kind,
                          stimulus_id=stimulus_id, catch_item_id=catch_id, token=new_token())
            db.add(trial)
            db.flush()
            db.add(Rating(trial_id=trial.id, interpretable=answer, confidence=3, rt_ms=800))


def test_progress_counts_conditions_and_catch_failures(engine: Engine) -> None:
    study_id = create_study(engine, StudyRequest(job_ids=[make_job(engine)], name="Pictures",
                                                 ratings_per_item=1))
    _rated_session(engine, study_id)
    progress = study_progress(engine, study_id)
    basis, random_ = progress.conditions
    assert (basis.condition, basis.items, basis.collected, basis.needed, basis.complete) == (
        "basis", 3, 2, 3, 2)
    assert (random_.condition, random_.collected, random_.needed, random_.complete) == (
        "random", 1, 3, 1)
    [person] = progress.annotators
    assert (person.source, person.external_id, person.ratings) == ("prolific", "pid-1", 5)
    assert (person.catch_answered, person.catch_failed, person.catch_failure_rate) == (2, 1, 0.5)
    assert progress.completed_sessions == 1
    assert progress.median_completion_seconds == 300
    assert list_studies(engine)[0].ratings == 3  # stimulus ratings only
    sheet = contact_sheet(engine, study_id)
    assert [item.condition for item in sheet] == ["basis"] * 3 + ["random"] * 3
    assert [item.channel for item in sheet[:3]] == [0, 5, 10]
    assert {item.layer for item in sheet} == {"blocks.10"}
    assert [(item.ratings, item.yes) for item in sheet[:3]] == [(1, 1), (1, 0), (0, 0)]
    png = stimulus_png(engine, study_id, sheet[0].stimulus_id)
    assert png is not None and png.startswith(b"\x89PNG")
    assert stimulus_png(engine, study_id + 1, sheet[0].stimulus_id) is None
    with pytest.raises(StudyError):
        study_progress(engine, 999)


def test_cli_create_open_close_list(engine: Engine, db_url: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    job_id = make_job(engine)
    runner = CliRunner()
    result = runner.invoke(fvlab, ["study", "create", "--job", str(job_id), "--name", "Pictures",
                                   "--ratings-per-item", "4", "--trials", "10",
                                   "--catch-every", "5", "--completion-code", "DONE1234",
                                   "--base-url", "https://site.example"])
    assert result.exit_code == 0, result.output
    study = get_study(engine, 1)
    assert result.stdout.strip() == f"https://site.example/study/{study.slug}"
    assert (study.ratings_per_item, study.trials_per_session, study.catch_every,
            study.completion_code, study.status) == (4, 10, 5, "DONE1234", "draft")
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in result.stderr
    assert runner.invoke(fvlab, ["study", "open", "1"]).output == "study 1 is open\n"
    assert get_study(engine, 1).status == "open"
    listed = runner.invoke(fvlab, ["study", "list"]).output
    assert re.search(rf"1\s+open\s+rating\s+0/24\s+{study.slug}\s+Pictures", listed), listed
    assert runner.invoke(fvlab, ["study", "close", "1"]).output == "study 1 is closed\n"
    assert get_study(engine, 1).status == "closed"


def test_cli_bad_input_is_one_line_and_writes_nothing(engine: Engine, db_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    job_id = make_job(engine)
    runner = CliRunner()
    bad = runner.invoke(fvlab, ["study", "create", "--job", str(job_id), "--name", "Pictures",
                                "--ratings-per-item", "0"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "Error: ratings_per_item must be between 1 and 1000, got 0"]
    unknown = runner.invoke(fvlab, ["study", "open", "7"])
    assert unknown.exit_code == 1 and "study 7 does not exist" in unknown.output
    assert count(engine, Study) == 0
    assert runner.invoke(fvlab, ["study", "list"]).output == "no studies yet\n"
