"""Studies through the console: create (and refuse bad input), open, close, watch, look, export."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work
from service.store.models import CatchItem, Job, Study, Trial
from service.studies.export import ratings_frame, sessions_frame, write_frame
from service.studies.study import DEFAULT_QUESTION, get_study
from tests.annotate.admin_support import sign_in
from tests.annotate.conftest import answer_all, make_study, start


def _form(job_id: int, **change: str) -> dict[str, object]:
    form: dict[str, object] = {
        "job": [str(job_id)], "name": "Pictures", "ratings_per_item": "2",
        "trials_per_session": "4", "catch_every": "2", "practice_count": "1",
        "question": DEFAULT_QUESTION, "consent_text": "You agree.\r\n\r\nThanks.",
        "completion_code": "", "redirect_url": ""}
    form.update(change)
    return form


def _study_count(engine: Engine) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(select(func.count()).select_from(Study)))


def _job_id(engine: Engine) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(select(func.min(Job.id))))


def _positive_catch_trials(engine: Engine, session_id: int) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(
            select(func.count(Trial.id)).join(CatchItem, Trial.catch_item_id == CatchItem.id)
            .where(Trial.session_id == session_id, Trial.kind == "catch",
                   CatchItem.kind == "positive")))


def test_create_open_and_run_a_study_from_the_form(client: FlaskClient, engine: Engine) -> None:
    make_study(engine, status="closed")  # supplies a finished job with six + six stimuli
    token = sign_in(client, engine)
    page = client.get("/admin/studies")
    assert "secretjob" in page.text and 'name="job"' in page.text
    created = client.post("/admin/studies", data=_form(_job_id(engine), csrf_token=token))
    assert created.status_code == 302
    study_id = int(created.headers["Location"].rsplit("/", 1)[1])
    study = get_study(engine, study_id)
    assert (study.status, study.ratings_per_item, study.trials_per_session, study.catch_every,
            study.practice_count) == ("draft", 2, 4, 2, 1)
    assert study.consent_text == "You agree.\n\nThanks."
    detail = client.get(f"/admin/studies/{study_id}")
    assert "created as a draft" in detail.text
    assert f"/study/{study.slug}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}" in detail.text
    assert f"cc={study.completion_code}" in detail.text
    assert "Refresh" not in detail.headers  # a draft does not change by itself

    annotator = client.application.test_client()
    assert annotator.get(f"/study/{study.slug}").status_code == 404  # draft: not yet
    assert client.post(f"/admin/studies/{study_id}/open",
                       data={"csrf_token": token}).status_code == 302
    assert get_study(engine, study_id).status == "open"
    start(annotator, study.slug, "?PROLIFIC_PID=pid-7&STUDY_ID=s&SESSION_ID=x")
    sent = answer_all(annotator, lambda trial: {"interpretable": False})
    assert len(sent) == 1 + 4 + 2  # practice, stimuli, catch

    live = client.get(f"/admin/studies/{study_id}")
    assert live.headers["Refresh"] == "15"
    assert "pid-7" in live.text  # researchers see the external id
    progress = client.get(f"/admin/studies/{study_id}/progress.json").get_json()
    assert [(c["condition"], c["items"], c["needed"]) for c in progress["conditions"]] == [
        ("basis", 6, 12), ("random", 6, 12)]
    assert sum(c["collected"] for c in progress["conditions"]) == 4
    [session] = progress["sessions"]
    assert (session["status"], session["ratings"], session["catch_answered"]) == (
        "completed", 6, 2)
    # every answer was "no": the positive catch items count as failures, the negative ones not
    assert session["catch_failed"] == _positive_catch_trials(engine, session["session_id"])
    assert progress["completed_sessions"] == 1

    assert client.post(f"/admin/studies/{study_id}/close",
                       data={"csrf_token": token}).status_code == 302
    assert get_study(engine, study_id).status == "closed"
    assert "closed" in client.application.test_client().get(f"/study/{study.slug}").text


BAD_FORMS = [
    ({"ratings_per_item": "0"}, "ratings_per_item must be between 1 and 1000"),
    ({"ratings_per_item": "ten"}, "ratings_per_item must be a whole number, got &#39;ten&#39;"),
    ({"trials_per_session": ""}, "trials_per_session must be a whole number"),
    ({"catch_every": "-3"}, "catch_every must be between 0 and 1000"),
    ({"job": []}, "jobs: choose at least one finished job"),
    ({"job": ["x1"]}, "jobs: &#39;x1&#39; is not a job id"),
    ({"job": ["999"]}, "job 999 does not exist"),
    ({"name": ""}, "name must not be empty"),
    ({"name": "blocks.10 vs random"}, "name mentions &#39;blocks.10&#39;"),
    ({"question": "  "}, "question must not be empty"),
    ({"completion_code": "no spaces"}, "completion_code must be 4–100"),
    ({"redirect_url": "ftp://x.example/"}, "redirect_url must be an http(s) address"),
]


def test_bad_study_forms_show_the_error_and_write_nothing(client: FlaskClient, engine: Engine,
                                                          subtests: pytest.Subtests) -> None:
    make_study(engine, status="closed")
    token = sign_in(client, engine)
    before = _study_count(engine)
    for change, message in BAD_FORMS:
        with subtests.test(msg=message):
            form = _form(_job_id(engine), csrf_token=token, **change)
            response = client.post("/admin/studies", data=form)
            assert response.status_code == 400
            assert message in response.text
            assert _study_count(engine) == before
            if form["name"]:
                assert f'value="{form["name"]}"' in response.text  # what was typed is kept


def test_contact_sheet_shows_conditions_to_researchers_only(client: FlaskClient,
                                                            engine: Engine) -> None:
    info = make_study(engine, n_basis=2, n_random=3)
    other = make_study(engine)
    sign_in(client, engine)
    sheet = client.get(f"/admin/studies/{info.id}/stimuli")
    assert sheet.status_code == 200
    assert re.search(r"<h2>basis <span[^>]*>\(2\)", sheet.text)
    assert re.search(r"<h2>random <span[^>]*>\(3\)", sheet.text)
    assert "blocks.10 · ch 7" in sheet.text
    images = re.findall(r'src="(/admin/studies/\d+/stimuli/\d+\.png)"', sheet.text)
    assert len(images) == 5
    for src in images:
        response = client.get(src)
        assert response.status_code == 200 and response.data.startswith(b"\x89PNG")
    foreign = other.stimulus_ids["basis"][0]
    assert client.get(f"/admin/studies/{info.id}/stimuli/{foreign}.png").status_code == 404
    assert client.get("/admin/studies/999/stimuli").status_code == 404
    assert client.get("/admin/studies/999").status_code == 404


def test_exports_are_the_cli_files(client: FlaskClient, engine: Engine, tmp_path: Path) -> None:
    info = make_study(engine)
    annotator = client.application.test_client()
    start(annotator, info.slug)
    answer_all(annotator)
    sign_in(client, engine)
    for kind, make in (("ratings", ratings_frame), ("sessions", sessions_frame)):
        csv = client.get(f"/admin/studies/{info.id}/export/{kind}.csv")
        assert csv.status_code == 200
        assert csv.headers["Content-Disposition"] == (
            f'attachment; filename="study-{info.id}-{kind}.csv"')
        expected = write_frame(make(engine, info.id), tmp_path / f"{kind}.csv", "csv")
        assert csv.data == expected.read_bytes()
        parquet = client.get(f"/admin/studies/{info.id}/export/{kind}.parquet")
        assert parquet.status_code == 200
        frame = pd.read_parquet(io.BytesIO(parquet.data))
        pd.testing.assert_frame_equal(frame, make(engine, info.id))
    exported = client.get(f"/admin/studies/{info.id}/export/ratings.csv").data
    ratings = pd.read_csv(io.BytesIO(exported))
    assert len(ratings) == 6 + 2  # stimuli and catch trials; the 2 practice trials stay out
    for bad in ("ratings.xlsx", "trials.csv", "ratings.csv/../x"):
        assert client.get(f"/admin/studies/{info.id}/export/{bad}").status_code == 404
    assert client.get("/admin/studies/999/export/ratings.csv").status_code == 404


def test_create_and_watch_a_2afc_study_from_the_form(client: FlaskClient, engine: Engine) -> None:
    from service.studies.afc_study import AFC_QUESTION
    from tests.annotate.afc_support import answer_all_afc, make_afc_job

    job = make_afc_job(engine, n_basis=3, n_random=3)
    token = sign_in(client, engine)
    page = client.get("/admin/studies")
    assert 'name="task" value="2afc"' in page.text and 'name="reference" value="none"' in page.text
    form = _form(job.job_id, csrf_token=token, task="2afc", catch_every="2")
    form["reference"] = ["synthetic", "natural"]
    created = client.post("/admin/studies", data=form)
    assert created.status_code == 302, created.text
    study_id = int(created.headers["Location"].rsplit("/", 1)[1])
    study = get_study(engine, study_id)
    # the form's prefilled yes/no question is not asked of a 2-AFC study
    assert (study.task, study.reference_kinds, study.question) == (
        "2afc", ["synthetic", "natural"], AFC_QUESTION)
    client.post(f"/admin/studies/{study_id}/open", data={"csrf_token": token})
    annotator = client.application.test_client()
    start(annotator, study.slug, "?PROLIFIC_PID=pid-8&STUDY_ID=s&SESSION_ID=x")
    sent = answer_all_afc(annotator)
    assert len(sent) == 1 + 4 + 2
    progress = client.get(f"/admin/studies/{study_id}/progress.json").get_json()
    assert [(c["condition"], c["reference"], c["items"], c["needed"])
            for c in progress["conditions"]] == [
        ("basis", "synthetic", 3, 6), ("basis", "natural", 3, 6),
        ("random", "synthetic", 3, 6), ("random", "natural", 3, 6)]
    assert sum(c["collected"] for c in progress["conditions"]) == 4
    [session] = progress["sessions"]
    assert (session["ratings"], session["catch_answered"]) == (6, 2)
    with unit_of_work(engine) as db:
        wrong = db.scalar(select(func.count(Trial.id)).where(
            Trial.kind == "catch", Trial.max_position != 0))  # every answer picked position 0
    assert session["catch_failed"] == wrong
    detail = client.get(f"/admin/studies/{study_id}").text
    assert "2afc (references: synthetic, natural)" in detail and "reference" in detail


@pytest.mark.parametrize(("change", "references", "message"), [
    ({"task": "2afc"}, ["drawings"], "reference must be one of synthetic, natural, none"),
    ({"task": "2afc", "catch_every": "3"}, ["none"], "catch_every: 2-AFC catch trials"),
    ({"task": "2afc"}, ["natural", "natural"], "names a kind twice"),
    ({"task": "4afc"}, [], "task must be one of rating, 2afc"),
])
def test_bad_2afc_forms_show_the_error_and_write_nothing(client: FlaskClient, engine: Engine,
                                                         change: dict[str, str],
                                                         references: list[str],
                                                         message: str) -> None:
    from tests.annotate.afc_support import make_afc_job

    job = make_afc_job(engine, n_basis=1, n_random=1)
    token = sign_in(client, engine)
    form = _form(job.job_id, csrf_token=token, **change)
    form["reference"] = references
    response = client.post("/admin/studies", data=form)
    assert response.status_code == 400 and message in response.text
    assert _study_count(engine) == 0
    if change.get("task") == "2afc":
        assert 'value="2afc" checked' in response.text  # what was chosen is kept
