"""Who may resume a session: the same browser, or the whole credential the platform gave the
person (Prolific's PROLIFIC_PID with its SESSION_ID, MTurk's workerId with its assignmentId).

Participant ids are not secrets: they appear in URLs, screenshots and support mails. Someone who
knows only the id, or the id with another submission or assignment, is refused politely; the
refusal neither shows nor changes the existing session (no cookie, no renewed reservation, no
trial answered), and the real person can still carry on.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from service.store.models import AnnotationSession, Rating, Trial
from tests.annotate.conftest import make_study, start

PROLIFIC = "?PROLIFIC_PID=alice01&STUDY_ID=st1&SESSION_ID=se1"
MTURK = "?workerId=W1&assignmentId=A1&hitId=H1"
STRANGERS = {
    PROLIFIC: ["?PROLIFIC_PID=alice01", "?PROLIFIC_PID=alice01&STUDY_ID=st1",
               "?PROLIFIC_PID=alice01&STUDY_ID=st1&SESSION_ID=other"],
    MTURK: ["?workerId=W1&assignmentId=A2&hitId=H1", "?workerId=W1&assignmentId=A2"],
}


def _session_state(engine: Engine) -> list[tuple]:
    """Every session's row and the answers it has: what a refusal must leave as it was."""
    with engine.connect() as conn:
        sessions = conn.execute(select(AnnotationSession).order_by(AnnotationSession.id)).all()
        ratings = conn.execute(select(Rating.id, Trial.session_id)
                               .join(Trial, Rating.trial_id == Trial.id)).all()
    return [tuple(row) for row in sessions] + [tuple(row) for row in ratings]


def _answer_one(client: FlaskClient) -> None:
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    stored = client.post(trial["rating"], json={"interpretable": True, "confidence": 3,
                                                "label": None, "rt_ms": 900})
    assert stored.status_code == 201


def _assert_refused_quietly(app: Flask, engine: Engine, slug: str, query: str) -> None:
    before = _session_state(engine)
    stranger = app.test_client()
    entry = stranger.get(f"/study/{slug}{query}")
    assert entry.status_code == 409, (query, entry.status_code)
    assert "already been started" in entry.text
    assert "Set-Cookie" not in entry.headers
    form = {key: value for key, value in
            (pair.split("=") for pair in query.lstrip("?").split("&"))}
    consent = stranger.post(f"/study/{slug}/start", data={**form, "consent": "yes"})
    assert consent.status_code == 409, (query, consent.status_code)
    assert "Set-Cookie" not in consent.headers
    assert stranger.get("/api/v1/session").status_code == 401
    assert stranger.get("/api/v1/trials?limit=1").status_code == 401
    assert _session_state(engine) == before


@pytest.mark.parametrize("query", [PROLIFIC, MTURK])
def test_a_known_id_alone_does_not_resume(app: Flask, engine: Engine, query: str) -> None:
    info = make_study(engine)
    owner = app.test_client()
    start(owner, info.slug, query)
    _answer_one(owner)
    for stranger in STRANGERS[query]:
        _assert_refused_quietly(app, engine, info.slug, stranger)
    _answer_one(owner)  # the person carries on as before
    assert owner.get("/api/v1/session").get_json()["practice"]["done"] == 2


@pytest.mark.parametrize("query", [PROLIFIC, MTURK])
def test_the_whole_credential_resumes_from_another_browser(app: Flask, engine: Engine,
                                                           query: str) -> None:
    info = make_study(engine)
    owner = app.test_client()
    start(owner, info.slug, query)
    _answer_one(owner)
    laptop = app.test_client()
    resumed = laptop.get(f"/study/{info.slug}{query}")
    assert resumed.status_code == 302 and resumed.location.endswith("/trials")
    assert laptop.get("/api/v1/session").get_json()["practice"]["done"] == 1


def test_the_same_browser_resumes_without_any_id(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    owner = app.test_client()
    start(owner, info.slug, PROLIFIC)
    again = owner.get(f"/study/{info.slug}")
    assert again.status_code == 302 and again.location.endswith("/trials")
    with_id = owner.get(f"/study/{info.slug}?PROLIFIC_PID=alice01")
    assert with_id.status_code == 302 and with_id.location.endswith("/trials")


def test_a_finished_session_is_not_revealed_to_a_stranger(app: Flask, engine: Engine) -> None:
    info = make_study(engine, practice=0)
    owner = app.test_client()
    start(owner, info.slug, PROLIFIC)
    while trials := owner.get("/api/v1/trials?limit=1").get_json()["trials"]:
        owner.post(trials[0]["rating"], json={"interpretable": False, "confidence": 2,
                                              "label": None, "rt_ms": 700})
    stranger = app.test_client().get(f"/study/{info.slug}?PROLIFIC_PID=alice01")
    assert stranger.status_code == 409 and "already been started" in stranger.text
    assert "C0DE42" not in stranger.text and "taken part" not in stranger.text
    owner_again = app.test_client().get(f"/study/{info.slug}{PROLIFIC}")
    assert owner_again.status_code == 409 and "already taken part" in owner_again.text
