"""Shard leases on SQLite and PostgreSQL: claim, renew, expire, fail, complete, cancel.

The jobs here are written directly (no model), so these tests pin the queue's rules alone.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, update

from service.generation import shards
from service.generation.jobs import JobError, cancel, get_job, job_shards
from service.generation.shards import RenderedImage
from service.store.db import unit_of_work, utcnow
from service.store.models import Direction, Image, Job, Shard, Stimulus


def make_job(engine: Engine, n_directions: int = 4, shard_size: int = 2) -> int:
    with unit_of_work(engine) as s:
        job = Job(
            name="t", model="tiny", layers=["conv1"], n_basis=n_directions, n_random=0,
            seed=1, total=n_directions, render_settings={},
        )
        s.add(job)
        s.flush()
        for start in range(0, n_directions, shard_size):
            shard = Shard(job_id=job.id)
            s.add(shard)
            s.flush()
            for i in range(start, min(start + shard_size, n_directions)):
                vector = np.zeros(8, np.float32)
                vector[i % 8] = 1
                s.add(Direction(job_id=job.id, shard_id=shard.id, layer="conv1", kind="basis",
                                index=i, channel=i, vector=vector.tobytes(), seed=100 + i))
        return job.id


def images_for(claimed: shards.ClaimedShard, shade: float = 0.5) -> list[RenderedImage]:
    return [
        RenderedImage(direction_id=d.id, replicate=0, pixels=np.full((8, 8, 3), shade + d.id / 100),
                      objective=1.0, natural_max=2.0, seconds=0.1)
        for d in claimed.directions
    ]


def expire_leases(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        s.execute(update(Shard).where(Shard.status == "running")
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def test_claims_are_exclusive_and_carry_the_directions(engine: Engine) -> None:
    job_id = make_job(engine, n_directions=4, shard_size=2)
    first = shards.claim(engine, "a", 60, 3)
    second = shards.claim(engine, "b", 60, 3)
    assert first and second and first.id != second.id
    assert shards.claim(engine, "c", 60, 3) is None
    assert [d.seed for d in first.directions] == [100, 101]
    assert first.directions[0].vector.dtype == np.float32 and first.directions[0].vector[0] == 1
    assert first.attempt == 1 and first.model == "tiny"
    assert get_job(engine, job_id).status == "running"


def test_an_expired_lease_is_claimed_again_and_the_old_owner_loses_it(engine: Engine) -> None:
    make_job(engine, n_directions=2, shard_size=2)
    first = shards.claim(engine, "a", 60, 3)
    assert first is not None
    assert shards.renew(engine, first.id, "a", 60) == "held"
    expire_leases(engine)
    second = shards.claim(engine, "b", 60, 3)
    assert second is not None and second.id == first.id and second.attempt == 2
    assert shards.renew(engine, first.id, "a", 60) == "lost"
    assert shards.renew(engine, first.id, "b", 60) == "held"


def test_a_lease_renewed_in_time_is_not_taken(engine: Engine) -> None:
    make_job(engine, n_directions=2, shard_size=2)
    first = shards.claim(engine, "a", 1.0, 3)
    assert first is not None
    for _ in range(3):
        time.sleep(0.4)
        assert shards.renew(engine, first.id, "a", 1.0) == "held"
        assert shards.claim(engine, "b", 1.0, 3) is None
    time.sleep(1.2)
    assert shards.claim(engine, "b", 1.0, 3) is not None


def test_complete_writes_each_stimulus_once_even_when_rendered_twice(engine: Engine) -> None:
    job_id = make_job(engine, n_directions=2, shard_size=2)
    first = shards.claim(engine, "a", 60, 3)
    assert first is not None
    expire_leases(engine)
    second = shards.claim(engine, "b", 60, 3)
    assert second is not None
    assert shards.complete(engine, second.id, images_for(second, 0.2)) == 2
    # The slow first worker finishes with different pixels: nothing new, no orphan image.
    assert shards.complete(engine, first.id, images_for(first, 0.6)) is None
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Stimulus)) == 2
        assert s.scalar(select(func.count()).select_from(Image)) == 2
        tokens = s.scalars(select(Stimulus.token)).all()
    assert all(len(t) == 32 for t in tokens) and len(set(tokens)) == 2
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("done", 2, 2)
    assert job.images_per_second is not None and job.images_per_second > 0


def test_a_late_worker_finishing_a_taken_shard_writes_only_the_missing_images(
    engine: Engine,
) -> None:
    job_id = make_job(engine, n_directions=2, shard_size=2)
    first = shards.claim(engine, "a", 60, 3)
    assert first is not None
    expire_leases(engine)
    second = shards.claim(engine, "b", 60, 3)
    assert second is not None
    assert shards.complete(engine, first.id, images_for(first)) == 2  # "a" was only slow
    assert shards.renew(engine, second.id, "b", 60) == "lost"
    assert get_job(engine, job_id).progress == 2


def test_failures_retry_then_fail_the_shard_and_job_while_the_rest_completes(
    engine: Engine,
) -> None:
    job_id = make_job(engine, n_directions=4, shard_size=2)
    statuses = []
    for attempt in range(3):
        claimed = shards.claim(engine, f"w{attempt}", 60, 3)
        assert claimed is not None and claimed.attempt == attempt + 1
        statuses.append(shards.fail_attempt(engine, claimed.id, f"w{attempt}", "boom", 3))
    assert statuses == ["queued", "queued", "failed"]
    job = get_job(engine, job_id)
    assert job.status == "failed" and "boom" in (job.error or "")
    rest = shards.claim(engine, "w", 60, 3)
    assert rest is not None
    assert shards.complete(engine, rest.id, images_for(rest)) == 2
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("failed", 2, 4)
    detail = job_shards(engine, job_id)
    assert [(s.status, s.attempts, s.error) for s in detail] == [
        ("failed", 3, "boom"), ("done", 1, None)
    ]
    with unit_of_work(engine) as s:
        assert s.get_one(Job, job_id).finished_at is not None


def test_a_shard_whose_workers_keep_dying_fails_after_max_attempts(engine: Engine) -> None:
    job_id = make_job(engine, n_directions=2, shard_size=2)
    for owner in ("a", "b"):
        assert shards.claim(engine, owner, 60, 2) is not None
        expire_leases(engine)
    assert shards.claim(engine, "c", 60, 2) is None
    job = get_job(engine, job_id)
    assert job.status == "failed" and "lease of b expired" in (job.error or "")


def test_release_requeues_without_counting_an_attempt(engine: Engine) -> None:
    make_job(engine, n_directions=2, shard_size=2)
    claimed = shards.claim(engine, "a", 60, 3)
    assert claimed is not None
    assert shards.release(engine, claimed.id, "b") is False
    assert shards.release(engine, claimed.id, "a") is True
    again = shards.claim(engine, "b", 60, 3)
    assert again is not None and again.id == claimed.id and again.attempt == 1


def test_cancel_stops_claims_and_the_running_worker_notices(engine: Engine) -> None:
    job_id = make_job(engine, n_directions=4, shard_size=2)
    running = shards.claim(engine, "a", 60, 3)
    assert running is not None
    cancel(engine, job_id)
    assert shards.claim(engine, "b", 60, 3) is None
    assert shards.renew(engine, running.id, "a", 60) == "cancelled"
    assert shards.complete(engine, running.id, images_for(running)) is None
    job = get_job(engine, job_id)
    assert (job.status, job.progress) == ("cancelled", 0)
    with pytest.raises(JobError, match="already finished"):
        cancel(engine, job_id)
    with pytest.raises(JobError, match="job 999 does not exist"):
        cancel(engine, 999)
    with pytest.raises(JobError, match="job 999 does not exist"):
        get_job(engine, 999)
