"""The schema: Alembic migrations run programmatically, and the one check every verb relies on.

Alembic is found by its script location (the `migrations/` folder beside this package), so the
store never imports `migrations` as a package. `require_current` is the single place that
decides whether a database can be used: unreachable, empty or at another revision, each gets one
line that says what to do.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class SchemaError(RuntimeError):
    """The database cannot be used as it is; the message is one line meant for the user."""


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url` that needs no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (alembic's own `check`)."""
    command.check(alembic_config(database_url))


@cache
def head_revision() -> str:
    """The revision this fvlab's code needs."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def describe(engine: Engine) -> str:
    """The database's address for messages, without its password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def unreachable(engine: Engine, exc: DBAPIError) -> SchemaError:
    """One line for a database that refused or dropped the connection."""
    text = str(exc.orig if exc.orig is not None else exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    reason = first.rsplit("failed: ", 1)[-1].strip() or first  # psycopg: "... failed: <reason>"
    return SchemaError(f"cannot reach the database at {describe(engine)}: {reason}")


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: no schema yet); SchemaError when unreachable."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise unreachable(engine, exc) from exc


def require_current(engine: Engine) -> None:
    """Refuse a database that is unreachable, has no schema, or is at another revision."""
    revision = current_revision(engine)
    if revision is None:
        raise SchemaError(f"{describe(engine)} has no schema: run `fvlab db upgrade`")
    needed = head_revision()
    if revision != needed:
        raise SchemaError(
            f"the schema of {describe(engine)} is at revision {revision}, this fvlab needs "
            f"{needed}: run `fvlab db upgrade`"
        )


def stamp(database_url: str, revision: str = "head") -> None:
    """Record `revision` as the schema's revision without running migrations."""
    command.stamp(alembic_config(database_url), revision)
