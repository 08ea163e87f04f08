"""Pooled connections: one closed by the server is replaced before use, and `reading` holds no
transaction open, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from service.store.db import make_engine, reading, unit_of_work
from service.store.models import Annotator, Base


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)


def test_a_connection_the_server_closed_is_replaced_at_checkout(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    pooled = _backend_pid(engine)
    with psycopg.connect(make_url(postgres_url).set(drivername="postgresql")
                         .render_as_string(hide_password=False), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pooled,)).fetchone() == (True,)
        for _ in range(50):  # the backend is gone once the server no longer lists it
            gone = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                 (pooled,)).fetchone() == (0,)
            if gone:
                break
            admin.execute("SELECT pg_sleep(0.02)")
    # the pool's one connection is dead; the first use after it must not fail
    assert _backend_pid(engine) not in (0, pooled)
    with reading(engine) as conn:
        assert conn.scalar(text("SELECT 1")) == 1
    engine.dispose()


def test_reading_leaves_no_transaction_open(db_url: str) -> None:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    with reading(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(Annotator)) == 0
        if engine.dialect.name == "postgresql":  # each statement is a transaction of its own
            first, second = (conn.scalar(text("SELECT txid_current()")) for _ in range(2))
            assert first != second
        else:
            assert conn.connection.dbapi_connection.in_transaction is False  # type: ignore
        with unit_of_work(make_engine(db_url), lock=True) as db:  # a writer is not held up
            db.add(Annotator(external_id="w", source="lab"))
        assert conn.scalar(select(func.count()).select_from(Annotator)) == 1
    if engine.dialect.name == "sqlite":  # the pooled connection is back under our own BEGINs
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.isolation_level is None  # type: ignore
    engine.dispose()
