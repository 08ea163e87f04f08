"""Stored timestamps read back as aware UTC on both backends, whatever the connection's zone.

SQLite keeps no zone and PostgreSQL answers in the session's TimeZone; the column type
normalizes both, so code can compare stored times with `utcnow()` and subtract them directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from service.store.db import make_engine, seconds_between, unit_of_work
from service.store.models import LoginFailure

MOMENT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _in_new_york(db_url: str) -> Engine:
    """Another engine on the same database whose PostgreSQL sessions use a non-UTC zone."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        options = f"{url.query.get('options', '')} -cTimeZone=America/New_York".strip()
        url = url.update_query_dict({"options": options})
    return make_engine(url.render_as_string(hide_password=False))


def test_stored_times_read_back_as_aware_utc(engine: Engine, db_url: str) -> None:
    with unit_of_work(engine) as db:
        db.add(LoginFailure(key="addr:x", failed_at=MOMENT))
    other = _in_new_york(db_url)
    try:
        with unit_of_work(other) as db:
            read = db.scalar(select(LoginFailure.failed_at))
            latest = db.scalar(select(func.max(LoginFailure.failed_at)))
    finally:
        other.dispose()
    for value in (read, latest):
        assert value == MOMENT and value.utcoffset() == timedelta(0)
    assert seconds_between(read, MOMENT + timedelta(seconds=90)) == 90.0
    assert seconds_between(None, MOMENT) is None
