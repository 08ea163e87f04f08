from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from service.store.models import AnnotationSession, Annotator, Rating, Trial
from tests.annotate.conftest import answer_all, make_study, start


def test_whole_session_anonymous(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine, trials=6, catch_every=3, practice=2)
    start(client, info.slug)
    state = client.get("/api/v1/session").get_json()
    assert state["phase"] == "practice"
    assert state["practice"] == {"done": 0, "total": 2}
    assert state["trials"] == {"done": 0, "total": 8}  # 6 stimuli + 2 catch
    sent = answer_all(client)
    assert len(sent) == 10
    done = client.get(f"/study/{info.slug}/done")
    assert done.status_code == 200
    assert "C0DE42" in done.text
    with engine.connect() as conn:
        session = conn.execute(select(AnnotationSession)).one()
        assert session.status == "completed"
        assert session.completion_code == "C0DE42"
        for stamp in ("consent_at", "instructions_shown_at", "instructions_done_at",
                      "practice_done_at", "finished_at"):
            assert getattr(session, stamp) is not None, stamp
        assert conn.scalar(select(func.count(Rating.id))) == 10
        assert conn.scalar(select(func.count(Trial.id)).where(Trial.answered_at.is_(None))) == 0


def test_prolific_entry_resumes_and_refuses_a_second_session(client: FlaskClient,
                                                             engine: Engine) -> None:
    info = make_study(engine)
    query = "?PROLIFIC_PID=abc123&STUDY_ID=st1&SESSION_ID=se1"
    start(client, info.slug, query)
    client.post(client.get("/api/v1/trials?limit=1").get_json()["trials"][0]["rating"],
                json={"interpretable": False, "confidence": 2, "label": None, "rt_ms": 500})
    other_browser = client.application.test_client()
    resumed = other_browser.get(f"/study/{info.slug}{query}")
    assert resumed.status_code == 302 and resumed.location.endswith("/trials")
    assert other_browser.get("/api/v1/session").get_json()["practice"]["done"] == 1
    answer_all(other_browser)
    done = other_browser.get(f"/study/{info.slug}/done")
    assert "https://app.prolific.com/submissions/complete?cc=C0DE42" in done.text
    again = client.application.test_client().get(f"/study/{info.slug}{query}")
    assert again.status_code == 409
    assert "already taken part" in again.text
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(AnnotationSession.id))) == 1
        annotator = conn.execute(select(Annotator)).one()
        assert (annotator.source, annotator.external_id) == ("prolific", "abc123")
        session = conn.execute(select(AnnotationSession)).one()
        assert (session.external_study_id, session.external_session_id) == ("st1", "se1")


def test_mturk_preview_creates_nothing(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    page = client.get(f"/study/{info.slug}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    assert page.status_code == 200
    assert "Accept the HIT" in page.text
    assert "<form" not in page.text
    assert "Set-Cookie" not in page.headers
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(AnnotationSession.id))) == 0
        assert conn.scalar(select(func.count(Annotator.id))) == 0


def test_mturk_hand_off_posts_the_assignment(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    query = ("?workerId=W1&assignmentId=A1&hitId=H1"
             "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    start(client, info.slug, query)
    # Before the last rating the end page is not reachable.
    early = client.get(f"/study/{info.slug}/done")
    assert early.status_code == 302 and early.location.endswith("/trials")
    answer_all(client)
    done = client.get(f"/study/{info.slug}/done").text
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in done
    assert 'name="assignmentId" value="A1"' in done


def test_mturk_refuses_foreign_submit_target(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    page = client.get(f"/study/{info.slug}?workerId=W1&assignmentId=A1"
                      "&turkSubmitTo=https%3A%2F%2Fevil.example")
    assert page.status_code == 400


def test_closed_draft_unknown_and_full_studies(client: FlaskClient, engine: Engine) -> None:
    closed = make_study(engine, status="closed")
    draft = make_study(engine, status="draft")
    assert client.get(f"/study/{closed.slug}").status_code == 410
    assert "closed" in client.get(f"/study/{closed.slug}").text
    assert client.get(f"/study/{draft.slug}").status_code == 404
    assert client.get("/study/no-such-study").status_code == 404
    full = make_study(engine, n_basis=1, n_random=1, k=1, trials=2)
    start(client, full.slug)
    second = client.application.test_client()
    before_consent = second.get(f"/study/{full.slug}")
    assert before_consent.status_code == 410 and "full" in before_consent.text
    assert "consent" not in before_consent.text.lower()
    refused = second.post(f"/study/{full.slug}/start", data={"consent": "yes"})
    assert refused.status_code == 410 and "full" in refused.text


def test_consent_is_required(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    response = client.post(f"/study/{info.slug}/start", data={})
    assert response.status_code == 400
    assert "consent" in response.text
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(AnnotationSession.id))) == 0


def test_pages_need_a_session(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    for step in ("instructions", "trials", "done"):
        response = client.get(f"/study/{info.slug}/{step}")
        assert response.status_code == 302
        assert response.location.endswith(f"/study/{info.slug}")


def test_without_practice_practice_is_over_when_instructions_are(client: FlaskClient,
                                                                 engine: Engine) -> None:
    info = make_study(engine, practice=0)
    start(client, info.slug)
    assert client.get("/api/v1/session").get_json()["phase"] == "trials"
    with engine.connect() as conn:
        session = conn.execute(select(AnnotationSession)).one()
    assert session.practice_done_at == session.instructions_done_at is not None


def test_shown_and_answered_times_are_kept(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine)
    start(client, info.slug)
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    assert client.post(trial["shown"]).status_code == 204
    with engine.connect() as conn:
        first_shown = conn.scalar(select(Trial.served_at).where(Trial.token == trial["token"]))
    assert first_shown is not None
    assert client.post(trial["shown"]).status_code == 204  # a reload keeps the first time
    client.post(trial["rating"], json={"interpretable": True, "confidence": 5, "label": None,
                                       "rt_ms": 400})
    with engine.connect() as conn:
        row = conn.execute(select(Trial.served_at, Trial.answered_at)
                           .where(Trial.token == trial["token"])).one()
    assert row.served_at == first_shown and row.answered_at >= row.served_at
