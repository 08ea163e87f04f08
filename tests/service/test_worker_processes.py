"""Real worker processes against one database: several at once, SIGKILL, SIGTERM, cancel, 2 ranks.

Every worker here is `python -m service.cli worker` in its own process, as in production, with a
short lease so that a dead worker's shard comes back within seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from service.generation.jobs import JobRequest, cancel, get_job, job_shards, submit
from service.store.db import make_engine, unit_of_work
from service.store.models import Direction, Image, Shard, Stimulus
from tests.conftest import create_schema

ROOT = Path(__file__).resolve().parents[2]
DONE_LINE = re.compile(r"(\S+): shard (\d+) of job \d+ done")
LEASE = "2"


def tiny_job(n: int, steps: int) -> JobRequest:
    return JobRequest(model="tiny", layers=["conv2"], n_basis=n // 2, n_random=n - n // 2,
                      image_size=32, steps=steps, seed=11)


class Workers:
    """Starts worker processes on one database and keeps their logs for the assertions."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115 - kept open
        env = {**os.environ, "FVLAB_DATABASE_URL": self.url, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--accelerator", "cpu",
             "--lease-seconds", LEASE, *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob("worker*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(db_url, tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def pg_workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(postgres_url, tmp_path)
    yield running
    running.stop_all()


def engine_for(url: str) -> Engine:
    engine = make_engine(url)
    create_schema(engine)
    return engine


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def running_shard(engine: Engine) -> Shard | None:
    with unit_of_work(engine) as s:
        return s.scalars(select(Shard).where(Shard.status == "running")).first()


def assert_each_direction_once(engine: Engine, job_id: int) -> None:
    """One stimulus per direction, and no image that no stimulus uses."""
    with unit_of_work(engine) as s:
        directions = s.scalar(select(func.count()).select_from(Direction)
                              .where(Direction.job_id == job_id))
        per_direction = s.execute(
            select(Direction.id, func.count(Stimulus.id)).outerjoin(Stimulus)
            .where(Direction.job_id == job_id).group_by(Direction.id)
        ).all()
        orphans = s.scalar(select(func.count()).select_from(Image).where(
            ~Image.sha256.in_(select(Stimulus.image_sha256))))
    assert len(per_direction) == directions and {n for _, n in per_direction} == {1}
    assert orphans == 0


@pytest.mark.postgres
@pytest.mark.parametrize("n_workers", [2, 4])
def test_several_workers_render_every_direction_exactly_once(
    pg_workers: Workers, n_workers: int
) -> None:
    engine = engine_for(pg_workers.url)
    job_id = submit(engine, tiny_job(16, steps=8), shard_size=2)
    procs = [pg_workers.start("--once") for _ in range(n_workers)]
    assert [p.wait(timeout=180) for p in procs] == [0] * n_workers, pg_workers.output()
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("done", 16, 16)
    assert_each_direction_once(engine, job_id)
    done = [int(shard) for _, shard in DONE_LINE.findall(pg_workers.output())]
    assert sorted(done) == sorted(s.id for s in job_shards(engine, job_id))  # each rendered once
    assert {s.attempts for s in job_shards(engine, job_id)} == {1}
    engine.dispose()


def test_a_killed_workers_shard_is_finished_by_another_after_its_lease(workers: Workers) -> None:
    engine = engine_for(workers.url)
    job_id = submit(engine, tiny_job(2, steps=300), shard_size=2)  # one shard, seconds
    procs = [workers.start("--max-idle-seconds", "1") for _ in range(2)]
    wait_for(lambda: running_shard(engine), "a worker to claim the shard")
    held = running_shard(engine)
    assert held is not None
    victim = next(p for p in procs if f":{p.pid}:" in (held.lease_owner or ""))
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    wait_for(lambda: get_job(engine, job_id).status == "done", "the other worker to finish")
    rescuer = next(p for p in procs if p is not victim)
    rescuer.send_signal(signal.SIGTERM)
    assert rescuer.wait(timeout=60) == 0, workers.output()
    assert_each_direction_once(engine, job_id)
    [shard] = job_shards(engine, job_id)
    assert (shard.id, shard.status, shard.attempts) == (held.id, "done", 2)
    assert f"shard {held.id} of job {job_id} done" in workers.output()
    engine.dispose()


@pytest.mark.postgres
def test_cancel_is_noticed_mid_render_and_sigterm_releases_the_shard(pg_workers: Workers) -> None:
    engine = engine_for(pg_workers.url)
    cancelled = submit(engine, tiny_job(2, steps=20_000), shard_size=2)
    proc = pg_workers.start("--max-idle-seconds", "1")
    wait_for(lambda: running_shard(engine), "the worker to claim the first job's shard")
    cancel(engine, cancelled)
    wait_for(lambda: "lease cancelled" in pg_workers.output(), "the worker to drop the shard")
    assert proc.poll() is None  # it keeps serving
    stopped = submit(engine, tiny_job(2, steps=20_000), shard_size=2)
    wait_for(lambda: running_shard(engine), "the worker to claim the second job's shard")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, pg_workers.output()
    assert "released" in pg_workers.output()
    [shard] = job_shards(engine, stopped)
    assert (shard.status, shard.attempts, shard.lease_owner) == ("queued", 0, None)
    assert get_job(engine, cancelled).status == "cancelled"
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Stimulus)) == 0
    engine.dispose()


def test_two_fabric_ranks_claim_their_own_shards_and_stop_together(
    sqlite_url: str, tmp_path: Path
) -> None:
    workers = Workers(sqlite_url, tmp_path)
    engine = engine_for(sqlite_url)
    job_id = submit(engine, tiny_job(2, steps=20_000), shard_size=1)
    try:
        launcher = workers.start("--devices", "2")

        def owners() -> set[str]:
            shards = job_shards(engine, job_id)
            return {s.lease_owner or "" for s in shards if s.status == "running"}

        wait_for(lambda: len(owners()) == 2, "both ranks to hold a shard", timeout=180)
        assert {owner.rsplit(":", 1)[1] for owner in owners()} == {"rank0", "rank1"}
        launcher.send_signal(signal.SIGTERM)  # only the launcher, as a service manager would
        assert launcher.wait(timeout=120) == 0, workers.output()
    finally:
        workers.stop_all()
    assert workers.output().count("released") == 2
    assert [(s.status, s.attempts) for s in job_shards(engine, job_id)] == [("queued", 0)] * 2
    engine.dispose()
