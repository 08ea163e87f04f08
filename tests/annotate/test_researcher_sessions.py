"""A researcher's sign-in is a row on the server: signing out, a password change or 12 idle hours
end it, whatever copies of the cookie exist. Failed sign-ins are counted per name and address
and per address, so a stranger's guesses never lock the researcher's own address out, and the
address behind the request is the socket's unless the site is told it runs behind proxies.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from annotate import create_app
from annotate.auth import IDLE_LIMIT, LOGIN_MAX_FAILURES
from service.store.accounts import create_user, set_password
from service.store.db import unit_of_work, utcnow
from service.store.models import LoginFailure, ResearcherLogin
from tests.annotate.admin_support import PASSWORD, RESEARCHER, csrf, sign_in
from tests.annotate.conftest import SECRET

STRANGER = "203.0.113.7"


def _copy_of(browser: FlaskClient, app: Flask) -> FlaskClient:
    """Another browser holding a copy of `browser`'s cookie, as a thief would."""
    thief = app.test_client()
    cookie = browser.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    return thief


def _signed_in(browser: FlaskClient) -> bool:
    return browser.get("/admin/studies").status_code == 200


def test_a_copied_cookie_dies_with_the_logout(app: Flask, engine: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, engine)
    thief = _copy_of(browser, app)
    assert _signed_in(thief)
    logout = browser.post("/admin/logout", data={"csrf_token": csrf(browser, "/admin/studies")})
    assert logout.status_code == 302
    assert not _signed_in(browser)
    response = thief.get("/admin/studies")
    assert response.status_code == 302 and response.location.startswith("/admin/login")
    assert thief.get(f"/admin/studies/{1}/progress.json").status_code == 401
    with unit_of_work(engine) as db:
        assert db.scalar(select(func.count()).select_from(ResearcherLogin)) == 0


def test_a_password_change_ends_every_sign_in(app: Flask, engine: Engine) -> None:
    office, laptop, other = app.test_client(), app.test_client(), app.test_client()
    sign_in(office, engine)
    sign_in(laptop, engine)
    sign_in(other, engine, "grace")
    set_password(engine, RESEARCHER, "a-new-long-password")
    assert not _signed_in(office) and not _signed_in(laptop)
    assert _signed_in(other)  # another researcher's sign-in is untouched
    again = app.test_client()
    refused = again.post("/admin/login", data={"name": RESEARCHER, "password": PASSWORD,
                                               "csrf_token": csrf(again)})
    assert refused.status_code == 401
    accepted = again.post("/admin/login", data={"name": RESEARCHER,
                                                "password": "a-new-long-password",
                                                "csrf_token": csrf(again)})
    assert accepted.status_code == 302 and _signed_in(again)


def test_twelve_idle_hours_end_a_sign_in(app: Flask, engine: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, engine)
    assert IDLE_LIMIT == timedelta(hours=12)

    def last_seen(ago: timedelta | None = None) -> list:  # type: ignore[type-arg]
        with unit_of_work(engine) as db:
            logins = list(db.scalars(select(ResearcherLogin)))
            if ago is not None:
                for login in logins:
                    login.last_seen_at = utcnow() - ago
            return [login.last_seen_at for login in logins]

    last_seen(IDLE_LIMIT - timedelta(minutes=5))
    assert _signed_in(browser)
    [seen] = last_seen()
    assert seen > utcnow() - timedelta(minutes=1)  # the visit counted as activity
    last_seen(IDLE_LIMIT + timedelta(minutes=1))
    assert not _signed_in(browser)
    assert last_seen() == []  # the expired sign-in is gone


def test_the_cookie_carries_no_user_id(app: Flask, engine: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, engine)
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    content = serializer.loads(browser.get_cookie("session").value)
    assert "researcher" not in content
    assert set(content) == {"csrf", "login"}


def _attempt(app: Flask, password: str, address: str, name: str = RESEARCHER,
             headers: dict[str, str] | None = None) -> int:
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser.post("/admin/login", headers=headers or {}, data={
        "name": name, "password": password, "csrf_token": csrf(browser)}).status_code


def test_a_strangers_guesses_never_lock_the_researcher_out(app: Flask, engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    for _ in range(LOGIN_MAX_FAILURES):
        assert _attempt(app, "guess-guess", STRANGER) == 401
    assert _attempt(app, PASSWORD, STRANGER) == 429  # the stranger's address is held back
    assert _attempt(app, PASSWORD, "127.0.0.1") == 302  # the researcher's is not


def test_spraying_many_names_from_one_address_is_held_back(app: Flask, engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    for number in range(LOGIN_MAX_FAILURES):
        assert _attempt(app, "guess-guess", STRANGER, name=f"user{number}") == 401
    assert _attempt(app, PASSWORD, STRANGER) == 429
    assert _attempt(app, PASSWORD, "127.0.0.1") == 302


@pytest.mark.parametrize("spraying", [False, True])
def test_forwarded_addresses_are_ignored_without_proxies(app: Flask, engine: Engine,
                                                         spraying: bool) -> None:
    """20 wrong passwords, each claiming another address in X-Forwarded-For (and, spraying,
    each for another name): the socket's address is what is counted and held back."""
    create_user(engine, RESEARCHER, PASSWORD)
    statuses = [_attempt(app, "guess-guess", STRANGER,
                         name=f"user{number}" if spraying else RESEARCHER,
                         headers={"X-Forwarded-For": f"198.51.100.{number}"})
                for number in range(20)]
    assert statuses == [401] * LOGIN_MAX_FAILURES + [429] * (20 - LOGIN_MAX_FAILURES)
    with unit_of_work(engine) as db:
        addresses = {key for key in db.scalars(select(LoginFailure.key))
                     if key.startswith("addr:")}
    assert addresses == {f"addr:{STRANGER}"}


@pytest.fixture
def proxied(db_url: str, engine: Engine) -> Flask:
    """The site told it runs behind one proxy, which sets X-Forwarded-For and -Proto."""
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET,
                      "PROXY_HOPS": 1})
    yield app  # type: ignore[misc]
    app.extensions["fvlab_engine"].dispose()


def test_behind_a_proxy_its_forwarded_address_counts(proxied: Flask, engine: Engine) -> None:
    create_user(engine, RESEARCHER, PASSWORD)
    for number in range(LOGIN_MAX_FAILURES + 1):
        forwarded = {"X-Forwarded-For": f"198.51.100.{number}"}
        assert _attempt(proxied, "guess-guess", "172.18.0.5", headers=forwarded) == 401
    with unit_of_work(engine) as db:
        addresses = {key for key in db.scalars(select(LoginFailure.key))
                     if key.startswith("addr:")}
    assert addresses == {f"addr:198.51.100.{n}" for n in range(LOGIN_MAX_FAILURES + 1)}
    page = proxied.test_client().get("/admin/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in page.headers
