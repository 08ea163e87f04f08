"""A request of an annotator's pages holds at most one of the pool's connections at a time, and a
site process' pool has one for each of its serving threads: a request that held two, one idle
while it waited for a second, let a burst of starts take every connection and wait for good."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from annotate import gunicorn_conf
from annotate.database import EXTENSION_KEY
from tests.annotate.conftest import make_study, start


class _Held:
    def __init__(self) -> None:
        self.now = self.most = 0

    def checkout(self, *_args: Any) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def checkin(self, *_args: Any) -> None:
        self.now -= 1


@pytest.fixture
def held(app: Flask) -> Iterator[_Held]:
    """The site's connections out of its pool, now and at most."""
    engine: Engine = app.extensions[EXTENSION_KEY]
    held = _Held()
    event.listen(engine, "checkout", held.checkout)
    event.listen(engine, "checkin", held.checkin)
    yield held
    event.remove(engine, "checkout", held.checkout)
    event.remove(engine, "checkin", held.checkin)


def test_entering_a_study_holds_one_connection_at_a_time(client: FlaskClient, engine: Engine,
                                                          held: _Held) -> None:
    info = make_study(engine, trials=4, catch_every=2, practice=1)
    start(client, info.slug)  # consent page, start, instructions and their timestamps
    assert held.most == 1 and held.now == 0


def test_a_site_process_pools_a_connection_for_each_serving_thread(
        app: Flask, db_url: str) -> None:
    pool = app.extensions[EXTENSION_KEY].pool
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's connections are files: no server-side connection limit to size")
    assert isinstance(pool, QueuePool)
    assert pool.size() == gunicorn_conf.threads
