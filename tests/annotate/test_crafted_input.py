"""Crafted input gets a clear 4xx, never a server error: digits that `str.isdigit` accepts and
`int` refuses (², ¹, ①), ids beyond any database integer, and header-breaking redirect targets.

The app runs with TESTING, so an unhandled exception would surface here as the exception itself.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine, func, select

from service.store.models import Study
from tests.annotate.admin_support import PASSWORD, RESEARCHER, csrf, sign_in
from tests.annotate.conftest import make_study, start

ODD_DIGITS = ["²", "¹", "①", "٣", "𝟙", "1²"]
HUGE = "9" * 23


def test_trial_limits_that_are_not_plain_numbers(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    client = app.test_client()
    start(client, info.slug)
    for limit in [*ODD_DIGITS, HUGE, "0", "51", "-1", " 5", ""]:
        response = client.get("/api/v1/trials", query_string={"limit": limit})
        assert response.status_code == 400, limit
        assert response.get_json() == {"error": "limit must be 1…50", "field": "limit"}
    assert client.get("/api/v1/trials?limit=50").status_code == 200


def test_study_form_with_job_ids_that_are_not_plain_numbers(app: Flask, engine: Engine) -> None:
    make_study(engine, status="open")
    researcher = app.test_client()
    token = sign_in(researcher, engine)
    for job in [*ODD_DIGITS, HUGE, "-1"]:
        response = researcher.post("/admin/studies", data={
            "csrf_token": token, "job": job, "name": "Pictures", "ratings_per_item": "3",
            "trials_per_session": "10", "catch_every": "5", "practice_count": "1",
            "question": "Is it a thing?"})
        assert response.status_code == 400, job
        assert "jobs:" in response.text or "no finished job" in response.text, job
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Study)) == 1


def test_ids_beyond_any_database_integer_are_not_found(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    researcher = app.test_client()
    token = sign_in(researcher, engine)
    for path in (f"/admin/studies/{HUGE}", f"/admin/studies/{HUGE}/progress.json",
                 f"/admin/studies/{HUGE}/stimuli", f"/admin/studies/{info.id}/stimuli/{HUGE}.png",
                 f"/admin/studies/{HUGE}/export/ratings.csv", f"/admin/studies/{2**31}"):
        assert researcher.get(path).status_code == 404, path
    for path in (f"/admin/jobs/{HUGE}/cancel", f"/admin/studies/{HUGE}/close"):
        assert researcher.post(path, data={"csrf_token": token}).status_code == 404, path
    assert researcher.get(f"/admin/studies/{info.id}").status_code == 200


def test_a_next_target_with_line_breaks_goes_to_the_console(app: Flask, engine: Engine) -> None:
    sign_in(app.test_client(), engine, RESEARCHER)  # the account
    for target in ("/admin/jobs\r\nSet-Cookie: x=1", "/admin/jobs\nX: 1", "/admin/\x7fjobs",
                   "/admin/jobs\r"):
        browser = app.test_client()
        response = browser.post("/admin/login", data={
            "name": RESEARCHER, "password": PASSWORD, "csrf_token": csrf(browser),
            "next": target})
        assert response.status_code == 302 and response.headers["Location"] == "/admin/"
        again = browser.get("/admin/login", query_string={"next": target})
        assert again.status_code == 302 and again.headers["Location"] == "/admin/"
