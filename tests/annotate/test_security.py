"""Hardening, checked on the whole site as the app's own URL map lists it.

Every route answers with the security headers (pages, JSON, images, errors and redirects alike);
cookies are HttpOnly and SameSite=Lax, and Secure when the request came over TLS; the site will
not start outside debug without a secret key; every route that is not an annotator's, the health
check or the login page refuses both an anonymous browser and an annotator's session; and the
annotators' external ids leave the server only in an export that asks for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from annotate import create_app
from annotate.security import SECURITY_HEADERS
from service.cli import fvlab
from service.config import ConfigError
from service.studies.export import EXTERNAL_ID_COLUMNS, ratings_frame, sessions_frame
from tests.annotate.admin_support import csrf, sign_in
from tests.annotate.conftest import SECRET, StudyInfo, answer_all, make_study, start

ANNOTATOR_BLUEPRINTS = ("study", "api", "images")
PUBLIC_ENDPOINTS = {"health.healthz", "static", "admin.login"}
PROLIFIC_ID = "PID5ecret42"
RESEARCHER = "qzresearcher"  # distinctive, so finding it anywhere means a leak
PROLIFIC_QUERY = f"?PROLIFIC_PID={PROLIFIC_ID}&STUDY_ID=s1&SESSION_ID=x1"
PLACEHOLDER = re.compile(r"<(?:[^:>]+:)?(\w+)(?:\([^)]*\))?>")


def _kind(endpoint: str) -> str:
    """annotator | public | researcher: the only three kinds of route the site may have."""
    if endpoint in PUBLIC_ENDPOINTS:
        return "public"
    if endpoint.split(".")[0] in ANNOTATOR_BLUEPRINTS:
        return "annotator"
    assert endpoint.startswith("admin."), f"{endpoint}: a route outside every known blueprint"
    return "researcher"


def _routes(app: Flask, values: dict[str, str]) -> list[tuple[str, str, str]]:
    """(kind, method, path) of every rule, its variables filled from `values`."""
    routes = []
    for rule in app.url_map.iter_rules():
        missing = set(PLACEHOLDER.findall(rule.rule)) - set(values)
        assert not missing, f"no value for {missing} in {rule.rule}"
        path = PLACEHOLDER.sub(lambda match: values[match[1]], rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((_kind(rule.endpoint), method, path))
    return routes


def _values(info: StudyInfo, trial_token: str) -> dict[str, str]:
    return {"slug": info.slug, "token": trial_token, "filename": "site.css",
            "study_id": str(info.id), "job_id": "1",
            "stimulus_id": str(info.stimulus_ids["basis"][0]),
            "kind": "ratings", "fmt": "csv", "action": "close", "part": "queries",
            "sha256": "0" * 64}


def _annotator(app: Flask, info: StudyInfo) -> tuple[FlaskClient, str]:
    client = app.test_client()
    start(client, info.slug, PROLIFIC_QUERY)
    token = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]["token"]
    return client, token


def _call(client: FlaskClient, method: str, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return client.open(path, method=method, **kwargs)


def test_every_route_sends_the_security_headers(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    annotator, trial_token = _annotator(app, info)
    researcher = app.test_client()
    sign_in(researcher, engine)
    anonymous = app.test_client()
    clients = {"annotator": annotator, "researcher": researcher, "public": anonymous}
    routes = _routes(app, _values(info, trial_token))
    assert {kind for kind, _, _ in routes} == {"annotator", "researcher", "public"}
    # POSTs go without a body or CSRF token: refused, so this walk changes no study or job.
    for kind, method, path in routes + [("public", "GET", "/no/such/page"),
                                        ("public", "GET", "/api/v1/nothing")]:
        response = _call(clients[kind], method, path)
        assert response.status_code < 500, (method, path, response.status_code)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (method, path, name)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_no_researcher_response_is_cached(app: Flask, engine: Engine) -> None:
    """Console pages, progress.json, stimulus images and exports (and the refusals and
    redirects of the console's routes) all say `Cache-Control: no-store`."""
    info = make_study(engine)
    _, trial_token = _annotator(app, info)
    researcher = app.test_client()
    sign_in(researcher, engine)
    routes = [(method, path) for kind, method, path in _routes(app, _values(info, trial_token))
              if kind == "researcher" or path == "/admin/login"]
    routes += [("GET", f"/admin/studies/{info.id}/export/{kind}.{fmt}")
               for kind in ("ratings", "sessions") for fmt in ("csv", "parquet")]
    for client in (researcher, app.test_client()):
        for method, path in routes:
            response = _call(client, method, path)
            assert response.headers.get("Cache-Control") == "no-store", (method, path)
    assert researcher.get(f"/admin/studies/{info.id}/export/ratings.csv").status_code == 200


def _cookie_flags(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


ARRIVALS = {  # how a request arrives: (proxies the site trusts, base URL, headers, TLS?)
    "http": (0, "http://localhost", {}, False),
    "direct TLS": (0, "https://localhost", {}, True),
    "TLS at the proxy": (1, "http://localhost", {"X-Forwarded-Proto": "https"}, True),
    "forged header, no proxy": (0, "http://localhost", {"X-Forwarded-Proto": "https"}, False),
}


@pytest.mark.parametrize("arrival", list(ARRIVALS))
def test_cookie_flags(db_url: str, engine: Engine, arrival: str) -> None:
    hops, base_url, headers, https = ARRIVALS[arrival]
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET,
                      "PROXY_HOPS": hops})
    info = make_study(engine)
    client = app.test_client()
    client.get(f"/study/{info.slug}", headers=headers, base_url=base_url)
    started = client.post(f"/study/{info.slug}/start", data={"consent": "yes"}, headers=headers,
                          base_url=base_url)
    researcher = app.test_client()
    login_page = researcher.get("/admin/login", headers=headers, base_url=base_url)
    for response in (started, login_page):
        cookies = response.headers.getlist("Set-Cookie")
        assert cookies, response.request.path
        for cookie in cookies:
            flags = _cookie_flags(cookie)
            assert "httponly" in flags and "samesite=lax" in cookie.lower(), cookie
            assert ("secure" in flags) == https, cookie
    if https:
        assert started.headers["Strict-Transport-Security"].startswith("max-age=")
    else:
        assert "Strict-Transport-Security" not in started.headers
    app.extensions["fvlab_engine"].dispose()


def test_no_start_without_a_secret_key_outside_debug(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="FVLAB_SECRET_KEY"):
        create_app({"DATABASE_URL": sqlite_url})
    for relaxed in ({"DEBUG": True}, {"TESTING": True}, {"SECRET_KEY": SECRET}):
        create_app({"DATABASE_URL": sqlite_url, **relaxed}).extensions["fvlab_engine"].dispose()


def _refused(response, method: str) -> bool:  # type: ignore[no-untyped-def]
    """A researcher route's refusal: sign-in redirect, 401 JSON, or 400 for a POST with no
    CSRF token (the guard checks it before anything else)."""
    if response.status_code in (301, 302, 303, 307, 308):
        return response.headers["Location"].startswith("/admin/login")
    return response.status_code == 401 or (method == "POST" and response.status_code == 400)


def test_researcher_routes_refuse_anonymous_and_annotators(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    annotator, trial_token = _annotator(app, info)
    anonymous = app.test_client()
    researcher_routes = [(m, p) for kind, m, p in _routes(app, _values(info, trial_token))
                         if kind == "researcher"]
    assert len(researcher_routes) >= 10
    for client in (anonymous, annotator):
        token = csrf(client)  # a valid CSRF token for this browser: only the sign-in is missing
        for method, path in researcher_routes:
            for extra in ({}, {"data": {"csrf_token": token}}) if method == "POST" else ({},):
                response = _call(client, method, path, **extra)
                assert _refused(response, method), (method, path, response.status_code)
                assert info.job_name not in response.text and "blocks.10" not in response.text


def test_annotator_routes_never_show_researcher_data(app: Flask, engine: Engine) -> None:
    info = make_study(engine)
    sign_in(app.test_client(), engine, RESEARCHER)  # an account whose name must not leak
    other, _ = _annotator(app, make_study(engine))
    annotator = app.test_client()
    start(annotator, info.slug)
    token = annotator.get("/api/v1/trials?limit=1").get_json()["trials"][0]["token"]
    hidden = [info.job_name, info.model, info.layer, "efficientnet", RESEARCHER, PROLIFIC_ID]
    for kind, method, path in _routes(app, _values(info, token)):
        if kind != "annotator" or method != "GET":
            continue
        response = annotator.get(path)
        text = response.get_data().decode("latin-1") + str(response.headers)
        for secret in hidden:
            assert secret not in text, (path, secret)
    assert other.get("/api/v1/session").status_code == 200


def test_external_ids_only_in_exports_that_ask(engine: Engine, db_url: str,
                                               tmp_path: Path) -> None:
    info = make_study(engine, practice=0)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    client = app.test_client()
    start(client, info.slug, PROLIFIC_QUERY)
    answer_all(client)
    researcher = app.test_client()
    sign_in(researcher, engine)
    for kind in ("ratings", "sessions"):
        download = researcher.get(f"/admin/studies/{info.id}/export/{kind}.csv")
        assert download.status_code == 200 and PROLIFIC_ID not in download.text
    assert PROLIFIC_ID not in ratings_frame(engine).to_csv()
    assert PROLIFIC_ID not in sessions_frame(engine).to_csv()
    assert set(EXTERNAL_ID_COLUMNS).isdisjoint(sessions_frame(engine).columns)
    assert PROLIFIC_ID in sessions_frame(engine, include_external_ids=True).to_csv()

    runner = CliRunner()
    env = {"FVLAB_DATABASE_URL": db_url}
    for flag, expected in (([], False), (["--include-external-ids"], True)):
        out = tmp_path / f"sessions{len(flag)}.csv"
        result = runner.invoke(fvlab, ["export", "sessions", "-o", str(out), *flag], env=env)
        assert result.exit_code == 0, result.output
        assert (PROLIFIC_ID in out.read_text()) == expected
    out = tmp_path / "ratings.csv"
    result = runner.invoke(fvlab, ["export", "ratings", "-o", str(out)], env=env)
    assert result.exit_code == 0 and PROLIFIC_ID not in out.read_text()
    app.extensions["fvlab_engine"].dispose()
