"""A database that cannot answer or cannot write gets a clear 503, on every route of the site.

Outages, a full disk and a database switched to read-only (a failover to a standby, an operator
freezing writes) reach Flask as SQLAlchemy errors: OperationalError for connection loss and disk
full, InternalError for PostgreSQL's "read-only transaction". The unit of work has already rolled
back, so nothing was half-written; the answer says so, as JSON under /api/ (the trial page's
script retries on 5xx with the same trial token) and as a plain page everywhere else.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import InternalError, OperationalError

API_PREFIX = "/api/"
RETRY_AFTER_SECONDS = "5"
MESSAGE = "the database is unavailable or not accepting changes right now; nothing was saved"


def database_unavailable(_exc: Exception) -> tuple[Response | str, int, dict[str, str]]:
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if request.path.startswith(API_PREFIX):
        return jsonify(error=f"{MESSAGE}; try again shortly", field=None), 503, headers
    page = render_template("study/message.html", title="Please try again in a moment",
                           text=f"Sorry, {MESSAGE}. Reload this page in a few seconds; your "
                                "earlier answers are safe.")
    return page, 503, headers


def init_app(app: Flask) -> None:
    for error in (OperationalError, InternalError):
        app.register_error_handler(error, database_unavailable)
