"""Who may use /admin: signed-in researchers only; every form needs its CSRF token; failed
sign-ins are throttled by a count every process shares through the database.

The route list comes from the app's own URL map, so a console route added later is checked
without anyone remembering to add it here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, func, select

from annotate import create_app
from annotate.auth import LOGIN_WINDOW_SECONDS
from service.store.accounts import create_user
from service.store.db import unit_of_work, utcnow
from service.store.models import Job, LoginFailure, Study
from tests.annotate.admin_support import PASSWORD, RESEARCHER, csrf, sign_in
from tests.annotate.conftest import SECRET, make_study, start

PLACEHOLDERS = {"study_id": 1, "job_id": 1, "stimulus_id": 1, "kind": "ratings", "fmt": "csv",
                "action": "close", "sha256": "0" * 64}


def console_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every /admin route but the login page, with real ids filled in."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint == "admin.login":
            continue
        path = rule.rule
        for name, value in PLACEHOLDERS.items():
            path = re.sub(rf"<(?:[^:>]+:)?{name}(?:\([^)]*\))?>", str(value), path)
        assert "<" not in path, f"add a placeholder for {rule.rule}"
        routes.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return routes


def _state(engine: Engine) -> tuple:
    with unit_of_work(engine) as db:
        return (db.scalar(select(Study.status).where(Study.id == 1)),
                db.scalar(select(Job.status).where(Job.id == 1)),
                db.scalar(select(func.count()).select_from(Job)),
                db.scalar(select(func.count()).select_from(Study)))


def _assert_refused(client: FlaskClient, routes: list[tuple[str, str]], token: str) -> None:
    for method, path in routes:
        if method == "GET":
            response = client.get(path)
            if path.endswith(".json"):
                assert response.status_code == 401, path
                assert response.get_json() == {"error": "sign in as a researcher first"}
            else:
                assert response.status_code == 302, path
                assert response.headers["Location"].startswith("/admin/login"), path
            assert "secretjob" not in response.text and "blocks.10" not in response.text
        else:
            without = client.post(path, data={})
            assert without.status_code == 400, (path, without.status_code)
            with_token = client.post(path, data={"csrf_token": token, "job": "1", "name": "x"})
            assert with_token.status_code == 302, path
            assert with_token.headers["Location"].startswith("/admin/login"), path


def test_every_console_route_refuses_anonymous_and_annotators(app: Flask, engine: Engine) -> None:
    info = make_study(engine, status="open")
    routes = console_routes(app)
    assert len(routes) == 15  # update when the console grows
    before = _state(engine)

    anonymous = app.test_client()
    _assert_refused(anonymous, routes, csrf(anonymous))

    annotator = app.test_client()
    start(annotator, info.slug, "?PROLIFIC_PID=p1&STUDY_ID=s&SESSION_ID=x")
    _assert_refused(annotator, routes, csrf(annotator))
    assert _state(engine) == before

    researcher = app.test_client()
    sign_in(researcher, engine)
    for method, path in routes:
        if method == "GET":
            # the sheet's placeholder image (sha256 0…0) belongs to no job: not found, no error
            ok = (404,) if path.endswith(f"/sheet/{PLACEHOLDERS['sha256']}.png") else (200, 302)
            assert researcher.get(path).status_code in ok, path


def test_forms_without_a_valid_csrf_token_change_nothing(client: FlaskClient,
                                                         engine: Engine) -> None:
    info = make_study(engine, status="draft")
    token = sign_in(client, engine)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        refused = client.post(f"/admin/studies/{info.id}/open", data=data)
        assert refused.status_code == 400
        assert "did not come from this site" in refused.text
    assert _state(engine)[0] == "draft"
    by_header = client.post(f"/admin/studies/{info.id}/open", headers={"X-CSRF-Token": token})
    assert by_header.status_code == 302
    assert _state(engine)[0] == "open"
    other_browser = client.application.test_client()
    stolen = other_browser.post(f"/admin/studies/{info.id}/close", data={"csrf_token": token})
    assert stolen.status_code == 400  # a token belongs to one browser's cookie
    assert _state(engine)[0] == "open"


def test_login_logout_and_safe_next(client: FlaskClient, engine: Engine) -> None:
    login_page = client.get("/admin/studies")
    assert login_page.headers["Location"] == "/admin/login?next=/admin/studies"
    no_token = client.post("/admin/login", data={"name": RESEARCHER, "password": PASSWORD})
    assert no_token.status_code == 400
    sign_in(client, engine)
    assert client.get("/admin/studies").status_code == 200
    logout = client.post("/admin/logout", data={"csrf_token": csrf(client, "/admin/studies")})
    assert logout.status_code == 302
    assert client.get("/admin/studies").status_code == 302
    for target, expected in (("/admin/jobs", "/admin/jobs"), ("https://evil.example/", "/admin/"),
                             ("//evil.example/admin", "/admin/"), ("/study/x", "/admin/")):
        browser = client.application.test_client()
        response = browser.post("/admin/login", data={
            "name": RESEARCHER, "password": PASSWORD, "csrf_token": csrf(browser),
            "next": target})
        assert response.headers["Location"] == expected


def test_wrong_password_then_rate_limit(app: Flask, engine: Engine) -> None:
    sign_in(app.test_client(), engine)  # creates the account
    client = app.test_client()
    token = csrf(client)
    for _ in range(5):
        wrong = client.post("/admin/login", data={"name": RESEARCHER, "password": "nope-nope",
                                                  "csrf_token": token})
        assert wrong.status_code == 401
        assert "Wrong name or password" in wrong.text
    right = client.post("/admin/login", data={"name": RESEARCHER, "password": PASSWORD,
                                              "csrf_token": token})
    assert right.status_code == 429
    assert "Too many failed attempts" in right.text
    assert client.get("/admin/studies").status_code == 302  # still signed out


@pytest.mark.parametrize("name", ["ghost", ""])
def test_unknown_user_is_refused(client: FlaskClient, engine: Engine, name: str) -> None:
    response = client.post("/admin/login", data={"name": name, "password": PASSWORD,
                                                 "csrf_token": csrf(client)})
    assert response.status_code == 401
    assert client.get("/admin/jobs").status_code == 302


def _attempt(app: Flask, password: str, name: str = RESEARCHER) -> int:
    """One sign-in from a fresh browser of `app`; the response's status code."""
    browser = app.test_client()
    return browser.post("/admin/login", data={"name": name, "password": password,
                                              "csrf_token": csrf(browser)}).status_code


def _failures(engine: Engine) -> list[tuple[str, datetime]]:
    with unit_of_work(engine) as db:
        rows = db.execute(select(LoginFailure.key, LoginFailure.failed_at)
                          .order_by(LoginFailure.key, LoginFailure.failed_at)).all()
        return [(key, failed_at) for key, failed_at in rows]


def _add_failures(engine: Engine, key: str, at: datetime, count: int = 5) -> None:
    with unit_of_work(engine) as db:
        db.add_all(LoginFailure(key=key, failed_at=at) for _ in range(count))


@pytest.fixture
def second_app(db_url: str, engine: Engine) -> Iterator[Flask]:
    """Another instance of the site on the same database: a second worker process."""
    other = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    yield other
    other.extensions["fvlab_engine"].dispose()


def test_failures_in_one_process_block_the_other(app: Flask, second_app: Flask,
                                                 engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    for wrong_in in (app, second_app, app, second_app, app):
        assert _attempt(wrong_in, "nope-nope") == 401
    assert _attempt(second_app, PASSWORD) == 429  # 2 failures here, 3 there: 5 in all
    assert _attempt(app, PASSWORD) == 429
    assert len(_failures(engine)) == 10  # one row per failure under each of its two keys


def test_the_block_lifts_after_the_window(app: Flask, engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    window = timedelta(seconds=LOGIN_WINDOW_SECONDS)
    _add_failures(engine, f"name:{RESEARCHER}@127.0.0.1",
                  utcnow() - window + timedelta(minutes=1))
    assert _attempt(app, PASSWORD) == 429  # still inside the window
    with unit_of_work(engine) as db:
        db.execute(delete(LoginFailure))
    _add_failures(engine, f"name:{RESEARCHER}@127.0.0.1",
                  utcnow() - window - timedelta(seconds=1))
    assert _attempt(app, PASSWORD) == 302


def test_configured_limits_and_a_tiny_window(db_url: str, engine: Engine) -> None:
    quick = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET,
                        "LOGIN_MAX_FAILURES": 1, "LOGIN_WINDOW_SECONDS": 2.0})
    try:
        create_user(engine, RESEARCHER, PASSWORD)
        assert _attempt(quick, "nope-nope") == 401
        failed_at = time.monotonic()
        assert _attempt(quick, PASSWORD) == 429
        time.sleep(max(0.0, failed_at + 2.2 - time.monotonic()))
        assert _attempt(quick, PASSWORD) == 302
    finally:
        quick.extensions["fvlab_engine"].dispose()


def test_success_clears_the_count(app: Flask, second_app: Flask, engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    _add_failures(engine, "name:someone-else", utcnow(), count=2)
    for _ in range(4):
        assert _attempt(app, "nope-nope", name=RESEARCHER.upper()) == 401  # names fold case
    assert [key for key, _ in _failures(engine)].count(f"name:{RESEARCHER}@127.0.0.1") == 4
    assert _attempt(second_app, PASSWORD) == 302  # clears the count the other process made
    assert [key for key, _ in _failures(engine)] == ["name:someone-else"] * 2
    for _ in range(4):  # a fresh allowance: without the clearing, the first of these is refused
        assert _attempt(app, "nope-nope") == 401
    assert _attempt(app, PASSWORD) == 302


def test_failures_older_than_the_window_are_deleted(app: Flask, engine: Engine) -> None:
    window = timedelta(seconds=LOGIN_WINDOW_SECONDS)
    recent = utcnow() - window + timedelta(minutes=1)
    _add_failures(engine, "addr:10.0.0.1", utcnow() - window - timedelta(seconds=1), count=3)
    _add_failures(engine, "name:old", utcnow() - timedelta(days=2), count=2)
    _add_failures(engine, "name:recent", recent, count=1)
    assert _attempt(app, "nope-nope", name="ghost") == 401
    keys = [key for key, _ in _failures(engine)]
    assert keys == ["addr:127.0.0.1", "name:ghost@127.0.0.1", "name:recent"]


@pytest.mark.parametrize("name", ["x" * 1000, "re\x00searcher", "bad name"])
def test_a_name_no_account_can_have_counts_by_address_only(app: Flask, engine: Engine,
                                                           name: str) -> None:
    for _ in range(5):
        assert _attempt(app, "nope-nope", name=name) == 401
    assert _attempt(app, PASSWORD, name=name) == 429
    assert {key for key, _ in _failures(engine)} == {"addr:127.0.0.1"}


def test_trying_a_study_keeps_the_researcher_signed_in(client: FlaskClient,
                                                       engine: Engine) -> None:
    sign_in(client, engine)
    info = make_study(engine, practice=0)
    start(client, info.slug)
    assert client.get("/api/v1/trials?limit=1").get_json()["trials"]
    assert client.get("/admin/studies").status_code == 200
