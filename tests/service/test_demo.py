"""`make run` prepares the embedded default once, reuses it on every later start, and stops on
Ctrl-C with nothing left running."""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.cli.demo import ADMIN_NAME, _prepare
from service.config import load_settings
from service.store.accounts import authenticate
from service.store.db import unit_of_work
from service.store.models import Job


def test_second_start_reuses_key_login_and_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FVLAB_DATA_DIR", str(tmp_path / "var"))
    engine, env, password, job_id = _prepare(load_settings())
    assert password and job_id is not None
    assert authenticate(engine, ADMIN_NAME, password) is not None
    key_file = tmp_path / "var" / "secret-key.txt"
    assert env["FVLAB_SECRET_KEY"] == key_file.read_text().strip()
    for private in (key_file, tmp_path / "var" / "admin-password.txt"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600

    engine2, env2, password2, job_id2 = _prepare(load_settings())
    assert (password2, job_id2) == (password, job_id)
    assert env2["FVLAB_SECRET_KEY"] == env["FVLAB_SECRET_KEY"]
    with unit_of_work(engine2) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        job = session.get_one(Job, job_id)
        assert job.model == "efficientnet_lite0" and len(job.layers) == 2
        assert job.n_basis > 0 and job.n_random > 0


def test_demo_study_opens_once_over_the_rendered_demo_job(engine) -> None:  # type: ignore[no-untyped-def]
    """The study make run opens must pass the study checks (its name may not echo the job's)."""
    from service.cli.demo import _demo_study_slug
    from service.generation.jobs import DEMO_NAME
    from service.store.models import Study
    from tests.service.test_studies import make_job

    job_id = make_job(engine, size=32)
    with unit_of_work(engine) as session:
        session.get_one(Job, job_id).name = DEMO_NAME
    slug = _demo_study_slug(engine, job_id)
    assert _demo_study_slug(engine, job_id) == slug
    with unit_of_work(engine) as session:
        study = session.scalars(select(Study)).one()
        assert (study.slug, study.status, len(study.stimuli)) == (slug, "open", 6)


STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring SIGTERM', flush=True); time.sleep(120)")
SECOND_CTRL_C = f"""
import os, signal, subprocess, sys, threading, time
from service.cli.demo import _stop
child = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
child.stdout.readline()
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
started = time.monotonic()
_stop([child])
print(child.returncode, time.monotonic() - started, flush=True)
"""


def test_a_second_ctrl_c_while_stopping_kills_the_children() -> None:
    """A child still stopping (here: one that ignores SIGTERM) is killed by a second Ctrl-C."""
    done = subprocess.run([sys.executable, "-c", SECOND_CTRL_C], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])
    pid = int(done.stdout.split()[0])
    stat = Path(f"/proc/{pid}/stat")
    alive = stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive and done.returncode == 0, done.stdout + done.stderr
    returncode, seconds = done.stdout.split()[-2:]
    assert int(returncode) == -signal.SIGKILL and float(seconds) < 5, done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_ctrl_c_at_any_moment_leaves_no_demo_process(tmp_path: Path) -> None:
    """`make run` and Ctrl-C, 20 times, at moments of every kind, sometimes Ctrl-C twice: the
    demo, its worker and its site are all gone within 5 s each time.

    A tiny job in the store stands in for the demo job (the demo queues its own only into an
    empty store), so that the worker renders within seconds; the idle store's job is cancelled.
    """
    from service.generation.jobs import cancel, submit
    from service.store.db import make_engine
    from service.store.migrate import upgrade
    from tests.service.test_worker_signals import (
        CYCLES,
        LONG_JOB,
        PHASES,
        Cycle,
        wait_for_line,
    )

    stores = {name: tmp_path / name for name in ("busy", "idle")}
    for name, data_dir in stores.items():
        url = f"sqlite:///{data_dir / 'fvlab.db'}"
        engine = make_engine(url)  # makes the folder
        upgrade(url)
        job_id = submit(engine, LONG_JOB, shard_size=1)
        if name == "idle":
            cancel(engine, job_id)
        engine.dispose()
    rng = random.Random(11)
    phases = [PHASES[i % len(PHASES)] for i in range(CYCLES)]
    rng.shuffle(phases)
    log = tmp_path / "demo.log"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FVLAB_")}
    for number, phase in enumerate(phases):
        env = {**base_env, "FVLAB_DATA_DIR": str(stores["idle" if phase == "idle" else "busy"]),
               "OMP_NUM_THREADS": "1"}
        cycle = Cycle([sys.executable, "-m", "service.cli", "demo", "--port", str(_free_port())],
                      env, log)

        def trigger(proc: subprocess.Popen[bytes], phase: str = phase) -> None:
            wait = {"start-up": "site:", "rendering": " of job ", "idle": "batch size"}
            if phase in wait:
                wait_for_line(log, wait[phase], proc)

        pause = {"import": rng.uniform(0.05, 1.0), "start-up": rng.uniform(0.0, 2.0),
                 "rendering": rng.uniform(0.0, 1.5), "idle": rng.uniform(0.0, 2.5)}[phase]
        twice = rng.uniform(0.1, 0.6) if number % 3 == 0 else None
        try:
            cycle.run(trigger, pause, second_ctrl_c=twice)
        except AssertionError as exc:
            again = "" if twice is None else f", again {twice:.2f} s later"
            raise AssertionError(f"cycle {number} ({phase}, Ctrl-C after {pause:.2f} s{again}): "
                                 f"{exc}") from None
