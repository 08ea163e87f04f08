"""The generation worker: a Lightning Fabric program that renders claimed shards into the database.

Fabric owns the accelerator, the devices, the precision (bf16-mixed on GPU, 32-bit on CPU) and the
launch; with several devices every rank is an independent worker that claims its own shards, so
one machine with k GPUs behaves like k machines. Workers never talk to each other: the database
leases in `service.generation.shards` are the only coordination, which is what lets any number
of machines
join or die at any time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from service.generation import shards
from service.generation.shards import ClaimedDirection, ClaimedShard, RenderedImage
from service.store.db import make_engine

if TYPE_CHECKING:
    from lightning.fabric import Fabric
    from sqlalchemy import Engine

    from service.featurevis import LoadedModel

log = logging.getLogger("fvlab.worker")
ACCELERATORS = ("auto", "cpu", "gpu")


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


class _Interrupted(Exception):
    """Raised from the render's progress callback to drop the shard mid-render."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _LeaseKeeper(threading.Thread):
    """Renews the lease every third of its length while the main thread renders.

    A thread (not the render loop) renews, so that a long step, a slow natural-max pass or the
    final write cannot let the lease lapse while the worker is alive.
    """

    def __init__(self, engine: Engine, shard_id: int, owner: str, lease_seconds: float) -> None:
        super().__init__(daemon=True, name=f"lease-{shard_id}")
        self.engine, self.shard_id, self.owner = engine, shard_id, owner
        self.lease_seconds = lease_seconds
        self.state = "held"
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.lease_seconds / 3):
            try:
                self.state = shards.renew(
                    self.engine, self.shard_id, self.owner, self.lease_seconds
                )
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the render
                log.warning("shard %d: lease renewal failed, retrying: %s", self.shard_id, exc)
                continue
            if self.state != "held":
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


def resolve_accelerator(accelerator: str) -> str:
    """"auto" means a GPU when CUDA has one, else the CPU; anything else is passed to Fabric."""
    import torch

    if accelerator not in ACCELERATORS:
        choices = ", ".join(ACCELERATORS)
        raise ValueError(f"accelerator must be one of {choices}, got {accelerator!r}")
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return accelerator


@lru_cache(maxsize=2)
def _model_on(name: str, weights: str | None, device: str) -> LoadedModel:
    """One load per model and device for the life of the process; shards of one job share it."""
    from service.featurevis import load_model

    return load_model(name, weights=weights).to(device)


@lru_cache(maxsize=2)
def _natural_photos(image_size: int) -> np.ndarray:
    """The natural-max baseline photos, decoded and resized once per size (seconds each time)."""
    from service.featurevis import natural_photos

    return natural_photos(image_size)


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive chunks of at most `size`: one batched optimization each (layers may mix)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _image_seed(direction: ClaimedDirection, replicate: int) -> int:
    """Each image's own seed, from its direction and replicate: the image does not depend on the
    batch it lands in, so a shard rendered again (after a lost lease) gives the same images."""
    return int(np.random.SeedSequence([direction.seed, replicate]).generate_state(1)[0] >> 1)


def render_shard(
    shard: ClaimedShard, device: str, precision: str, batch_size: int,
    check: Callable[[int, int], None] | None = None,
) -> list[RenderedImage]:
    """Render every direction × replicate of a shard; `check(step, total)` may raise to stop."""
    import torch

    from service.featurevis import RenderRequest, RenderSettings, natural_max, render

    def autocast() -> contextlib.AbstractContextManager[object]:
        if precision == "bf16-mixed":
            return torch.autocast(torch.device(device).type, torch.bfloat16)
        return contextlib.nullcontext()

    model = _model_on(shard.model, shard.weights, device)
    settings = RenderSettings.from_dict(shard.render_settings)
    images: list[RenderedImage] = []
    work = [(d, r) for r in range(shard.replicates) for d in shard.directions]
    for batch in _batches(work, batch_size):
        requests = [
            RenderRequest(layer=d.layer, vector=d.vector, seed=_image_seed(d, r)) for d, r in batch
        ]
        results = render(
            model, requests, settings, seed=shard.seed, device=torch.device(device),
            progress=check, autocast=autocast,
        )
        maxima = natural_max(
            model, requests, settings, photos=_natural_photos(settings.image_size),
            device=torch.device(device),
        )
        images.extend(
            RenderedImage(
                direction_id=d.id, replicate=r, pixels=result.image, objective=result.objective,
                natural_max=float(maximum), seconds=result.seconds,
            )
            for (d, r), result, maximum in zip(batch, results, maxima, strict=True)
        )
    return images


class _Worker:
    """One rank's loop: claim, render under a renewed lease, write, repeat."""

    def __init__(self, config: WorkerConfig, owner: str, device: str, precision: str) -> None:
        self.config, self.owner, self.device, self.precision = config, owner, device, precision
        self.engine = make_engine(config.database_url)
        self.stop = threading.Event()

    def loop(self) -> int:
        """Work until stopped (or, with `once`, until nothing is claimable); returns shards done."""
        done, idle = 0, 0
        while not self.stop.is_set():
            shard = shards.claim(
                self.engine, self.owner, self.config.lease_seconds, self.config.max_attempts
            )
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

        def check(_step: int, _total: int) -> None:
            if self.stop.is_set():
                raise _Interrupted("stopping")
            if keeper.state != "held":
                raise _Interrupted(keeper.state)

        started = time.perf_counter()
        try:
            images = render_shard(shard, self.device, self.precision, self.config.batch_size, check)
        except _Interrupted as exc:
            keeper.stop()
            if exc.reason == "stopping":
                shards.release(self.engine, shard.id, self.owner)
                log.info("%s: stopping; shard %d released", self.owner, shard.id)
            else:
                log.info("%s: shard %d dropped: lease %s", self.owner, shard.id, exc.reason)
            return 0
        except Exception as exc:  # noqa: BLE001 - any render failure is recorded on the shard
            keeper.stop()
            message = f"{type(exc).__name__}: {exc}"
            status = shards.fail_attempt(
                self.engine, shard.id, self.owner, message, self.config.max_attempts
            )
            log.exception("%s: shard %d failed (now %s): %s", self.owner, shard.id, status, message)
            return 0
        keeper.stop()
        written = shards.complete(self.engine, shard.id, images)
        seconds = time.perf_counter() - started
        if written is None:
            log.info("%s: shard %d cancelled or settled meanwhile; discarded", self.owner, shard.id)
            return 0
        log.info(
            "%s: shard %d of job %d done: %d images (%d new) in %.1f s, %.2f images/s",
            self.owner, shard.id, shard.job_id, len(images), written, seconds,
            len(images) / seconds,
        )
        return 1


def _serve(fabric: Fabric, config: WorkerConfig, precision: str) -> int:
    """The per-rank entry Fabric launches: every rank claims its own shards."""
    owner = f"{socket.gethostname()}:{os.getpid()}:rank{fabric.global_rank}"
    device = str(fabric.device)
    worker = _Worker(config, owner, device, precision)
    children = list(getattr(fabric.strategy.launcher, "procs", []) or [])

    def on_signal(signum: int, _frame: object) -> None:
        worker.stop.set()
        for child in children:  # the launcher's other ranks: a service manager signals only us
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("%s: worker on %s (%s), batch size %d", owner, device, precision, config.batch_size)
    try:
        done = worker.loop()
        for child in children:  # rank 0 leaves last, so no rank is cut off mid-shard
            child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("%s: exiting after %d shards", owner, done)
    return done


def run(config: WorkerConfig) -> int:
    """Start Fabric and serve on every rank; returns the number of shards rank 0 finished.

    Blocking; run it in a background process (`fvlab worker`) and stop it with SIGTERM, which
    makes each rank finish writing or release its current shard, then exit.
    """
    from lightning.fabric import Fabric

    accelerator = resolve_accelerator(config.accelerator)
    precision = "bf16-mixed" if accelerator == "gpu" else "32-true"
    fabric = Fabric(accelerator=accelerator, devices=config.devices, precision=precision)
    return fabric.launch(_serve, config, "bf16-mixed" if accelerator == "gpu" else "32")
