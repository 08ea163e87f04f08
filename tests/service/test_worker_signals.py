"""Ctrl-C always stops the worker: its whole process group is gone within seconds, every time.

Each cycle starts `python -m service.cli worker` in a process group of its own, as a terminal
would, and sends SIGINT to the group at a moment of one of four kinds: while Python is still
importing, during start-up (torch, Lightning, Fabric), while a shard renders, and while the
worker idles on an empty queue. No process of the group may be left 5 s later.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.generation.jobs import JobRequest, submit
from service.generation.stopping import StopSignal
from service.store.db import make_engine
from tests.conftest import create_schema

ROOT = Path(__file__).resolve().parents[2]
CYCLES = 20
GONE_WITHIN_SECONDS = 5.0
PHASES = ("import", "start-up", "rendering", "idle")
LONG_JOB = JobRequest(model="tiny", layers=["conv2"], n_basis=8, n_random=8, image_size=32,
                      steps=4000, seed=2)


def group_members(pgid: int) -> list[str]:
    """The live processes (zombies aside) of process group `pgid`, as "pid command"."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry.name} {command.strip()}")
    return members


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120
                  ) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited before {text!r}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in time:\n{log.read_text()}"
        time.sleep(0.05)


@dataclass
class Cycle:
    """One start and Ctrl-C of a command in its own process group."""

    command: list[str]
    env: dict[str, str]
    log: Path

    def run(self, trigger: Callable[[subprocess.Popen[bytes]], None], pause: float,
            second_ctrl_c: float | None = None) -> None:
        """Start, wait for `trigger`, then `pause` s, Ctrl-C the group (twice if asked)."""
        with open(self.log, "wb") as out:
            proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            trigger(proc)
            time.sleep(pause)
            os.killpg(proc.pid, signal.SIGINT)
            sent = time.monotonic()
            if second_ctrl_c is not None:
                time.sleep(second_ctrl_c)
                if group_members(proc.pid):
                    os.killpg(proc.pid, signal.SIGINT)
            while group_members(proc.pid) and time.monotonic() - sent < GONE_WITHIN_SECONDS:
                proc.poll()
                time.sleep(0.05)
            left = group_members(proc.pid)
            assert not left, f"still running {GONE_WITHIN_SECONDS} s after Ctrl-C: {left}\n" + (
                self.log.read_text(errors="replace")[-3000:])
        finally:
            if group_members(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_stop_signal_only_sets_a_flag_and_cuts_a_sleep_short() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignal()
    with stop.installed():
        assert not stop.wait(0.01)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(30)
        assert time.monotonic() - started < 5
        assert stop.received == signal.SIGTERM and stop.requested()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_is_passed_on_to_the_other_ranks() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stop = StopSignal(forward_to=[other.pid])
        with stop.installed():
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.wait(30)
        assert other.wait(timeout=30) == -signal.SIGTERM
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_ctrl_c_at_any_moment_leaves_no_worker_process(tmp_path: Path) -> None:
    busy, idle = f"sqlite:///{tmp_path / 'busy.db'}", f"sqlite:///{tmp_path / 'idle.db'}"
    for url in (busy, idle):
        engine = make_engine(url)
        create_schema(engine)
        if url == busy:
            submit(engine, LONG_JOB, shard_size=1)
        engine.dispose()
    rng = random.Random(16)
    phases = [PHASES[i % len(PHASES)] for i in range(CYCLES)]
    rng.shuffle(phases)
    log = tmp_path / "worker.log"
    for number, phase in enumerate(phases):
        url = idle if phase == "idle" else busy
        env = {**os.environ, "FVLAB_DATABASE_URL": url, "OMP_NUM_THREADS": "1"}
        cycle = Cycle([sys.executable, "-m", "service.cli", "worker", "--accelerator", "cpu",
                       "--lease-seconds", "5", "--max-idle-seconds", "1"], env, log)

        def trigger(proc: subprocess.Popen[bytes], phase: str = phase) -> None:
            if phase == "rendering":
                wait_for_line(log, " of job ", proc)
            elif phase == "idle":
                wait_for_line(log, "batch size", proc)

        pause = {"import": rng.uniform(0.05, 1.0), "start-up": rng.uniform(1.0, 4.0),
                 "rendering": rng.uniform(0.0, 1.5), "idle": rng.uniform(0.0, 2.5)}[phase]
        try:
            cycle.run(trigger, pause)
        except AssertionError as exc:
            raise AssertionError(f"cycle {number} ({phase}, Ctrl-C after {pause:.2f} s): "
                                 f"{exc}") from None
