"""One engine per app, one SQLAlchemy session per request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from service.store.db import make_engine

EXTENSION_KEY = "fvlab_engine"


def get_engine() -> Engine:
    return current_app.extensions[EXTENSION_KEY]


def get_db() -> Session:
    """The request's session; created on first use."""
    if "db" not in g:
        g.db = Session(get_engine(), expire_on_commit=False)
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = make_engine(app.config["DATABASE_URL"])
    app.teardown_appcontext(close_db)
