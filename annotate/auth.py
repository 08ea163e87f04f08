"""Researcher login for `/admin`: who is signed in, CSRF tokens, and a brake on password guessing.

Protection is default-deny: `protect(blueprint)` makes every route of the blueprint (and of the
blueprints nested in it) refuse anyone who is not a signed-in researcher, except the few named
public endpoints, so a route added later cannot forget its check. Annotators never have an
account; their cookie holds only their session token, which grants nothing here.

Every state-changing request (POST, also the login form itself) must carry the CSRF token kept
in the signed cookie, as the form field `csrf_token` or the header `X-CSRF-Token`.

A sign-in is a row on the server (`service.store.accounts`): the cookie carries only its random
token, so signing out, a password change or `IDLE_LIMIT` without a visit end it for every copy
of the cookie. Every console response is marked `Cache-Control: no-store`, so no page, progress
figure or export stays in a browser's or proxy's cache.

Failed logins are counted in the `login_failures` table per client address, and per user name
tried from that address; after `LOGIN_MAX_FAILURES` within `LOGIN_WINDOW_SECONDS` under either
key, further attempts are refused before the password is even checked. A stranger guessing a
researcher's password therefore only holds back the stranger's own address, while one address
spraying many names is held back all the same. The count lives in the database, not in a
process's memory, so every gunicorn worker on every machine shares it and a restart forgets
nothing; its clock is therefore wall-clock UTC. Each failure also deletes everyone's rows older
than the window, which keeps the table small.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, g, jsonify, redirect, request, url_for
from flask import session as cookie
from sqlalchemy import delete, func, select
from werkzeug.wrappers import Response as WerkzeugResponse

from annotate.database import get_engine
from service.store.accounts import NAME_PATTERN, end_login, signed_in_user, start_login
from service.store.db import unit_of_work, utcnow
from service.store.models import LOGIN_KEY_MAX_CHARS, LoginFailure, User

LOGIN_KEY = "login"
IDLE_LIMIT = timedelta(hours=12)
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_SECONDS = 300.0
THROTTLE_KEY = "fvlab_login_throttle"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class LoginThrottle:
    """Recent failed logins per key (client address, user name), forgotten after a window.

    The rows live in the app's database, so the count is shared by every process using it.
    """

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)

    def blocked(self, keys: Iterable[str]) -> bool:
        recent = (select(func.count())
                  .where(LoginFailure.key.in_(_stored(keys)),
                         LoginFailure.failed_at > utcnow() - self.window)
                  .group_by(LoginFailure.key))
        with unit_of_work(get_engine()) as db:
            return any(count >= self.max_failures for count in db.scalars(recent))

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failure under each key, and drop every key's rows older than the window.

        Rows another process is already deleting are skipped rather than waited for
        (PostgreSQL's SKIP LOCKED; SQLite has one writer at a time anyway), so concurrent
        failures never deadlock over the clean-up and every failure is counted.
        """
        now = utcnow()
        expired = (select(LoginFailure.id)
                   .where(LoginFailure.failed_at <= now - self.window)
                   .with_for_update(skip_locked=True))
        with unit_of_work(get_engine(), lock=True) as db:
            db.execute(delete(LoginFailure).where(LoginFailure.id.in_(expired)))
            db.add_all(LoginFailure(key=key, failed_at=now) for key in _stored(keys))

    def succeeded(self, keys: Iterable[str]) -> None:
        with unit_of_work(get_engine()) as db:
            db.execute(delete(LoginFailure).where(LoginFailure.key.in_(_stored(keys))))


def _stored(keys: Iterable[str]) -> list[str]:
    """The keys as the table holds them: a name longer than any account's is cut to fit."""
    return [key[:LOGIN_KEY_MAX_CHARS] for key in keys]


def init_app(app: Flask) -> None:
    """Give the app its login throttle (limits configurable for tests)."""
    app.extensions[THROTTLE_KEY] = LoginThrottle(
        app.config.get("LOGIN_MAX_FAILURES", LOGIN_MAX_FAILURES),
        app.config.get("LOGIN_WINDOW_SECONDS", LOGIN_WINDOW_SECONDS),
    )
    app.jinja_env.globals["csrf_token"] = csrf_token


def throttle() -> LoginThrottle:
    return current_app.extensions[THROTTLE_KEY]


def login_keys(name: str) -> list[str]:
    """The keys a login attempt is counted under: the client's address, and the name tried from
    that address when it could be an account's (anything else, NUL bytes included, never
    reaches the database)."""
    address = request.remote_addr or "?"
    keys = [f"addr:{address}"]
    if NAME_PATTERN.match(name):
        keys.append(f"name:{name.lower()}@{address}")
    return keys


def log_in(user: User) -> None:
    """Start a sign-in and a fresh cookie holding only its token (and a new CSRF token, so
    nothing from before survives)."""
    token = start_login(get_engine(), user.id)
    cookie.clear()
    cookie[LOGIN_KEY] = token
    cookie[CSRF_KEY] = secrets.token_urlsafe(32)


def log_out() -> None:
    """End the sign-in on the server, then forget it in this browser."""
    token = cookie.get(LOGIN_KEY)
    if isinstance(token, str):
        end_login(get_engine(), token)
    cookie.clear()


def current_researcher() -> User | None:
    """The signed-in researcher, or None: no sign-in token, or one that was ended or idle."""
    if "researcher" not in g:
        token = cookie.get(LOGIN_KEY)
        g.researcher = (signed_in_user(get_engine(), token, IDLE_LIMIT)
                        if isinstance(token, str) else None)
    return g.researcher


def csrf_token() -> str:
    """This browser's CSRF token, made on first use (templates call it for every form)."""
    token = cookie.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        cookie[CSRF_KEY] = token
    return token


def csrf_ok() -> bool:
    expected = cookie.get(CSRF_KEY)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), sent.encode())


def safe_next(target: str | None) -> str:
    """A post-login destination inside /admin only, never another site (no open redirect) and
    never text a header cannot carry (control characters such as CR and LF)."""
    if not target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return url_for("admin.index")
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
        return target
    return url_for("admin.index")


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


def protect(blueprint: Blueprint, public: Iterable[str]) -> None:
    """Require a signed-in researcher on every route of `blueprint` except `public` endpoints,
    and a valid CSRF token on every unsafe request."""
    public_endpoints = frozenset(public)

    def guard() -> WerkzeugResponse | tuple[WerkzeugResponse, int] | None:
        if request.method in UNSAFE_METHODS and not csrf_ok():
            abort(400, description="The form expired or did not come from this site; "
                                   "reload the page and try again.")
        if request.endpoint in public_endpoints or current_researcher() is not None:
            return None
        if _wants_json():
            return jsonify(error="sign in as a researcher first"), 401
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))

    blueprint.before_request(guard)
    blueprint.after_request(_no_store)


def _no_store(response: WerkzeugResponse) -> WerkzeugResponse:
    """Nothing a researcher is sent is kept by a browser's or a proxy's cache."""
    response.headers["Cache-Control"] = "no-store"
    return response
