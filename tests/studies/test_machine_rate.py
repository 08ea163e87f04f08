"""`fvlab machine rate`: machine annotators answer a 2-AFC study's real trials, through the same
tables as people, and never take the k that people need."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from analysis.load import validate
from annotate import create_app
from annotate.assign import Identity, StartRefused, start_session
from annotate.study_items import has_room
from service.cli import fvlab
from service.store.db import unit_of_work, utcnow
from service.store.models import AnnotationSession, Image, Rating, Stimulus, Study, Trial
from service.studies.errors import StudyError
from service.studies.export import ratings_frame
from service.studies.machine.rate import confidence_of
from service.studies.progress import list_studies, study_progress
from service.studies.study import close_study
from tests.annotate.admin_support import sign_in
from tests.annotate.afc_support import AfcStudyInfo, make_afc_study
from tests.annotate.conftest import SECRET, make_study
from tests.studies.machine_support import (
    forget_machine,
    machine_answers,
    rate,
    row_counts,
    stimulus_loads,
    tiny_cache,
)
from tests.studies.test_machine_score import naive_delta

K = 2


def small_study(engine: Engine, **options: object) -> AfcStudyInfo:
    """6 directions × synthetic references, k = 2, 4 stimulus trials a session: 3 sessions fill
    it."""
    settings: dict[str, object] = dict(k=K, trials=4, catch_every=3, practice=2, n_basis=3,
                                       n_random=3)
    return make_afc_study(engine, **(settings | options))  # type: ignore[arg-type]


def people_fill(engine: Engine, slug: str) -> int:
    """People start sessions until the study is full and answer every trial; returns how many
    sessions they made."""
    starts = 0
    while True:
        try:
            token = start_session(engine, slug, Identity("prolific", f"p{starts}",
                                                         external_session_id=f"s{starts}"))
        except StartRefused as refused:
            assert refused.reason == "full"
            return starts
        starts += 1
        assert starts < 50
        with unit_of_work(engine) as db:
            session = db.scalars(select(AnnotationSession)
                                 .where(AnnotationSession.token == token)).one()
            for trial in session.trials:
                db.add(Rating(trial_id=trial.id, choice=0, correct=trial.max_position == 0,
                              confidence=2, rt_ms=900))
            session.status = "completed"
            session.finished_at = utcnow()


def test_machine_sessions_never_count_towards_k(engine: Engine) -> None:
    info = small_study(engine)
    summary = rate(engine, info.id, annotators=10, seed=1)
    assert (summary.sessions, summary.requested, summary.stopped_early) == (3, 10, True)
    machine = stimulus_loads(engine, info.id, source_is_machine=True)
    assert len(machine) == 6 and set(machine.values()) == {K}  # k among machine sessions
    with unit_of_work(engine) as db:
        study = db.get_one(Study, info.id)
    assert has_room(engine, study, utcnow())  # not full because of the machine
    assert has_room(engine, study, utcnow() + timedelta(days=1))
    assert people_fill(engine, info.slug) == 3  # people still get every item k times
    people = stimulus_loads(engine, info.id, source_is_machine=False)
    assert len(people) == 6 and set(people.values()) == {K}
    progress = study_progress(engine, info.id)
    assert [(c.collected, c.needed, c.complete, c.machine) for c in progress.conditions] == [
        (6, 6, 3, 6), (6, 6, 3, 6)]  # basis, random: people's count; the machine's beside it
    assert (progress.completed_sessions, progress.machine_sessions) == (3, 3)
    listed = next(s for s in list_studies(engine) if s.id == info.id)
    assert (listed.ratings, listed.needed, listed.machine_ratings) == (12, 12, 12)
    with pytest.raises(StudyError, match="every item already has its k machine answers"):
        rate(engine, info.id, annotators=1)


def test_every_trial_answered_as_people_are_judged(engine: Engine) -> None:
    info = small_study(engine, reference_kinds=("synthetic", "none"))
    summary = rate(engine, info.id, annotators=2, seed=3)
    answers = machine_answers(engine, info.id)
    assert len(answers) == summary.answers > 0
    assert {kind for _, kind, *_ in answers} == {"stimulus", "catch"}
    for _, _, _, reference, _, max_position, choice, correct, confidence, rt_ms in answers:
        assert correct == (choice == max_position) and rt_ms is None
        assert confidence in (1, 2, 3)
        if reference == "none":  # no references, no evidence: P = 0.5
            assert confidence == 1
    with unit_of_work(engine) as db:
        sessions = db.scalars(select(AnnotationSession).where(
            AnnotationSession.study_id == info.id)).all()
        assert [s.status for s in sessions] == ["completed", "completed"]
        kinds = db.scalars(select(Trial.kind).join(AnnotationSession)
                           .where(AnnotationSession.study_id == info.id)).all()
        assert "practice" not in kinds  # skipped and removed
    frame = ratings_frame(engine, info.id)
    assert len(frame) == summary.answers
    assert set(frame["annotator_source"]) == {"machine"}
    assert frame["rt_ms"].isna().all()
    assert validate(frame)["rt_ms"].isna().all()  # the analysis reads machine rows too
    assert ((frame["correct"] == 1) == (frame["choice"].astype(int) == [
        a[5] for a in answers])).all()


def test_answers_follow_the_shown_images(engine: Engine) -> None:
    """With a huge α the machine picks the max query exactly when Δ of the shown images,
    computed here from the job's own image lists, is positive."""
    info = small_study(engine, catch_every=0)
    rate(engine, info.id, annotators=1, alpha=1e9)
    cache = tiny_cache()
    with unit_of_work(engine) as db:
        pngs = dict(db.execute(select(Image.sha256, Image.png)).all())
        direction = dict(db.execute(select(Stimulus.id, Stimulus.direction_id)).all())
    checked = 0
    for _, _, stimulus_id, _, task, _, _, correct, confidence, _ in machine_answers(
            engine, info.id):
        shown = info.job.images[direction[stimulus_id]]
        images = [shown["query_max"][task], shown["query_min"][task],
                  *shown["synthetic_max"], *shown["synthetic_min"]]
        emb = cache.embed([pngs[sha] for sha in images])
        n = len(shown["synthetic_max"])
        delta = naive_delta(emb, 0, 1, list(range(2, 2 + n)), list(range(2 + n, 2 + 2 * n)))
        assert correct == (delta > 0) and confidence == 3
        checked += 1
    assert checked == 4


def test_seeded_runs_are_reproducible(engine: Engine) -> None:
    info = small_study(engine, n_basis=4, n_random=4)
    rate(engine, info.id, seed=5)
    first = machine_answers(engine, info.id)
    forget_machine(engine)
    rate(engine, info.id, seed=5)
    assert machine_answers(engine, info.id) == first
    forget_machine(engine)
    rate(engine, info.id, seed=6)
    assert machine_answers(engine, info.id) != first


def test_a_draft_study_can_be_piloted_but_people_cannot_enter_it(engine: Engine) -> None:
    info = small_study(engine, status="draft")
    assert rate(engine, info.id, annotators=1).sessions == 1
    with pytest.raises(StartRefused, match="not_found"):
        start_session(engine, info.slug, Identity("prolific", "p1"))


def test_confidence_cuts_the_certainty_in_three() -> None:
    assert [confidence_of(p) for p in (0.5, 0.6, 0.3, 0.75, 0.1, 0.95)] == [1, 1, 2, 2, 3, 3]


def test_the_summary_names_an_uncalibrated_alpha(engine: Engine) -> None:
    info = small_study(engine)
    found = rate(engine, info.id, annotators=1)
    assert not found.calibrated and "uncalibrated α" in found.alpha_note and found.alpha > 0
    given = rate(engine, info.id, annotators=1, alpha=4.0)
    assert (given.alpha, given.calibrated) == (4.0, False)
    assert "uncalibrated α" in given.alpha_note


@pytest.mark.parametrize(("case", "message"), [
    ("unknown", "study 9999 does not exist"),
    ("rating", "is a rating study; the machine annotator answers 2afc studies only"),
    ("closed", "is closed; the machine annotator rates draft or open studies only"),
    ("no annotators", "annotators: need at least 1 machine annotator, got 0"),
    ("bad alpha", "alpha: must be a positive number, got -1.0"),
])
def test_bad_requests_change_nothing(engine: Engine, db_url: str,
                                     monkeypatch: pytest.MonkeyPatch, case: str,
                                     message: str) -> None:
    info = small_study(engine)
    study_id, options = info.id, {"annotators": 1}
    if case == "unknown":
        study_id = 9999
    elif case == "rating":
        study_id = make_study(engine).id
    elif case == "closed":
        close_study(engine, info.id)
    elif case == "no annotators":
        options = {"annotators": 0}
    else:
        options["alpha"] = -1.0  # type: ignore[assignment]
    before = row_counts(engine)
    with pytest.raises(StudyError, match=message):
        rate(engine, study_id, **options)
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    args = ["machine", "rate", "--study", str(study_id)]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    result = CliRunner().invoke(fvlab, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert row_counts(engine) == before


def test_cli_rates_a_study(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    info = small_study(engine)
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    monkeypatch.setattr("service.cli.machine_study.load_embedder",
                        lambda name, weights_dir=None: tiny_cache().embedder)
    result = CliRunner().invoke(fvlab, ["machine", "rate", "--study", str(info.id),
                                        "--annotators", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("answered")]
    assert lines[0].startswith(f"study {info.id}: 2 machine sessions, ")
    assert "uncalibrated α: 1/median |Δ| over the study's tasks" in lines[0]
    assert len(machine_answers(engine, info.id)) == int(lines[0].split(", ")[1].split()[0])
    assert np.isfinite(float(lines[0].split("mean P(correct) ")[1].split(";")[0]))


@pytest.mark.slow
def test_cli_rates_with_efficientnet_lite2(engine: Engine, db_url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    info = small_study(engine, catch_every=0)
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    result = CliRunner().invoke(fvlab, ["machine", "rate", "--study", str(info.id),
                                        "--annotators", "1"])
    assert result.exit_code == 0, result.output
    assert "embedding efficientnet_lite2" in result.output
    assert "uncalibrated α" in result.output
    assert len(machine_answers(engine, info.id)) == 4


def test_the_console_shows_machine_answers_apart(engine: Engine, db_url: str) -> None:
    info = small_study(engine)
    rate(engine, info.id, annotators=10)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    client = app.test_client()
    sign_in(client, engine)
    page = client.get(f"/admin/studies/{info.id}").text
    assert "0 / 6 (0%) <span class=\"muted\">+ 6 machine</span>" in page
    assert "0 completed by people, 3 by the machine annotator (never counted towards k)" in page
    progress = client.get(f"/admin/studies/{info.id}/progress.json").get_json()
    assert [(c["collected"], c["machine"]) for c in progress["conditions"]] == [(0, 6), (0, 6)]
    assert progress["completed_sessions"] == 0
    app.extensions["fvlab_engine"].dispose()
