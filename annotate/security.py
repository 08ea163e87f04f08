"""HTTP hardening shared by every route: headers, cookie flags and the secret-key rule.

The policy forbids inline script, framing and MIME sniffing. Cookies are HttpOnly and
SameSite=Lax always, and Secure whenever the request arrived over TLS (directly or, behind a
proxy, as told by X-Forwarded-Proto through ProxyFix), so one configuration serves both a laptop
demo on http://127.0.0.1 and a deployment behind an HTTPS proxy.

X-Forwarded-* headers are trusted only from the `PROXY_HOPS` proxies the site is told it runs
behind (`FVLAB_PROXY_HOPS`, default 0). Any client can send those headers; trusted blindly, they
would let it pick the address the sign-in throttle and the start limit count it under.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from service.config import ConfigError

# MTurk's externalSubmit is a form POST to the worker's own turkSubmitTo host.
FORM_TARGETS = "'self' https://www.mturk.com https://workersandbox.mturk.com"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    f"form-action {FORM_TARGETS}"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class TlsAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag set per request."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def require_secret_key(app: Flask) -> None:
    """Outside debug and tests, refuse to start with no real FVLAB_SECRET_KEY."""
    if app.config.get("SECRET_KEY") or app.debug or app.testing:
        return
    raise ConfigError(
        "FVLAB_SECRET_KEY is not set; the site refuses to start without it outside debug "
        "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
    )


def init_app(app: Flask) -> None:
    require_secret_key(app)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = TlsAwareSessionInterface()
    hops = int(app.config.get("PROXY_HOPS", 0))
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.after_request(_add_headers)
