"""The generation worker: a Lightning Fabric program that renders claimed shards into the database.

Fabric owns the accelerator, the devices, the precision (bf16-mixed on GPU, 32-bit on CPU) and the
launch: every render runs on `fabric.device` under `fabric.autocast()`. With several devices
every rank is an independent worker that claims its own shards, so one machine with k GPUs
behaves like k machines. Workers never talk to each other: the database leases in
`service.generation.shards` are the only coordination, which is what lets any number of machines
join or die at any time. A database that goes away for a while (a restart, a failover) is waited
out: claims are retried, and a finished render is written once the database is back, for as long
as the shard's lease allows.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from service.generation import shard_work, shards
from service.generation.shards import ClaimedShard
from service.generation.stopping import StopSignal, wait_for_exit
from service.store.db import make_engine

if TYPE_CHECKING:
    from lightning.fabric import Fabric
    from sqlalchemy import Engine

log = logging.getLogger("fvlab.worker")
ACCELERATORS = ("auto", "cpu", "gpu")
Precision = Literal["bf16-mixed", "32-true"]  # Fabric's names of the two precisions fvlab uses
PRECISIONS: dict[str, Precision] = {"gpu": "bf16-mixed", "cpu": "32-true"}  # per accelerator
PRECISION_WORDS: dict[Precision, str] = {
    "bf16-mixed": "bf16 mixed precision", "32-true": "32-bit precision",
}
DATABASE_DOWN = (OperationalError, InterfaceError)  # connection lost or refused: worth a retry
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class WorkerConfig:
    """How one `fvlab worker` runs; every rank Fabric launches gets the same config."""

    database_url: str
    accelerator: str = "auto"
    devices: int = 1
    batch_size: int = 32
    once: bool = False
    lease_seconds: float = 60.0
    max_attempts: int = 3
    max_idle_seconds: float = 30.0
    weights_dir: Path | None = None


class _Interrupted(Exception):
    """Raised from the render's progress callback to drop the shard mid-render."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _DatabaseAway(Exception):
    """The database stayed unreachable past the lease, or the worker is stopping meanwhile."""


class _LeaseKeeper(threading.Thread):
    """Renews the lease every third of its length while the main thread renders and writes.

    A thread (not the render loop) renews, so that a long step, a slow natural-max pass or the
    final write cannot let the lease lapse while the worker is alive. `expires` is when the lease
    runs out unless renewed again (monotonic clock), so a write can be retried until then.
    """

    def __init__(self, engine: Engine, shard_id: int, owner: str, lease_seconds: float) -> None:
        super().__init__(daemon=True, name=f"lease-{shard_id}")
        self.engine, self.shard_id, self.owner = engine, shard_id, owner
        self.lease_seconds = lease_seconds
        self.state = "held"
        self.expires = time.monotonic() + lease_seconds
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.lease_seconds / 3):
            asked = time.monotonic()
            try:
                self.state = shards.renew(
                    self.engine, self.shard_id, self.owner, self.lease_seconds
                )
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the render
                log.warning("shard %d: lease renewal failed, retrying: %s", self.shard_id,
                            _first_line(exc))
                continue
            if self.state != "held":
                return
            self.expires = asked + self.lease_seconds

    def stop(self) -> None:
        self._done.set()
        self.join()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def resolve_accelerator(accelerator: str) -> str:
    """"auto" means a GPU when CUDA has one, else the CPU; anything else is passed to Fabric."""
    import torch

    if accelerator not in ACCELERATORS:
        choices = ", ".join(ACCELERATORS)
        raise ValueError(f"accelerator must be one of {choices}, got {accelerator!r}")
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return accelerator


class _Worker:
    """One rank's loop: claim, render under a renewed lease, write, repeat."""

    def __init__(self, config: WorkerConfig, owner: str, fabric: Fabric, stop: StopSignal) -> None:
        self.config, self.owner, self.fabric, self.stop = config, owner, fabric, stop
        self.engine = make_engine(config.database_url)

    def retry(self, what: str, call: Callable[[], T], until: float = math.inf) -> T:
        """`call()`, again with a growing pause while the database is unreachable, until it
        succeeds; raises `_DatabaseAway` once a stop is requested or the monotonic time `until`
        has passed. An error while the database answers is no outage: it is raised."""
        pause = RETRY_FIRST_SECONDS
        while True:
            try:
                return call()
            except DATABASE_DOWN as exc:
                if not exc.connection_invalidated and self.reachable():
                    raise
                left = until - time.monotonic()
                if left <= 0 or self.stop.requested():
                    message = f"cannot reach the database {what}: {_first_line(exc)}"
                    raise _DatabaseAway(message) from exc
                wait = min(pause, left) * random.uniform(0.8, 1.0)
                log.warning("%s: cannot reach the database %s, retrying in %.1f s: %s",
                            self.owner, what, wait, _first_line(exc))
                if self.stop.wait(wait):
                    raise _DatabaseAway(f"stopping while the database is away ({what})") from exc
                pause = min(2 * pause, RETRY_MAX_SECONDS)

    def reachable(self) -> bool:
        """Whether the database answers a trivial query now."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DATABASE_DOWN:
            return False
        return True

    def loop(self) -> int:
        """Work until stopped (or, with `once`, until nothing is claimable); returns shards done."""
        done, idle = 0, 0
        while not self.stop.requested():
            try:
                shard = self.retry("to claim a shard", lambda: shards.claim(
                    self.engine, self.owner, self.config.lease_seconds, self.config.max_attempts
                ))
            except _DatabaseAway as exc:
                log.warning("%s: %s", self.owner, exc)
                break
            if shard is None:
                if self.config.once:
                    break
                idle += 1
                pause = min(self.config.max_idle_seconds, 0.5 * 2**min(idle, 10))
                self.stop.wait(pause * random.uniform(0.8, 1.2))
                continue
            idle = 0
            done += self.run_shard(shard)
        self.engine.dispose()
        return done

    def run_shard(self, shard: ClaimedShard) -> int:
        """Render and write one claimed shard; returns 1 when it was written, else 0."""
        log.info(
            "%s: shard %d of job %d (attempt %d): %d directions", self.owner, shard.id,
            shard.job_id, shard.attempt, len(shard.directions),
        )
        keeper = _LeaseKeeper(self.engine, shard.id, self.owner, self.config.lease_seconds)
        keeper.start()
        try:
            return self._render_and_write(shard, keeper)
        finally:
            keeper.stop()

    def _render_and_write(self, shard: ClaimedShard, keeper: _LeaseKeeper) -> int:
        def check(_step: int, _total: int) -> None:
            if self.stop.requested():
                raise _Interrupted("stopping")
            if keeper.state != "held":
                raise _Interrupted(keeper.state)

        started = time.perf_counter()
        try:
            images = shard_work.produce(  # renders, references or an exemplar pass
                self.engine, shard, self.fabric, self.config.batch_size,
                self.config.weights_dir, check,
            )
            written = self.retry(
                f"to write rendered shard {shard.id}",
                lambda: shard_work.complete(self.engine, shard.id, images),
                until=keeper.expires,
            )
        except _Interrupted as exc:
            if exc.reason == "stopping":
                self.give_back(shard)
            else:
                log.info("%s: shard %d dropped: lease %s", self.owner, shard.id, exc.reason)
            return 0
        except _DatabaseAway as exc:
            log.warning("%s: shard %d discarded (%s); it will be rendered again", self.owner,
                        shard.id, exc)
            return 0
        except Exception as exc:  # noqa: BLE001 - any render failure is recorded on the shard
            self.record_failure(shard, keeper, f"{type(exc).__name__}: {exc}")
            return 0
        seconds = time.perf_counter() - started
        if written is None:
            log.info("%s: shard %d cancelled or settled meanwhile; discarded", self.owner,
                     shard.id)
            return 0
        log.info(
            "%s: shard %d of job %d done: %d images (%d new) in %.1f s, %.2f images/s",
            self.owner, shard.id, shard.job_id, len(images), written, seconds,
            len(images) / seconds,
        )
        return 1

    def record_failure(self, shard: ClaimedShard, keeper: _LeaseKeeper, message: str) -> None:
        """Put a failed render on the shard: queued again, or failed after its last attempt."""
        log.exception("%s: shard %d failed: %s", self.owner, shard.id, message)
        try:
            status = self.retry(
                f"to record shard {shard.id}'s failure",
                lambda: shards.fail_attempt(
                    self.engine, shard.id, self.owner, message, self.config.max_attempts
                ),
                until=keeper.expires,
            )
        except _DatabaseAway as away:
            status = f"unrecorded ({away}); its lease will lapse"
        log.info("%s: shard %d is now %s", self.owner, shard.id, status)

    def give_back(self, shard: ClaimedShard) -> None:
        """Release a shard unfinished on the way out; if the database is away, its lease lapses."""
        try:
            shards.release(self.engine, shard.id, self.owner)
        except DATABASE_DOWN as exc:
            log.warning("%s: stopping; shard %d not released (its lease will lapse): %s",
                        self.owner, shard.id, _first_line(exc))
            return
        log.info("%s: stopping; shard %d released", self.owner, shard.id)


def _rank_pids(fabric: Fabric) -> list[int]:
    """Every rank's process id (a collective: every rank calls it once, at start)."""
    import torch

    if fabric.world_size == 1:
        return [os.getpid()]
    gathered = fabric.all_gather(torch.tensor(os.getpid()))
    assert isinstance(gathered, torch.Tensor)  # one tensor in, one stacked tensor out
    return [int(pid) for pid in gathered.reshape(-1).tolist()]


def _serve(fabric: Fabric, config: WorkerConfig, precision: Precision) -> int:
    """The per-rank entry Fabric launches: every rank claims its own shards.

    Rank 0 passes a stop on to the other ranks (a service manager may signal only the process it
    started) and leaves last, so that no rank is cut off mid-shard.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:rank{fabric.global_rank}"
    others = [pid for pid in _rank_pids(fabric) if pid != os.getpid()]
    siblings = others if fabric.global_rank == 0 else []
    stop = StopSignal(forward_to=siblings)
    with stop.installed():
        worker = _Worker(config, owner, fabric, stop)
        log.info("%s: worker on %s (%s), batch size %d", owner, fabric.device,
                 PRECISION_WORDS[precision], config.batch_size)
        done = worker.loop()
        wait_for_exit(siblings)
    log.info("%s: exiting after %d shards", owner, done)
    return done


def run(config: WorkerConfig) -> int:
    """Start Fabric and serve on every rank; returns the number of shards rank 0 finished.

    Blocking; run it in a background process (`fvlab worker`) and stop it with SIGTERM or
    Ctrl-C, which makes each rank finish writing or release its current shard, then exit.
    """
    from lightning.fabric import Fabric

    accelerator = resolve_accelerator(config.accelerator)
    precision = PRECISIONS[accelerator]
    fabric = Fabric(accelerator=accelerator, devices=config.devices, precision=precision)
    return int(fabric.launch(partial(_serve, config=config, precision=precision)))
