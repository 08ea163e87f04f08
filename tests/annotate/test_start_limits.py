"""A few anonymous requests cannot make a study "full": one client address may start only so many
sessions of a study within a window (counted in the database, so every web process shares the
count), and a new session holds its items only briefly until it answers something; its first
answer turns the hold into the full lease, which answers renew once a step of it has run.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select, update

from annotate.assign import DEFAULT_START_LIMIT, Identity, StartRefused, start_session
from annotate.reservations import DEFAULT_RESERVATION, FIRST_ANSWER_RESERVATION, RENEWAL_STEP
from service.store.db import unit_of_work, utcnow
from service.store.models import AnnotationSession, Rating, SessionStart, Trial
from tests.annotate.conftest import make_study, start

PERSON_ADDRESS = "10.20.30.40"


def _anonymous_start(app: Flask, slug: str) -> int:
    bot = app.test_client()
    bot.get(f"/study/{slug}")
    return bot.post(f"/study/{slug}/start", data={"consent": "yes"}).status_code


def test_thirty_anonymous_starts_leave_room_for_a_person(app: Flask, engine: Engine) -> None:
    # 24 items x k=3 hold 72 reservations: 30 sessions of 6 items would take them all
    info = make_study(engine, n_basis=12, n_random=12, k=3, trials=6, catch_every=0,
                      practice=0)
    limit = DEFAULT_START_LIMIT[0]
    statuses = Counter(_anonymous_start(app, info.slug) for _ in range(30))
    assert statuses == Counter({302: limit, 429: 30 - limit})
    person = app.test_client()
    person.environ_base["REMOTE_ADDR"] = PERSON_ADDRESS
    start(person, info.slug)
    trials = person.get("/api/v1/trials?limit=50").get_json()["trials"]
    assert len(trials) == 6
    with unit_of_work(engine) as db:
        assert db.scalar(select(func.count()).select_from(AnnotationSession)) == limit + 1
        addresses = Counter(db.scalars(select(SessionStart.address)))
    assert addresses == Counter({"127.0.0.1": limit, PERSON_ADDRESS: 1})


def test_the_limit_is_per_study_and_the_refusal_is_polite(app: Flask, engine: Engine) -> None:
    first, second = make_study(engine, k=50), make_study(engine, k=50)
    for _ in range(DEFAULT_START_LIMIT[0]):
        assert _anonymous_start(app, first.slug) == 302
    bot = app.test_client()
    refused = bot.post(f"/study/{first.slug}/start", data={"consent": "yes"})
    assert refused.status_code == 429
    assert "Too many people have started" in refused.text
    assert "Set-Cookie" not in refused.headers
    assert _anonymous_start(app, second.slug) == 302


def test_the_count_forgets_starts_older_than_the_window(engine: Engine) -> None:
    info = make_study(engine, k=50)
    count, seconds = 2, 600.0
    t0 = utcnow()
    for number in range(count):
        start_session(engine, info.slug, Identity("anonymous", f"a{number}"), now=t0,
                      client="10.0.0.1", start_limit=(count, seconds))
    with pytest.raises(StartRefused) as refused:
        start_session(engine, info.slug, Identity("anonymous", "a9"), now=t0,
                      client="10.0.0.1", start_limit=(count, seconds))
    assert refused.value.reason == "busy"
    with unit_of_work(engine) as db:  # the refusal wrote nothing
        assert db.scalar(select(func.count()).select_from(SessionStart)) == count
        assert db.scalar(select(func.count()).select_from(AnnotationSession)) == count
    later = t0 + timedelta(seconds=seconds + 1)
    start_session(engine, info.slug, Identity("anonymous", "a10"), now=later,
                  client="10.0.0.1", start_limit=(count, seconds))
    with unit_of_work(engine) as db:  # the old rows went when the new one came
        assert db.scalars(select(SessionStart.started_at)).all() == [later]


def test_an_unanswered_start_holds_its_items_only_briefly(engine: Engine) -> None:
    info = make_study(engine, n_basis=2, n_random=2, k=1, trials=4, catch_every=0, practice=0)
    t0 = utcnow()
    start_session(engine, info.slug, Identity("anonymous", "silent"), now=t0)
    with pytest.raises(StartRefused):
        start_session(engine, info.slug, Identity("anonymous", "early"),
                      now=t0 + FIRST_ANSWER_RESERVATION - timedelta(seconds=1))
    person = start_session(engine, info.slug, Identity("anonymous", "person"),
                           now=t0 + FIRST_ANSWER_RESERVATION + timedelta(seconds=1))
    with unit_of_work(engine) as db:
        kinds = db.scalars(select(Trial.kind).join(AnnotationSession)
                           .where(AnnotationSession.token == person)).all()
    assert kinds == ["stimulus"] * 4


def test_the_first_answer_brings_the_full_lease(app: Flask, engine: Engine) -> None:
    info = make_study(engine, practice=1)
    client = app.test_client()
    start(client, info.slug)

    def lease() -> timedelta:
        with unit_of_work(engine) as db:
            session = db.scalars(select(AnnotationSession)).one()
            latest = db.scalar(select(func.max(Rating.created_at)))
            return session.reserved_until - (latest or session.started_at)

    assert lease() == FIRST_ANSWER_RESERVATION
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    assert client.post(trial["rating"], json={"interpretable": True, "confidence": 3,
                                              "label": None, "rt_ms": 900}).status_code == 201
    assert lease() == DEFAULT_RESERVATION


def test_answers_renew_the_lease_once_a_step_of_it_has_run(app: Flask, engine: Engine) -> None:
    info = make_study(engine, practice=0, catch_every=0)
    client = app.test_client()
    start(client, info.slug)
    body = {"interpretable": True, "confidence": 3, "label": None, "rt_ms": 900}

    def answer() -> None:
        trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
        assert client.post(trial["rating"], json=body).status_code == 201

    def lease_end() -> datetime:
        with unit_of_work(engine) as db:
            return db.scalars(select(AnnotationSession.reserved_until)).one()

    answer()
    renewed = lease_end()
    answer()  # moments later: the lease is not written again
    assert lease_end() == renewed
    with unit_of_work(engine) as db:  # as if the lease had run a step and a second
        db.execute(update(AnnotationSession).values(
            reserved_until=renewed - RENEWAL_STEP - timedelta(seconds=1)))
    answer()
    latest = _latest_answer(engine)
    assert lease_end() == latest + DEFAULT_RESERVATION


def _latest_answer(engine: Engine) -> datetime:
    with unit_of_work(engine) as db:
        moment = db.scalar(select(func.max(Rating.created_at)))
    assert moment is not None
    return moment
