"""Researcher login for `/admin`: who is signed in, CSRF tokens, and a brake on password guessing.

Protection is default-deny: `protect(blueprint)` makes every route of the blueprint (and of the
blueprints nested in it) refuse anyone who is not a signed-in researcher, except the few named
public endpoints, so a route added later cannot forget its check. Annotators never have an
account; their cookie holds only their session token, which grants nothing here.

Every state-changing request (POST, also the login form itself) must carry the CSRF token kept
in the signed cookie, as the form field `csrf_token` or the header `X-CSRF-Token`.

Failed logins are counted per client address and per user name in this process's memory; after
`LOGIN_MAX_FAILURES` within `LOGIN_WINDOW_SECONDS` further attempts are refused before the
password is even checked. Behind several worker processes each counts its own attempts, which
still caps guessing at a small multiple of the limit.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, g, jsonify, redirect, request, url_for
from flask import session as cookie
from werkzeug.wrappers import Response as WerkzeugResponse

from annotate.database import get_db
from service.models import User

USER_KEY = "researcher"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_SECONDS = 300.0
THROTTLE_KEY = "fvlab_login_throttle"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class LoginThrottle:
    """Recent failed logins per key (client address, user name), forgotten after a window."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures[key]
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def blocked(self, keys: Iterable[str]) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(key, now)) >= self.max_failures for key in keys)

    def failed(self, keys: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


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
    """The keys a login attempt is counted under: the client's address and the name tried."""
    return [f"addr:{request.remote_addr or '?'}", f"name:{name.lower()}"]


def log_in(user: User) -> None:
    """Start a fresh signed-in cookie (a new CSRF token too, so nothing from before survives)."""
    cookie.clear()
    cookie[USER_KEY] = user.id
    cookie[CSRF_KEY] = secrets.token_urlsafe(32)


def log_out() -> None:
    cookie.clear()


def current_researcher() -> User | None:
    """The signed-in researcher, or None; an id of a deleted account counts as signed out."""
    if "researcher" not in g:
        user_id = cookie.get(USER_KEY)
        g.researcher = get_db().get(User, user_id) if isinstance(user_id, int) else None
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
    """A post-login destination inside /admin only, never another site (no open redirect)."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
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
