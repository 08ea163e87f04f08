"""Shared fixtures: every database test runs on a temporary SQLite file and on real PostgreSQL.

PostgreSQL isolation is one schema per test (created, then dropped with CASCADE), reached through
`options=-csearch_path=...` in the URL so that subprocesses (workers, gunicorn) can use the same
URL. Without a server the PostgreSQL half skips, unless FVLAB_REQUIRE_POSTGRES=1 makes it fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from service.store.db import make_engine
from service.store.models import Base

POSTGRES_URL = os.environ.get(
    "FVLAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("FVLAB_REQUIRE_POSTGRES") == "1"


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {exc.orig}"
    return None


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"FVLAB_REQUIRE_POSTGRES=1 but {problem}")
    pytest.skip(problem)


@pytest.fixture
def postgres_url(postgres_available: None) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fvlab.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each backend in turn."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def create_schema(engine: Engine) -> None:
    """The full schema, created from the models and stamped at the newest migration.

    Faster than running every migration (which `test_migrations.py` does), and stamped so the
    CLI's schema check accepts the database.
    """
    from service.store.migrate import stamp

    Base.metadata.create_all(engine)
    stamp(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database with the full schema (created from the models)."""
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own FVLAB_* settings or writes into ./var."""
    for name in ("FVLAB_DATABASE_URL", "FVLAB_SECRET_KEY", "FVLAB_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FVLAB_DATA_DIR", str(tmp_path / "var"))
