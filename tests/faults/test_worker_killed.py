"""A gunicorn worker killed (SIGKILL) in the middle of a rating: the retry stores it once.

The rating request is held inside its transaction by a lock the test takes on the ratings table,
so the worker is certainly mid-request when it is killed. Its connection dies with it, so
PostgreSQL rolls that transaction back; the master starts a new worker, and the page-style retry
with the same trial token stores the rating exactly once.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from service.store.db import make_engine
from service.store.models import Rating, Trial
from tests.annotate.conftest import make_study
from tests.conftest import create_schema
from tests.faults.support import TRANSPORT_ERRORS, Browser

ROOT = Path(__file__).resolve().parents[2]
ANSWER = {"interpretable": False, "confidence": 2, "label": "a dog", "rt_ms": 800}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _wait_until(condition, what: str, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def gunicorn(postgres_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """The site under gunicorn (one worker, so the one to kill is known) on the test schema."""
    port = _free_port()
    env = {**os.environ, "FVLAB_DATABASE_URL": postgres_url,
           "FVLAB_SECRET_KEY": secrets.token_hex(32)}
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers=1", f"--bind=127.0.0.1:{port}",
         "--log-level=warning", "annotate:create_app()"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    yield master, base
    master.send_signal(signal.SIGTERM)
    master.wait(timeout=30)


def _answers(base: str) -> bool:
    try:
        return Browser(base).request("GET", "/healthz", timeout=5)[0] == 200
    except TRANSPORT_ERRORS:
        return False


def _blocked_on_ratings(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE relation = 'ratings'::regclass AND NOT granted")))


def test_worker_killed_mid_request(postgres_url: str,
                                   gunicorn: tuple[subprocess.Popen, str]) -> None:
    master, base = gunicorn
    engine = make_engine(postgres_url)
    create_schema(engine)
    info = make_study(engine, practice=0)
    _wait_until(lambda: _answers(base), "gunicorn to answer")
    browser = Browser(base)
    browser.enter(info.slug)
    trial = browser.next_trial()
    assert trial is not None

    first_attempt: list[object] = []
    with engine.connect() as locker:
        locker.execute(text("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE"))

        def post() -> None:
            try:
                first_attempt.append(browser.request("POST", trial["rating"], body=ANSWER)[0])
            except TRANSPORT_ERRORS as exc:
                first_attempt.append(type(exc).__name__)

        request = threading.Thread(target=post)
        request.start()
        _wait_until(lambda: _blocked_on_ratings(engine), "the rating to wait on the lock")
        (worker,) = _workers(master.pid)
        os.kill(worker, signal.SIGKILL)
        request.join(timeout=30)
        locker.rollback()
    assert first_attempt and isinstance(first_attempt[0], str), first_attempt  # no answer

    _wait_until(lambda: _answers(base), "a new worker")
    assert browser.rate_until_stored(trial["rating"], ANSWER)[-1] == 201
    assert browser.rate_until_stored(trial["rating"], ANSWER) == [200]
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count(Rating.id)).join(Trial).where(
            Trial.token == trial["token"]))
        total = conn.scalar(select(func.count(Rating.id)))
    assert stored == total == 1
    assert browser.rate_all() >= 1
    with engine.connect() as conn:
        per_trial = set(conn.scalars(select(func.count()).select_from(Rating)
                                     .group_by(Rating.trial_id)))
    assert per_trial == {1}
    engine.dispose()
