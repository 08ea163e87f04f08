"""Engines and sessions for SQLite (embedded default) and PostgreSQL (at scale).

The rest of fvlab speaks plain SQLAlchemy 2.0 and never checks which backend it is on, except
where locking differs: a worker claiming a shard asks for `immediate(engine)` so that SQLite
takes its write lock at BEGIN (PostgreSQL uses `FOR UPDATE SKIP LOCKED` instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from select import POLLIN, poll
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000
AUTOCOMMIT = "AUTOCOMMIT"  # SQLAlchemy's isolation level for statements outside a transaction


def utcnow() -> datetime:
    """Timezone-aware UTC now; every timestamp fvlab stores is UTC."""
    return datetime.now(UTC)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """The span from `start` to `end` in seconds, or None when either is missing."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys and a busy timeout on every connection; explicit BEGIN.

    pysqlite's own transaction handling defers BEGIN and ignores our choice of lock mode, so it
    is switched off and SQLAlchemy's `begin` event emits BEGIN itself (the documented recipe).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        # A connection lent out by `reading` comes back with SQLAlchemy's reset of its isolation
        # level, which for pysqlite means isolation_level "": pysqlite's own BEGINs again.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == AUTOCOMMIT:
            return  # `reading`: every statement its own transaction
        mode = "IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`, creating the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _drop_closed_connections(engine)
    return engine


def _drop_closed_connections(engine: Engine) -> None:
    """Before a pooled PostgreSQL connection is handed out, check that the server has not closed
    it (a restart, a failover, an administrator's `pg_terminate_backend`); a closed one is
    replaced by a new connection, so the first request after the server is back succeeds.

    The check is local: an idle connection is sent nothing (fvlab never LISTENs), so a socket
    with anything to read holds the server's farewell or its end of file (or, rarely, news of
    a setting the server reloaded, which costs no more than a new connection). SQLAlchemy's
    `pool_pre_ping` finds the same by a round trip to the server on every checkout, which cost
    a fifth of the CPU of an annotator's trial in a load run (`bench/README.md`).
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.closed:
            raise DisconnectionError("the connection was closed")
        poller = poll()
        poller.register(dbapi_connection.fileno(), POLLIN)
        if poller.poll(0):
            raise DisconnectionError("the server closed the connection")


def immediate(engine: Engine) -> Engine:
    """The same engine, but SQLite transactions take the write lock at BEGIN.

    Use it for read-then-write units (claiming a shard, reserving trials): a deferred SQLite
    transaction that reads and then writes fails at once with "database is locked" when another
    writer got in between, whatever the busy timeout.
    """
    return engine.execution_options(sqlite_immediate=True)


def snapshot(engine: Engine) -> Engine:
    """The same engine, but a transaction's statements all read one snapshot of the database:
    PostgreSQL's REPEATABLE READ (its default, READ COMMITTED, takes a new snapshot for each
    statement); a SQLite transaction always reads one. For reads that several statements make
    together; a writing transaction at this level may fail where another wrote first."""
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="REPEATABLE READ")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for single-statement reads, outside any transaction.

    One statement reads a consistent snapshot by itself, and without a transaction around it
    PostgreSQL takes one round trip instead of three (BEGIN, the query, ROLLBACK): the hot
    read routes of the annotation site use it.
    """
    with engine.connect().execution_options(isolation_level=AUTOCOMMIT) as conn:
        yield conn


@contextmanager
def unit_of_work(engine: Engine, *, lock: bool = False) -> Iterator[Session]:
    """One transaction: commits on success, rolls back on any error."""
    bind = immediate(engine) if lock else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (the result of such a statement is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount
