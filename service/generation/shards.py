"""Shard leases: how workers on any number of machines share a job without losing or doubling work.

A worker claims one shard at a time as a lease (owner + expiry) and renews it while it renders. A
worker that dies simply stops renewing; once the lease has expired the shard is claimable again.
Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (claimers never wait on each other)
and an immediate transaction on SQLite (claimers take turns). Stimuli are unique per direction and
replicate, so a shard finished by a worker whose lease had expired still leaves one image each.

A job with an image set also has one `exemplars` shard per layer (see `exemplar_pass`); its
render shards are claimable only once every exemplar shard of the job is done, because its
renders are judged against, and their diversity searched from, the natural exemplars. If the
exemplar pass fails for good, the job's renders are failed with it rather than left waiting.

Lock order everywhere: shard rows before the job row, so that finishing, failing and cancelling
never deadlock with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from service.generation.jobs import render_settings_only
from service.store.db import rowcount, unit_of_work, utcnow
from service.store.images import store
from service.store.models import (
    OPEN_JOB_STATES,
    OPEN_SHARD_STATES,
    Direction,
    Job,
    JobStatus,
    Shard,
    ShardKind,
    ShardStatus,
    Sign,
    Stimulus,
)
from service.store.tokens import new_token

ERROR_MAX_CHARS = 2000


@dataclass(frozen=True)
class ClaimedDirection:
    id: int
    layer: str
    kind: str
    vector: np.ndarray
    seed: int


@dataclass(frozen=True)
class ClaimedShard:
    """Everything a worker needs to render a shard without reading the database again."""

    id: int
    job_id: int
    attempt: int
    model: str
    weights: str | None
    seed: int
    replicates: int
    render_settings: dict[str, Any]
    directions: tuple[ClaimedDirection, ...]
    kind: str = ShardKind.RENDER
    layer: str | None = None  # an exemplar shard's layer
    image_set_id: int | None = None
    references: int | None = None  # K per sign; None: one render of +v per replicate
    diversity: float | None = None  # None with references: searched per direction and sign
    query_percentile: float | None = None


@dataclass(frozen=True)
class RenderedImage:
    direction_id: int
    replicate: int
    pixels: np.ndarray
    objective: float
    natural_max: float | None
    seconds: float
    sign: str = Sign.MAX
    diversity: float | None = None


def _claimable(now: Any) -> Any:
    expired = and_(Shard.status == ShardStatus.RUNNING, Shard.lease_expires_at < now)
    pass_ = aliased(Shard)
    exemplars_pending = exists().where(
        pass_.job_id == Shard.job_id, pass_.kind == ShardKind.EXEMPLARS,
        pass_.status != ShardStatus.DONE,
    )
    return and_(
        or_(Shard.status == ShardStatus.QUEUED, expired),
        Job.status.notin_((JobStatus.CANCELLED, JobStatus.DONE)),
        or_(Shard.kind == ShardKind.EXEMPLARS, ~exemplars_pending),
    )


def _fail_job(session: Session, job_id: int, message: str) -> None:
    """Mark the job failed with the first shard error kept; its other shards still complete."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(OPEN_JOB_STATES))
        .values(status=JobStatus.FAILED, error=message[:ERROR_MAX_CHARS])
    )
    _finish_job_if_settled(session, job_id)


def _finish_job_if_settled(session: Session, job_id: int) -> None:
    """Close the job once no shard is left to render: done, or failed if a shard failed."""
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
    open_shards = session.scalar(
        select(func.count())
        .select_from(Shard)
        .where(Shard.job_id == job_id, Shard.status.in_(OPEN_SHARD_STATES))
    )
    if open_shards == 0 and job.finished_at is None:
        job.finished_at = utcnow()
        if job.status in OPEN_JOB_STATES:
            job.status = JobStatus.DONE


def _give_up(session: Session, shard: Shard, message: str) -> None:
    shard.status = ShardStatus.FAILED
    shard.error = message[:ERROR_MAX_CHARS]
    shard.lease_owner = None
    shard.lease_expires_at = None
    shard.finished_at = utcnow()
    if shard.kind == ShardKind.EXEMPLARS:  # its job's renders wait for it: they would wait forever
        session.execute(
            update(Shard)
            .where(Shard.job_id == shard.job_id, Shard.kind == ShardKind.RENDER,
                   Shard.status == ShardStatus.QUEUED)
            .values(status=ShardStatus.FAILED, finished_at=shard.finished_at,
                    error="not rendered: the job's exemplar pass failed")
        )
    session.flush()
    summary = f"shard {shard.id} failed after {shard.attempts} attempts: {message}"
    _fail_job(session, shard.job_id, summary)


def _load_claim(session: Session, shard: Shard) -> ClaimedShard:
    job = session.get_one(Job, shard.job_id)
    mine = (Direction.shard_id == shard.id if shard.kind == ShardKind.RENDER
            else and_(Direction.job_id == job.id, Direction.layer == shard.layer))
    directions = session.scalars(select(Direction).where(mine).order_by(Direction.id))
    return ClaimedShard(
        id=shard.id, job_id=job.id, attempt=shard.attempts, model=job.model, weights=job.weights,
        seed=job.seed, replicates=job.replicates,
        render_settings=render_settings_only(job.render_settings),
        kind=shard.kind, layer=shard.layer, image_set_id=job.image_set_id,
        references=job.n_references, diversity=job.diversity,
        query_percentile=job.query_percentile,
        directions=tuple(
            ClaimedDirection(
                id=d.id, layer=d.layer, kind=d.kind,
                vector=np.frombuffer(d.vector, dtype="<f4").astype(np.float32), seed=d.seed,
            )
            for d in directions
        ),
    )


def claim(
    engine: Engine, owner: str, lease_seconds: float, max_attempts: int
) -> ClaimedShard | None:
    """Take the oldest claimable shard as a lease for `owner`, or None when there is none.

    A shard whose lease expired `max_attempts` times (its workers keep dying) is failed instead.
    """
    with unit_of_work(engine, lock=True) as session:
        while True:
            now = utcnow()
            shard = session.scalars(
                select(Shard)
                .join(Job, Job.id == Shard.job_id)
                .where(_claimable(now))
                .order_by(Shard.id)
                .limit(1)
                .with_for_update(skip_locked=True, of=Shard)
            ).first()
            if shard is None:
                return None
            if shard.attempts >= max_attempts:
                lost = f"lease of {shard.lease_owner} expired (worker lost)"
                _give_up(session, shard, shard.error or lost)
                continue
            shard.status = ShardStatus.RUNNING
            shard.attempts += 1
            shard.lease_owner = owner
            shard.lease_expires_at = now + timedelta(seconds=lease_seconds)
            session.execute(
                update(Job)
                .where(Job.id == shard.job_id, Job.status == JobStatus.QUEUED)
                .values(status=JobStatus.RUNNING, started_at=now)
            )
            session.flush()
            return _load_claim(session, shard)


def renew(engine: Engine, shard_id: int, owner: str, lease_seconds: float) -> str:
    """Extend the lease; returns "held", or why it is gone: "cancelled" or "lost" (expired and
    taken by another worker, or settled meanwhile)."""
    with unit_of_work(engine) as session:
        renewed = rowcount(session.execute(
            update(Shard)
            .where(
                Shard.id == shard_id, Shard.status == ShardStatus.RUNNING,
                Shard.lease_owner == owner,
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        ))
        if renewed:
            return "held"
        status = session.scalar(select(Shard.status).where(Shard.id == shard_id))
        return "cancelled" if status == ShardStatus.CANCELLED else "lost"


def release(engine: Engine, shard_id: int, owner: str) -> bool:
    """Give a shard back unfinished (worker stopping): queued again, the attempt not counted."""
    with unit_of_work(engine, lock=True) as session:
        return bool(
            rowcount(session.execute(
                update(Shard)
                .where(
                    Shard.id == shard_id, Shard.status == ShardStatus.RUNNING,
                    Shard.lease_owner == owner,
                )
                .values(
                    status=ShardStatus.QUEUED, lease_owner=None, lease_expires_at=None,
                    attempts=Shard.attempts - 1,
                )
            ))
        )


def fail_attempt(engine: Engine, shard_id: int, owner: str, error: str, max_attempts: int) -> str:
    """Record a failed render: the shard is queued again, or failed (with its job) after
    `max_attempts`. Returns the shard's new status, or "lost" when the lease was no longer ours."""
    with unit_of_work(engine, lock=True) as session:
        shard = session.scalars(
            select(Shard).where(Shard.id == shard_id).with_for_update()
        ).one_or_none()
        if shard is None or shard.status != ShardStatus.RUNNING or shard.lease_owner != owner:
            return "lost"
        if shard.attempts >= max_attempts:
            _give_up(session, shard, error)
            return "failed"
        shard.status = ShardStatus.QUEUED
        shard.error = error[:ERROR_MAX_CHARS]
        shard.lease_owner = None
        shard.lease_expires_at = None
        return "queued"


def _insert_stimulus(session: Session, values: dict[str, Any]) -> int:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Stimulus)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["direction_id", "sign", "replicate"])
        .returning(Stimulus.id)
    )
    # RETURNING, not rowcount: through the psycopg dialect this insert's rowcount reads -1.
    return len(session.execute(statement).all())


def open_shard(session: Session, shard_id: int) -> Shard | None:
    """The shard, row-locked, if it is still unsettled (queued or running); else None.

    Every writer of a shard's results calls this first in its transaction, so that results are
    written once however many workers finished the shard (a lost lease, a slow worker).
    """
    shard = session.scalars(
        select(Shard).where(Shard.id == shard_id).with_for_update()
    ).one_or_none()
    return shard if shard is not None and shard.status in OPEN_SHARD_STATES else None


def settle(session: Session, shard: Shard, images_written: int) -> None:
    """Mark a written shard done, count its new images on the job, and close the job if it was
    the last open shard."""
    shard.status = ShardStatus.DONE
    shard.lease_owner = None
    shard.lease_expires_at = None
    shard.finished_at = utcnow()
    session.flush()
    if images_written:
        session.execute(
            update(Job).where(Job.id == shard.job_id)
            .values(progress=Job.progress + images_written)
        )
    _finish_job_if_settled(session, shard.job_id)


def complete(engine: Engine, shard_id: int, images: list[RenderedImage]) -> int | None:
    """Write a rendered shard's stimuli and PNGs in one transaction and mark the shard done.

    Returns how many stimuli were new, or None when the shard was cancelled or already settled
    (nothing written). The shard row is locked first and only an unsettled shard is written, so
    a shard rendered twice leaves neither a second stimulus nor an orphan image; the unique
    (direction, sign, replicate) key backs this up in the database itself.
    """
    with unit_of_work(engine, lock=True) as session:
        shard = open_shard(session, shard_id)
        if shard is None:
            return None
        written = 0
        for image in images:
            stored = store(session, image.pixels)
            written += _insert_stimulus(
                session,
                {
                    "direction_id": image.direction_id, "sign": image.sign,
                    "replicate": image.replicate, "token": new_token(),
                    "image_sha256": stored.sha256, "objective": float(image.objective),
                    "natural_max": None if image.natural_max is None else float(image.natural_max),
                    "diversity": image.diversity,
                    "render_seconds": float(image.seconds), "created_at": utcnow(),
                },
            )
        settle(session, shard, written)
        return written
