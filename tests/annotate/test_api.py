from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from annotate import create_app
from service.store.db import make_engine
from service.store.models import AnnotationSession, Direction, Rating, Stimulus, Trial
from tests.annotate.conftest import SECRET, make_study, start
from tests.conftest import create_schema

GOOD = {"interpretable": True, "confidence": 4, "label": "a dog", "rt_ms": 1234}
REPLY_KEYS = {"rating", "state", "upcoming"}


def _ratings(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count(Rating.id))))


def _first(client: FlaskClient) -> dict:
    return client.get("/api/v1/trials?limit=3").get_json()["trials"][0]


@pytest.fixture
def ready(client: FlaskClient, engine: Engine) -> FlaskClient:
    start(client, make_study(engine).slug)
    return client


def _open(client: FlaskClient) -> list[dict]:
    return client.get("/api/v1/trials?limit=2").get_json()["trials"]


def _shape(value: object) -> object:
    """Keys and value types, recursively: what a script could tell replies apart by."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return sorted({repr(_shape(item)) for item in value})
    return type(value).__name__


def test_each_rating_reply_carries_the_next_trials(ready: FlaskClient, engine: Engine) -> None:
    """After the first trial the page needs nothing but the rating POST (and the image): each
    reply's `upcoming` is the session's next two open trials, the same the GET route lists."""
    upcoming, posts = _open(ready), 0
    while upcoming:
        response = ready.post(upcoming[0]["rating"], json=GOOD)
        posts += 1
        assert response.status_code == 201, response.text
        reply = response.get_json()
        assert set(reply) == REPLY_KEYS
        assert reply["upcoming"] == _open(ready)
        assert len(reply["upcoming"]) == min(2, reply["state"]["trials"]["total"]
                                             + reply["state"]["practice"]["total"] - posts)
        upcoming = reply["upcoming"]
    assert reply["state"]["phase"] == "done" and reply["upcoming"] == []
    assert posts == _ratings(engine) == 2 + 6 + 2


def test_a_repeat_carries_the_next_trials_too(ready: FlaskClient) -> None:
    trial = _first(ready)
    first = ready.post(trial["rating"], json=GOOD).get_json()
    again = ready.post(trial["rating"], json=GOOD).get_json()
    assert again == first and len(first["upcoming"]) == 2
    assert trial["token"] not in [t["token"] for t in first["upcoming"]]


def test_replies_look_alike_whatever_the_condition(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, trials=8, catch_every=3, practice=1)
    start(client, info.slug)
    with engine.connect() as conn:
        kinds = dict(conn.execute(
            select(Trial.token, Direction.kind).join(Stimulus, Trial.stimulus_id == Stimulus.id)
            .join(Direction, Stimulus.direction_id == Direction.id)).all())
    shapes: dict[str, set[str]] = {}
    upcoming = _open(client)
    while upcoming:
        trial = upcoming[0]
        reply = client.post(trial["rating"], json=GOOD).get_json()
        if reply["upcoming"]:  # the last reply lists none: its shape says only "the end"
            condition = kinds.get(trial["token"], "catch or practice")
            shapes.setdefault(condition, set()).add(repr(_shape(reply)))
        upcoming = reply["upcoming"]
    assert set(shapes) == {"basis", "random", "catch or practice"}
    assert len(set.union(*shapes.values())) == 1


def test_repeated_submit_returns_the_stored_rating(ready: FlaskClient, engine: Engine) -> None:
    trial = _first(ready)
    first = ready.post(trial["rating"], json=GOOD)
    assert first.status_code == 201
    again = ready.post(trial["rating"], json=GOOD)
    assert again.status_code == 200
    assert again.get_json()["rating"] == first.get_json()["rating"] == GOOD
    changed = ready.post(trial["rating"], json={**GOOD, "interpretable": False})
    assert changed.status_code == 409
    assert changed.get_json()["rating"] == GOOD
    assert _ratings(engine) == 1


BAD_BODIES = [
    ({**GOOD, "interpretable": "yes"}, "interpretable"),
    ({**GOOD, "interpretable": 1}, "interpretable"),
    ({k: v for k, v in GOOD.items() if k != "interpretable"}, "interpretable"),
    ({**GOOD, "confidence": 0}, "confidence"),
    ({**GOOD, "confidence": 6}, "confidence"),
    ({**GOOD, "confidence": 3.0}, "confidence"),
    ({**GOOD, "confidence": True}, "confidence"),
    ({**GOOD, "confidence": "3"}, "confidence"),
    ({**GOOD, "label": "x" * 201}, "label"),
    ({**GOOD, "label": 5}, "label"),
    ({**GOOD, "label": "bad\u0000char"}, "label"),
    ({**GOOD, "rt_ms": -1}, "rt_ms"),
    ({**GOOD, "rt_ms": 0}, "rt_ms"),
    ({**GOOD, "rt_ms": 10**12}, "rt_ms"),
    ({**GOOD, "rt_ms": None}, "rt_ms"),
    ({**GOOD, "trial_id": 3}, "trial_id"),
    ([GOOD], None),
    ("yes", None),
]


def test_invalid_bodies_name_the_field_and_change_nothing(ready: FlaskClient,
                                                         engine: Engine) -> None:
    url = _first(ready)["rating"]
    for body, field in BAD_BODIES:
        response = ready.post(url, json=body)
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field, body
    assert _ratings(engine) == 0


MALFORMED = [
    ('{"interpretable": true}', "text/plain", 415),
    ("interpretable=1", "application/x-www-form-urlencoded", 415),
    ("{not json", "application/json", 400),
    ('{"rt_ms": NaN}', "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    ("[" * 5000 + "]" * 5000, "application/json", 413),
    ('{"label": "' + "x" * 10_000 + '"}', "application/json", 413),
    ("", "application/json", 400),
]


def test_malformed_requests_get_json_errors(ready: FlaskClient, engine: Engine) -> None:
    url = _first(ready)["rating"]
    for data, content_type, status in MALFORMED:
        response = ready.post(url, data=data, content_type=content_type)
        assert response.status_code == status, data[:40]
        assert "error" in response.get_json()
    assert _ratings(engine) == 0


def test_tokens_of_other_sessions_and_unknown_tokens_are_404(app: Flask,
                                                             engine: Engine) -> None:
    info = make_study(engine)
    alice, bob = app.test_client(), app.test_client()
    start(alice, info.slug)
    start(bob, info.slug)
    alices = _first(alice)
    assert bob.post(alices["rating"], json=GOOD).status_code == 404
    assert bob.get(alices["image"]).status_code == 404
    for token in ("x" * 32, "short", "../../etc/passwd", "%00", "a" * 5000):
        response = alice.post(f"/api/v1/trials/{token}/rating", json=GOOD)
        assert response.status_code == 404
        assert response.is_json
    assert _ratings(engine) == 0


def test_no_session_no_api(client: FlaskClient, engine: Engine) -> None:
    make_study(engine)
    assert client.get("/api/v1/session").status_code == 401
    assert client.get("/api/v1/trials").status_code == 401
    response = client.post("/api/v1/trials/" + "a" * 32 + "/rating", json=GOOD)
    assert response.status_code == 401


def test_forged_cookie_is_no_session(client: FlaskClient, engine: Engine) -> None:
    make_study(engine)
    client.set_cookie("session", "eyJ0IjoiYWFhYSJ9.forged.signature")
    assert client.get("/api/v1/session").status_code == 401


def test_trials_are_answered_in_order(ready: FlaskClient, engine: Engine) -> None:
    second = ready.get("/api/v1/trials?limit=2").get_json()["trials"][1]
    response = ready.post(second["rating"], json=GOOD)
    assert response.status_code == 409
    assert _ratings(engine) == 0


def test_unknown_routes_and_methods_are_json(ready: FlaskClient) -> None:
    assert ready.get("/api/v1/nope").status_code == 404
    assert ready.get("/api/v1/nope").is_json
    response = ready.get(_first(ready)["rating"])
    assert response.status_code == 405 and response.is_json
    assert ready.get("/api/v1/trials?limit=zero").status_code == 400
    assert ready.get("/api/v1/trials?limit=10000").status_code == 400


def test_rate_limit_per_session(db_url: str, engine: Engine) -> None:
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET,
                      "RATING_RATE_LIMIT": (3, 60.0)})
    client = app.test_client()
    start(client, make_study(engine).slug)
    for _ in range(3):
        assert client.post(_first(client)["rating"], json=GOOD).status_code == 201
    limited = client.post(_first(client)["rating"], json=GOOD)
    assert limited.status_code == 429
    assert _ratings(engine) == 3
    other = app.test_client()
    start(other, make_study(engine).slug)
    assert other.post(_first(other)["rating"], json=GOOD).status_code == 201
    app.extensions["fvlab_engine"].dispose()


def test_finished_session_refuses_new_ratings_but_repeats_work(ready: FlaskClient,
                                                               engine: Engine) -> None:
    last = None
    while trials := ready.get("/api/v1/trials?limit=1").get_json()["trials"]:
        last = trials[0]
        assert ready.post(last["rating"], json=GOOD).status_code == 201
    assert last is not None
    assert ready.post(last["rating"], json=GOOD).status_code == 200
    assert ready.get("/api/v1/session").get_json()["phase"] == "done"
    with engine.connect() as conn:
        assert conn.execute(select(AnnotationSession.status)).scalar_one() == "completed"


def test_label_is_trimmed_and_empty_becomes_null(ready: FlaskClient) -> None:
    stored = ready.post(_first(ready)["rating"], json={**GOOD, "label": "   "}).get_json()
    assert stored["rating"]["label"] is None
    stored = ready.post(_first(ready)["rating"], json={**GOOD, "label": "  a cat "}).get_json()
    assert stored["rating"]["label"] == "a cat"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner,
                                                                max_size=5),
    max_leaves=12,
)
rating_like = st.fixed_dictionaries(
    {}, optional={"interpretable": json_values, "confidence": json_values,
                  "label": json_values, "rt_ms": json_values},
)


def test_no_input_causes_a_server_error(sqlite_url: str) -> None:
    """Arbitrary JSON, rating-shaped or not, and arbitrary bytes: always a 2xx/4xx answer."""
    engine = make_engine(sqlite_url)
    create_schema(engine)
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True, "SECRET_KEY": SECRET,
                      "RATING_RATE_LIMIT": (10_000, 1.0)})
    client = app.test_client()
    start(client, make_study(engine).slug)
    url = _first(client)["rating"]  # once answered, later bodies meet the repeat/409 paths

    @settings(max_examples=150, deadline=None)
    @given(st.one_of(json_values, rating_like), st.binary(max_size=64))
    def check(body: object, raw: bytes) -> None:
        assert client.post(url, json=body).status_code < 500
        assert client.post(url, data=raw, content_type="application/json").status_code < 500

    check()
    app.extensions["fvlab_engine"].dispose()
    engine.dispose()


def test_racing_duplicate_submits_store_one_rating(postgres_url: str) -> None:
    """Eight copies of one submit at the same moment (a frantic double click on a slow line)."""
    import threading

    engine = make_engine(postgres_url)
    create_schema(engine)
    app = create_app({"DATABASE_URL": postgres_url, "TESTING": True, "SECRET_KEY": SECRET})
    client = app.test_client()
    start(client, make_study(engine).slug)
    url = _first(client)["rating"]
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    upcoming: list[list[str]] = []

    def submit() -> None:
        barrier.wait()
        response = client.post(url, json=GOOD)
        statuses.append(response.status_code)
        upcoming.append([t["token"] for t in response.get_json()["upcoming"]])

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 7 + [201]
    assert upcoming == [upcoming[0]] * 8 and len(upcoming[0]) == 2  # the same reply for all
    assert _ratings(engine) == 1
    app.extensions["fvlab_engine"].dispose()
    engine.dispose()
