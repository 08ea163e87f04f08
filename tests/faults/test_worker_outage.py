"""PostgreSQL restarted under a running worker: it waits the outage out and loses no render.

A real `fvlab worker` process works against a private cluster. The cluster is stopped twice:
first while the worker is idle and polling for shards, then while it renders a shard, and kept
down until the worker has finished that render and failed to write it. Both times it is started
again; the worker must never exit, must write the render it finished during the outage (the
shard is not rendered a second time), and the job must end with exactly one stimulus per
direction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from service.generation.jobs import JobRequest, get_job, job_shards, submit
from service.store.db import make_engine, unit_of_work
from service.store.models import Shard
from tests.conftest import create_schema
from tests.faults.conftest import PrivateCluster
from tests.service.test_worker_processes import assert_each_direction_once

ROOT = Path(__file__).resolve().parents[2]
JOB = JobRequest(model="tiny", layers=["conv2"], n_basis=1, n_random=2, image_size=32,
                 steps=1500, seed=5)
CLAIM_RETRY = "to claim a shard, retrying"
WRITE_RETRY = "to write rendered shard"


def _wait(condition: Callable[[], object], what: str, worker: subprocess.Popen[bytes],
          log: Path, timeout: float = 120) -> None:
    """Wait for `condition`, failing at once if the worker process has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()}"
        time.sleep(0.2)


def test_worker_rides_out_a_restart_and_writes_the_render_it_finished_meanwhile(
    private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    engine = make_engine(private_postgres.url)
    create_schema(engine)
    log = tmp_path / "worker.log"
    env = {**os.environ, "FVLAB_DATABASE_URL": private_postgres.url, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--accelerator", "cpu",
             "--lease-seconds", "60", "--max-idle-seconds", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: "batch size" in log.read_text(), "the worker to start", worker, log)
        engine.dispose()
        private_postgres.stop()  # idle: the next claim meets the outage
        _wait(lambda: CLAIM_RETRY in log.read_text(), "a claim to fail", worker, log)
        private_postgres.start()

        job_id = submit(engine, JOB, shard_size=1)

        def running() -> Shard | None:
            with unit_of_work(engine) as s:
                return s.scalars(select(Shard).where(Shard.status == "running")).first()

        _wait(running, "the worker to claim a shard", worker, log)
        held = running()
        assert held is not None
        engine.dispose()
        private_postgres.stop()  # rendering: the write after the render meets the outage
        _wait(lambda: WRITE_RETRY in log.read_text(), "a write to fail", worker, log)
        private_postgres.start()

        _wait(lambda: get_job(engine, job_id).status == "done", "the job to finish", worker, log)
        assert worker.poll() is None, log.read_text()
        assert_each_direction_once(engine, job_id)
        shards = job_shards(engine, job_id)
        assert {s.status for s in shards} == {"done"}
        assert [s.attempts for s in shards if s.id == held.id] == [1]  # written, not redone
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        engine.dispose()
