"""Storage with no room left: 503 with a clear message, nothing half-written, nothing lost.

Three real full-storage conditions, no mocks:
- SQLite capped at its current size by `PRAGMA max_page_count` on every connection of the site:
  SQLite's own SQLITE_FULL ("database or disk is full") once a write needs a new page;
- SQLite on a tmpfs filled to the last byte: every commit must append to the WAL, so every write
  fails with ENOSPC, which SQLite also reports as SQLITE_FULL;
- PostgreSQL with the tables an annotator writes (annotators, sessions, trials, ratings and
  their indexes) in a tablespace on a filled tmpfs: DiskFull (SQLSTATE 53100) once one of them
  must grow.
Room still free inside existing pages keeps being used, so a crowd of annotators and then
newcomers use the site until the store refuses each of them; every refusal must come from the
full storage (the engine's own error is checked). The refused rating and another newcomer are
then sent again, and nothing may change. Once room is given back, the same rating with the same
trial token is stored exactly once.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, func, select, text
from werkzeug.test import TestResponse

from annotate import create_app
from service.store.db import make_engine
from service.store.migrate import upgrade
from service.store.models import LABEL_MAX_CHARS, Rating, Trial
from tests.annotate.conftest import SECRET, make_study, start
from tests.faults.conftest import PrivateCluster, SmallDisk
from tests.faults.support import RATING, snapshot

# The longest label allowed, so that a few ratings fill a page.
LONG_RATING = {**RATING, "label": ("a dog asleep on a red sofa " * 8)[:LABEL_MAX_CHARS]}
ANNOTATOR_TABLES = ("annotators", "sessions", "trials", "ratings")
CROWD = 3
MAX_NEWCOMERS = 40


@dataclass(frozen=True)
class Storage:
    """A migrated database, and how to leave its storage no room to grow and give room back.

    `fill` and `free` get the site's engine (the page cap is set on its connections).
    """

    url: str
    fill: Callable[[Engine], None]
    free: Callable[[Engine], None]


def _cap_at_current_size(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
    dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")


def _cap(engine: Engine) -> None:
    event.listen(engine, "connect", _cap_at_current_size)
    engine.dispose()  # every connection from now on is capped


def _uncap(engine: Engine) -> None:
    event.remove(engine, "connect", _cap_at_current_size)
    engine.dispose()


@pytest.fixture
def sqlite_page_limit(sqlite_url: str) -> Storage:
    upgrade(sqlite_url)
    return Storage(sqlite_url, _cap, _uncap)


@pytest.fixture
def sqlite_tmpfs(tmp_path: Path, small_disk: Callable[[Path, str], SmallDisk]) -> Storage:
    disk = small_disk(tmp_path / "disk", "8m")
    url = f"sqlite:///{disk.path / 'fvlab.db'}"
    upgrade(url)

    def fill(engine: Engine) -> None:
        # Checkpoint and truncate the WAL, so that the next commit must grow it on the full disk
        # rather than overwrite frames it already has room for.
        raw = engine.raw_connection()
        try:
            busy = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            raw.close()
        assert busy == 0
        disk.fill()

    return Storage(url, fill, lambda _engine: disk.free())


@pytest.fixture
def postgres_tablespace(private_postgres: PrivateCluster,
                        small_disk: Callable[[Path, str], SmallDisk]) -> Storage:
    disk = small_disk(private_postgres.root / "disk", "4m")
    location = disk.path / "tablespace"
    location.mkdir()
    owner = pwd.getpwnam("postgres")
    os.chown(location, owner.pw_uid, owner.pw_gid)
    upgrade(private_postgres.url)
    admin = create_engine(private_postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE TABLESPACE small_disk LOCATION '{location}'"))
        for table in ANNOTATOR_TABLES:
            conn.execute(text(f"ALTER TABLE {table} SET TABLESPACE small_disk"))
            for index in conn.scalars(text("SELECT indexname FROM pg_indexes WHERE "
                                           "schemaname = 'public' AND tablename = :t"),
                                      {"t": table}):
                conn.execute(text(f'ALTER INDEX "{index}" SET TABLESPACE small_disk'))
    admin.dispose()
    return Storage(private_postgres.url, lambda _engine: disk.fill(),
                   lambda _engine: disk.free())


@pytest.fixture(params=["sqlite_page_limit", "sqlite_tmpfs", "postgres_tablespace"])
def storage(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue(request.param)


@dataclass(frozen=True)
class Answer:
    response: TestResponse
    cause: BaseException | None  # the last database error the site's engine raised meanwhile


@dataclass
class FullSite:
    """The site on full storage, once the crowd's rating and a newcomer were first refused."""

    app: Flask
    storage: Storage
    reader: Engine  # the test's own engine, outside the site
    slug: str
    errors: list[BaseException] = field(default_factory=list)
    client: FlaskClient | None = None  # the annotator whose rating was refused
    rating_url: str = ""
    first_refused_rating: Answer | None = None
    first_refused_page: Answer | None = None

    def _answer(self, send: Callable[[], TestResponse]) -> Answer:
        self.errors.clear()
        response = send()
        return Answer(response, self.errors[-1] if self.errors else None)

    def rate_until_refused(self, crowd: list[FlaskClient]) -> Answer:
        """Each annotator rates in turn until the store refuses one; that one is kept."""
        for client in crowd:
            while trials := client.get("/api/v1/trials?limit=1").get_json()["trials"]:
                self.client, self.rating_url = client, trials[0]["rating"]
                answer = self.send_rating()
                if answer.response.status_code != 201:
                    return answer
        raise AssertionError("every trial of the crowd was rated; the store never filled up")

    def send_rating(self) -> Answer:
        assert self.client is not None
        return self._answer(lambda: self.client.post(self.rating_url, json=LONG_RATING))

    def consent(self) -> Answer:
        """A newcomer enters (reading still works) and consents."""
        newcomer = self.app.test_client()
        assert newcomer.get(f"/study/{self.slug}").status_code == 200
        return self._answer(lambda: newcomer.post(f"/study/{self.slug}/start",
                                                  data={"consent": "yes"}))

    def consent_until_refused(self) -> Answer:
        for _ in range(MAX_NEWCOMERS):
            answer = self.consent()
            if answer.response.status_code != 302:
                return answer
        raise AssertionError(f"{MAX_NEWCOMERS} newcomers started; the store never filled up")

    def ratings_of_trial(self) -> int:
        token = self.rating_url.rstrip("/").split("/")[-2]
        with self.reader.connect() as conn:
            return conn.scalar(select(func.count(Rating.id)).join(Trial)
                               .where(Trial.token == token)) or 0


@pytest.fixture
def full(storage: Storage) -> Iterator[FullSite]:
    app = create_app({"DATABASE_URL": storage.url, "SECRET_KEY": SECRET})
    engine = app.extensions["fvlab_engine"]
    reader = make_engine(storage.url)
    info = make_study(reader, n_basis=24, n_random=24, k=5, trials=10, catch_every=0,
                      practice=0)
    site = FullSite(app, storage, reader, info.slug)
    event.listen(engine, "handle_error",
                 lambda context: site.errors.append(context.original_exception))
    crowd = [app.test_client() for _ in range(CROWD)]
    for client in crowd:
        start(client, info.slug)
    storage.fill(engine)
    site.first_refused_rating = site.rate_until_refused(crowd)
    site.first_refused_page = site.consent_until_refused()
    yield site
    engine.dispose()
    reader.dispose()


def _disk_full(exc: BaseException | None) -> bool:
    """SQLite's SQLITE_FULL or PostgreSQL's DiskFull (53100)."""
    if isinstance(exc, sqlite3.OperationalError):
        return exc.sqlite_errorname == "SQLITE_FULL"
    return isinstance(exc, psycopg.errors.DiskFull)


def _assert_api_refusal(answer: Answer | None) -> None:
    assert answer is not None
    response = answer.response
    assert response.status_code == 503, response.text
    assert response.is_json and response.get_json()["field"] is None
    assert "try again" in response.get_json()["error"]
    assert _disk_full(answer.cause), answer.cause  # refused for want of room, not otherwise


def _assert_page_refusal(answer: Answer | None) -> None:
    assert answer is not None
    page = answer.response
    assert page.status_code == 503 and page.mimetype == "text/html", page.text
    assert "try again" in page.text.lower() and "nothing was saved" in page.text
    assert page.headers["Retry-After"]
    assert _disk_full(answer.cause), answer.cause


def test_full_storage_answers_503_and_writes_nothing(full: FullSite) -> None:
    _assert_api_refusal(full.first_refused_rating)
    _assert_page_refusal(full.first_refused_page)

    before = snapshot(full.reader)  # the store is full now: what it refuses must change nothing
    _assert_api_refusal(full.send_rating())
    assert snapshot(full.reader) == before and full.ratings_of_trial() == 0
    _assert_page_refusal(full.consent())
    after = snapshot(full.reader)
    assert (after.ratings, after.trials, after.sessions) == (
        before.ratings, before.trials, before.sessions)  # annotators: see the last test

    full.storage.free(full.app.extensions["fvlab_engine"])
    stored = full.send_rating().response
    assert stored.status_code == 201, stored.text
    repeat = full.send_rating().response
    assert repeat.status_code == 200 and repeat.get_json()["rating"] == stored.get_json()["rating"]
    assert full.ratings_of_trial() == 1


@pytest.mark.parametrize("storage", ["sqlite_page_limit"], indirect=True)
def test_refused_rating_says_nothing_was_saved_and_when_to_retry(full: FullSite) -> None:
    assert full.first_refused_rating is not None  # a 503 from the full store: see above
    refused = full.first_refused_rating.response
    assert "nothing was saved" in refused.get_json()["error"]
    assert refused.headers.get("Retry-After")


@pytest.mark.parametrize("storage", ["sqlite_page_limit"], indirect=True)
def test_refused_newcomer_leaves_no_annotator(full: FullSite) -> None:
    before = snapshot(full.reader)
    _assert_page_refusal(full.consent())
    assert snapshot(full.reader).annotators == before.annotators
