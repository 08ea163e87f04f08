"""Workers killed (SIGKILL) mid-work: nothing is lost and nothing is written twice.

A gunicorn worker killed in the middle of a rating: the rating request is held inside its
transaction by a lock the test takes on the ratings table, so the worker is certainly
mid-request when it is killed. Its connection dies with it, so PostgreSQL rolls that transaction
back; the master starts a new worker, and the page-style retry with the same trial token stores
the rating exactly once.

A generation worker killed in the middle of an exemplar pass: it has written nothing, its lease
lapses, another worker scores the image set again and writes every exemplar once.
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

from service.generation.jobs import JobRequest, get_job, job_shards, submit
from service.store.db import make_engine, unit_of_work
from service.store.image_sets import add_builtin
from service.store.models import Direction, Exemplar, Image, Rating, Shard, Stimulus, Trial
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


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FVLAB_DATABASE_URL": url, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", "--accelerator", "cpu", "--lease-seconds",
         "2", "--max-idle-seconds", "1", "--batch-size", "8"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _running_exemplar_shard(engine: Engine) -> Shard | None:
    with unit_of_work(engine) as s:
        return s.scalars(select(Shard).where(Shard.kind == "exemplars",
                                             Shard.status == "running")).first()


def test_generation_worker_killed_mid_exemplar_pass(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    create_schema(engine)
    add_builtin(engine)
    references = 3
    job_id = submit(engine, JobRequest(
        model="tiny", layers=["conv3"], n_basis=2, n_random=2, image_size=32, steps=4, seed=2,
        image_set="photos", references=references, diversity=0.0))
    victim = _worker(postgres_url, tmp_path / "victim.log")
    _wait_until(lambda: _running_exemplar_shard(engine) is not None, "the pass to start")
    time.sleep(0.5)  # scoring: a few seconds of batches, none of it written yet
    held = _running_exemplar_shard(engine)
    assert held is not None and f":{victim.pid}:" in (held.lease_owner or "")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(Exemplar.id))) == 0  # killed before writing

    rescuer = _worker(postgres_url, tmp_path / "rescuer.log")
    _wait_until(lambda: get_job(engine, job_id).status == "done", "another worker to finish",
                seconds=180)
    rescuer.send_signal(signal.SIGTERM)
    assert rescuer.wait(timeout=60) == 0, (tmp_path / "rescuer.log").read_text()
    exemplar_shard = next(s for s in job_shards(engine, job_id) if s.kind == "exemplars")
    assert (exemplar_shard.id, exemplar_shard.status, exemplar_shard.attempts) == (
        held.id, "done", 2)
    with engine.connect() as conn:
        per_end = conn.execute(
            select(Exemplar.direction_id, Exemplar.sign, Exemplar.role, func.count())
            .group_by(Exemplar.direction_id, Exemplar.sign, Exemplar.role)).all()
        tasks = dict(conn.execute(select(Direction.id, Direction.tasks_available)).all())
        renders = conn.scalar(select(func.count(Stimulus.id)))
        orphans = conn.scalar(select(func.count()).select_from(Image).where(
            ~Image.sha256.in_(select(Stimulus.image_sha256)),
            ~Image.sha256.in_(select(Exemplar.image_sha256))))
    assert len(tasks) == 4 and renders == 4 * references * 2 and orphans == 0
    for direction_id, _sign, role, count in per_end:
        assert count == (references if role == "reference" else min(10, tasks[direction_id]))
    assert len(per_end) == 4 * 2 * 2  # both signs, both roles, of every direction
    engine.dispose()
