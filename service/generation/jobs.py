"""The generation job queue as researchers see it: submit, cancel, list and inspect jobs.

A job is written whole or not at all: `submit` validates every field first (layers and channel
counts included), then samples the directions with the engine's seeded sampler
and stores them, so a job can be audited and re-created from its seed alone. Workers take the
job's shards through `service.generation.shards`; nothing here renders.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, zip_longest

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from service.featurevis.kinds import DirectionKind
from service.generation.job_requests import (
    AUTO_DIVERSITY,
    DEFAULT_REFERENCES,
    MAX_DIRECTIONS_PER_LAYER,
    NAME_MAX_CHARS,
    JobError,
    JobRequest,
    ModelLayers,
    check_int,
    validate,
)
from service.store.db import unit_of_work, utcnow
from service.store.models import (
    FINAL_JOB_STATES,
    OPEN_SHARD_STATES,
    Direction,
    Job,
    JobStatus,
    Shard,
    ShardKind,
    ShardStatus,
    Stimulus,
)

__all__ = [
    "DEMO_MARKER", "DEMO_NAME", "JobError", "JobRequest", "JobSummary", "ShardSummary", "cancel",
    "demo_job_id", "demo_request", "get_job", "job_shards", "list_jobs", "submit",
    "submit_demo_if_empty", "watch",
]

DEMO_NAME = "demo"
# The demo job carries this key (true) in its render settings JSON: it is recognised by the mark,
# never by its name, which any researcher may also give a job. Workers never see it (a claim's
# render settings leave it out).
DEMO_MARKER = "demo"
# The demo job's image-set side: the built-in photos, K references a sign, and the diversity
# weight `--diversity auto` chose for every direction of blocks.10 on these photos (a fixed one
# renders each image once instead of five times). Small shards let its progress show.
DEMO_REFERENCES = 3
DEMO_DIVERSITY = 100.0
DEMO_STEPS = 100
DEMO_SHARD_SIZE = 4


@dataclass
class JobSummary:
    """One job as the CLI and the researcher console show it."""

    id: int
    name: str
    model: str
    layers: list[str]
    progress: int
    total: int
    status: str
    images_per_second: float | None
    created_at: datetime
    error: str | None


@dataclass
class ShardSummary:
    """One shard of a job for the detail view: who holds it, how often tried, why it failed."""

    id: int
    status: str
    directions: int
    attempts: int
    lease_owner: str | None
    error: str | None
    kind: str = ShardKind.RENDER
    layer: str | None = None  # the layer an exemplar shard scores


@dataclass
class _SampledLayer:
    layer: str
    kind: DirectionKind
    vectors: list[bytes] = field(default_factory=list)
    channels: list[int | None] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

def _sample(model: ModelLayers, request: JobRequest, seed: int) -> list[_SampledLayer]:
    """Sample every layer's basis and random directions with the engine's seeded sampler."""
    from service.featurevis import sample_directions

    sampled = []
    for layer in request.layers:
        for kind, count in ((DirectionKind.BASIS, request.n_basis),
                            (DirectionKind.RANDOM, request.n_random)):
            if count == 0:
                continue
            try:
                found = sample_directions(
                    model.channels(layer), layer, kind, count, seed, random_kind=request.random_kind
                )
            except ValueError as exc:
                raise JobError(f"{kind} directions of layer {layer!r}: {exc}") from exc
            sampled.append(
                _SampledLayer(
                    layer=layer, kind=kind,
                    vectors=[row.astype("<f4").tobytes() for row in found.vectors],
                    channels=list(found.channels), seeds=[int(s) for s in found.seeds],
                )
            )
    return sampled


def _directions_in_shard_order(job_id: int, sampled: list[_SampledLayer]) -> list[Direction]:
    """Basis and random directions of each layer alternate, so that every shard mixes conditions
    and a job stopped part-way still has both conditions in balance."""
    per_layer: dict[str, list[list[Direction]]] = {}
    for group in sampled:
        rows = [
            Direction(
                job_id=job_id, layer=group.layer, kind=group.kind, index=i,
                channel=group.channels[i] if group.kind == DirectionKind.BASIS else None,
                vector=group.vectors[i], seed=group.seeds[i],
            )
            for i in range(len(group.vectors))
        ]
        per_layer.setdefault(group.layer, []).append(rows)
    ordered: list[Direction] = []
    for groups in per_layer.values():
        ordered.extend(d for d in chain.from_iterable(zip_longest(*groups)) if d is not None)
    return ordered


@dataclass
class _PreparedJob:
    """A validated job with its sampled directions, ready to be written in one transaction."""

    job: Job
    sampled: list[_SampledLayer]
    shard_size: int
    image_set: str | None = None


def _prepare(request: JobRequest, shard_size: int, *, demo: bool = False) -> _PreparedJob:
    """Validate the request and sample its directions; nothing touches the database."""
    model, render_settings = validate(request)
    check_int("shard_size", shard_size, 1, MAX_DIRECTIONS_PER_LAYER)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    sampled = _sample(model, request, seed)
    name = request.name.strip() if request.name else f"{request.model} {' '.join(request.layers)}"
    if demo:
        render_settings = {**render_settings, DEMO_MARKER: True}
    job = Job(
        name=name[:NAME_MAX_CHARS], model=request.model, weights=request.weights,
        layers=list(request.layers), n_basis=request.n_basis, n_random=request.n_random,
        random_kind=request.random_kind, objective=request.objective,
        image_size=request.image_size, steps=request.steps, lr=float(request.lr), seed=seed,
        replicates=1, render_settings=render_settings, status=JobStatus.QUEUED, progress=0,
    )
    if request.image_set is not None:
        job.n_references = request.references or DEFAULT_REFERENCES
        job.replicates = job.n_references  # replicate = reference index, per sign
        diversity = request.diversity if request.diversity is not None else AUTO_DIVERSITY
        job.diversity = None if diversity == AUTO_DIVERSITY else float(diversity)
        job.query_percentile = request.query_percentile
    return _PreparedJob(job, sampled, shard_size, request.image_set)


def _attach_image_set(session: Session, prepared: _PreparedJob) -> None:
    """Point the job at its image set, which must be complete and big enough for K references
    a side and the queries past them; JobError (the caller's transaction rolls back) if not."""
    from service.featurevis.exemplar_selection import DEFAULT_TASKS, check_selection
    from service.store.image_sets import ImageSetError, complete_set

    job = prepared.job
    assert prepared.image_set is not None and job.n_references is not None
    try:
        image_set = complete_set(session, prepared.image_set)
        check_selection(image_set.count, job.n_references, DEFAULT_TASKS, job.query_percentile)
    except (ImageSetError, ValueError) as exc:
        raise JobError(str(exc)) from exc
    job.image_set_id = image_set.id


def _write(session: Session, prepared: _PreparedJob) -> int:
    """Add the job, its directions and its shards in the caller's transaction; the job's id."""
    job = prepared.job
    if prepared.image_set is not None:
        _attach_image_set(session, prepared)
    session.add(job)
    session.flush()
    directions = _directions_in_shard_order(job.id, prepared.sampled)
    signs = 1 if prepared.image_set is None else 2  # with an image set, renders of +v and −v
    job.total = len(directions) * job.replicates * signs
    if prepared.image_set is not None:  # first, so that they are claimed before the renders
        session.add_all(Shard(job_id=job.id, kind=ShardKind.EXEMPLARS, layer=layer,
                              status=ShardStatus.QUEUED, attempts=0) for layer in job.layers)
    for start in range(0, len(directions), prepared.shard_size):
        shard = Shard(job_id=job.id, status=ShardStatus.QUEUED, attempts=0)
        session.add(shard)
        session.flush()
        for direction in directions[start : start + prepared.shard_size]:
            direction.shard_id = shard.id
    session.add_all(directions)
    return job.id


def submit(engine: Engine, request: JobRequest, shard_size: int = 32) -> int:
    """Validate the request, then write the job, its directions and its shards in one transaction.

    Returns the new job's id. Raises JobError (and writes nothing) when any field is invalid.
    """
    prepared = _prepare(request, shard_size)
    with unit_of_work(engine) as session:
        return _write(session, prepared)


def demo_request() -> JobRequest:
    """The small CPU demo job of `make run`: basis and random directions of two layers that share
    one truncated trunk, scored on the built-in photos, with K min and K max references each
    (96 images at 100 steps), so it finishes in minutes on two cores."""
    from service.store.image_sets import BUILTIN  # PIL and numpy: only when needed

    return JobRequest(
        model="efficientnet_lite0", layers=["blocks.6", "blocks.10"], n_basis=4, n_random=4,
        steps=DEMO_STEPS, seed=0, name=DEMO_NAME, image_set=BUILTIN,
        references=DEMO_REFERENCES, diversity=DEMO_DIVERSITY,
    )


def _job_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Job)) or 0


def submit_demo_if_empty(
    engine: Engine, progress: Callable[[int, int], None] | None = None
) -> int | None:
    """Submit the demo job when the database has no job yet (a newcomer's first `make run`).

    The built-in image set is imported first when absent (`progress` follows that import).

    Returns the new job's id, or None when jobs already exist, so that calling it at every start
    never queues a second demo. The count that decides and the insert are one transaction that
    holds the write lock (SQLite's, or a lock on `jobs` in PostgreSQL), so two starts at once
    queue one demo between them. A quick look first spares a later start the sampling.
    """
    with unit_of_work(engine) as session:
        if _job_count(session):
            return None
    from service.store.image_sets import BUILTIN, ensure_builtin

    request = demo_request()
    if request.image_set == BUILTIN:
        ensure_builtin(engine, progress)
    prepared = _prepare(request, DEMO_SHARD_SIZE, demo=True)
    with unit_of_work(engine, lock=True) as session:
        if session.get_bind().dialect.name == "postgresql":
            # Blocks other inserts into jobs (and itself) until commit; plain reads go on.
            session.execute(text("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE"))
        if _job_count(session):
            return None
        return _write(session, prepared)


def demo_job_id(engine: Engine) -> int | None:
    """The demo job (the oldest one marked as such), or None; its name plays no part."""
    with unit_of_work(engine) as session:
        return session.scalar(
            select(Job.id)
            .where(Job.render_settings[DEMO_MARKER].as_boolean())
            .order_by(Job.id)
            .limit(1)
        )


def render_settings_only(render_settings: dict[str, object]) -> dict[str, object]:
    """A job's render settings without the demo mark, as the renderer takes them."""
    return {key: value for key, value in render_settings.items() if key != DEMO_MARKER}


def cancel(engine: Engine, job_id: int) -> None:
    """Stop a job: its unfinished shards are no longer claimed, and a worker rendering one of them
    drops it at its next lease renewal. Raises JobError for an unknown or already finished job."""
    now = utcnow()
    with unit_of_work(engine, lock=True) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobError(f"job {job_id} does not exist")
        if job.finished_at is not None:
            raise JobError(f"job {job_id} already finished ({job.status})")
        # Shards before the job row: the same lock order as a worker finishing a shard.
        session.execute(
            update(Shard)
            .where(Shard.job_id == job_id, Shard.status.in_(OPEN_SHARD_STATES))
            .values(
                status=ShardStatus.CANCELLED, lease_owner=None, lease_expires_at=None,
                finished_at=now,
            )
        )
        job.status = JobStatus.CANCELLED
        job.finished_at = now


def _images_per_second(job: Job, last_written: datetime | None) -> float | None:
    """Images written per second of wall time, from the first claim to the last image written:
    with several workers this is their combined throughput."""
    if job.started_at is None or last_written is None or job.progress == 0:
        return None
    seconds = (last_written - job.started_at).total_seconds()
    return job.progress / seconds if seconds > 0 else None


def _summaries(engine: Engine, job_id: int | None) -> list[JobSummary]:
    last_written = (
        select(Direction.job_id, func.max(Stimulus.created_at).label("last"))
        .join(Stimulus, Stimulus.direction_id == Direction.id)
        .group_by(Direction.job_id)
        .subquery()
    )
    query = (
        select(Job, last_written.c.last)
        .outerjoin(last_written, last_written.c.job_id == Job.id)
        .order_by(Job.id)
    )
    if job_id is not None:
        query = query.where(Job.id == job_id)
    with unit_of_work(engine) as session:
        return [
            JobSummary(
                id=job.id, name=job.name, model=job.model, layers=list(job.layers),
                progress=job.progress, total=job.total, status=job.status,
                images_per_second=_images_per_second(job, last), created_at=job.created_at,
                error=job.error,
            )
            for job, last in session.execute(query)
        ]


def list_jobs(engine: Engine) -> list[JobSummary]:
    """Every job, oldest first."""
    return _summaries(engine, None)


def get_job(engine: Engine, job_id: int) -> JobSummary:
    """One job; JobError when it does not exist."""
    found = _summaries(engine, job_id)
    if not found:
        raise JobError(f"job {job_id} does not exist")
    return found[0]


def job_shards(engine: Engine, job_id: int) -> list[ShardSummary]:
    """The shards of a job with their attempts and errors; JobError when the job does not exist."""
    with unit_of_work(engine) as session:
        if session.get(Job, job_id) is None:
            raise JobError(f"job {job_id} does not exist")
        rows = session.execute(
            select(Shard, func.count(Direction.id))
            .outerjoin(Direction, Direction.shard_id == Shard.id)
            .where(Shard.job_id == job_id)
            .group_by(Shard.id)
            .order_by(Shard.id)
        )
        return [
            ShardSummary(
                id=shard.id, status=shard.status, directions=count, attempts=shard.attempts,
                lease_owner=shard.lease_owner, error=shard.error, kind=shard.kind,
                layer=shard.layer,
            )
            for shard, count in rows
        ]


def _open_shards(engine: Engine, job_id: int) -> int:
    with unit_of_work(engine) as session:
        return session.scalar(
            select(func.count()).select_from(Shard)
            .where(Shard.job_id == job_id, Shard.status.in_(OPEN_SHARD_STATES))
        ) or 0


def watch(engine: Engine, job_id: int, poll_seconds: float = 1.0) -> Iterator[JobSummary]:
    """The job at every poll, until it has ended or has no shard left to render.

    The last summary yielded is the final one; callers show progress from each and decide from
    the last one whether the job succeeded. JobError when the job does not exist.
    """
    while True:
        job = get_job(engine, job_id)
        yield job
        if job.status in FINAL_JOB_STATES or _open_shards(engine, job_id) == 0:
            return
        time.sleep(poll_seconds)
