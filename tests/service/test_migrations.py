"""Models and migrations agree, and the migrations go up, down and up again on both backends."""

from __future__ import annotations

from sqlalchemy import inspect

from service.store.db import make_engine
from service.store.migrate import check, downgrade, upgrade
from service.store.models import Base


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_check(db_url: str) -> None:
    upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)
    check(db_url)  # raises when autogenerate would find a difference
    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)
    check(db_url)
