"""One engine per app, one SQLAlchemy session per request, closed when the request ends."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from annotate import gunicorn_conf
from service.store.db import make_engine

EXTENSION_KEY = "fvlab_engine"
# One pooled connection for each of a process' serving threads, so that no request waits for
# one (48 threads sharing 15 connections let 3 session starts of an overloaded run wait past
# the browser's 30 s, `bench/README.md`), and two beyond them for a console page that reads,
# then writes in a unit of its own.
POOL = {"pool_size": gunicorn_conf.threads, "max_overflow": 2}


def get_engine() -> Engine:
    return current_app.extensions[EXTENSION_KEY]


def get_db() -> Session:
    """The request's session; created on first use."""
    if "db" not in g:
        g.db = Session(get_engine(), expire_on_commit=False)
    return g.db


def end_reads() -> None:
    """End the request's reads and give their connection back to the pool, before a route opens
    a transaction of its own: otherwise a request holds two connections at once, and threads
    that each hold one while they wait for a second (a start queued on the study's lock) can
    drain the pool so that every thread waits for good. The session's objects stay usable."""
    if "db" in g:
        g.db.commit()


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    pool: dict[str, Any] = {} if make_url(url).get_backend_name() == "sqlite" else POOL
    app.extensions[EXTENSION_KEY] = make_engine(url, **pool)
    app.teardown_appcontext(close_db)
