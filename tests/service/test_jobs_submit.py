"""Submitting jobs: validation first, directions sampled and stored, shards cut, one transaction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import Engine, delete, func, select

from service.generation.jobs import (
    DEMO_REFERENCES,
    JobError,
    JobRequest,
    get_job,
    list_jobs,
    submit,
    submit_demo_if_empty,
)
from service.store.db import unit_of_work
from service.store.image_sets import BUILTIN, list_sets
from service.store.models import Direction, Job, Shard

TINY = JobRequest(model="tiny", layers=["conv2"], n_basis=3, n_random=4, image_size=32, steps=4,
                  seed=7)


def directions_of(engine: Engine, job_id: int) -> list[Direction]:
    with unit_of_work(engine) as s:
        return list(s.scalars(select(Direction).where(Direction.job_id == job_id)
                              .order_by(Direction.id)))


def count(engine: Engine, model: type) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_submit_stores_directions_and_shards(engine: Engine) -> None:
    request = replace(TINY, layers=["conv1", "conv2"])
    job_id = submit(engine, request, shard_size=4)
    rows = directions_of(engine, job_id)
    assert len(rows) == 14
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("queued", 0, 14)
    assert job.layers == ["conv1", "conv2"]
    assert job.name == "tiny conv1 conv2"
    for layer in ("conv1", "conv2"):
        kinds = [d.kind for d in rows if d.layer == layer]
        assert kinds == ["basis", "random"] * 3 + ["random"]  # alternating, not blocks
        basis = [d for d in rows if d.layer == layer and d.kind == "basis"]
        assert len({d.channel for d in basis}) == 3
        for d in basis:
            vector = np.frombuffer(d.vector, dtype="<f4")
            assert vector[d.channel] == pytest.approx(1.0) and np.count_nonzero(vector) == 1
    for d in rows:
        assert np.linalg.norm(np.frombuffer(d.vector, dtype="<f4")) == pytest.approx(1.0, abs=1e-5)
    with unit_of_work(engine) as s:
        sizes = s.execute(select(func.count(Direction.id)).join(Shard).group_by(Shard.id)
                          .order_by(Shard.id)).scalars().all()
        stored = s.get_one(Job, job_id)
        assert stored.render_settings["steps"] == 4 and stored.seed == 7
    assert sizes == [4, 4, 4, 2]


def test_the_same_seed_gives_identical_directions(engine: Engine) -> None:
    first = directions_of(engine, submit(engine, TINY))
    second = directions_of(engine, submit(engine, TINY))
    other = directions_of(engine, submit(engine, replace(TINY, seed=8)))
    key = [(d.layer, d.kind, d.index, d.channel, d.vector, d.seed) for d in first]
    assert key == [(d.layer, d.kind, d.index, d.channel, d.vector, d.seed) for d in second]
    assert [d.vector for d in other] != [d.vector for d in first]


def test_without_a_seed_one_is_drawn_and_kept(engine: Engine) -> None:
    job_id = submit(engine, replace(TINY, seed=None))
    with unit_of_work(engine) as s:
        seed = s.get_one(Job, job_id).seed
    again = submit(engine, replace(TINY, seed=seed))
    assert [d.vector for d in directions_of(engine, job_id)] == [
        d.vector for d in directions_of(engine, again)
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "lenet"}, "model 'lenet' is unknown"),
        ({"layers": ["conv9"]},
         "layer 'conv9' does not exist in tiny (layers: conv1, conv2, conv3)"),
        ({"layers": []}, "layers: give at least one layer"),
        ({"layers": ["conv1", "conv1"]}, "lists a layer twice"),
        ({"n_basis": 10_000}, "n_basis 10000 is more than the"),
        ({"n_basis": 0, "n_random": 0}, "both 0"),
        ({"n_random": -1}, "n_random must be between 0"),
        ({"random_kind": "uniform"}, "random_kind must be one of gaussian, orthogonal"),
        ({"objective": "max"}, "objective must be one of dot, cossim"),
        ({"image_size": 8}, "image_size must be between 16 and 1024"),
        ({"steps": 0}, "steps must be between 1"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"seed": -5}, "seed must be between 0"),
        ({"name": " "}, "name must be 1 to 200 characters"),
        ({"weights": "/nonexistent/weights.pt"}, "model 'tiny':"),
    ],
)
def test_a_bad_request_names_the_field_and_writes_nothing(
    engine: Engine, change: dict[str, object], message: str
) -> None:
    with pytest.raises(JobError) as raised:
        submit(engine, replace(TINY, **change))  # type: ignore[arg-type]
    assert message in str(raised.value)
    assert count(engine, Job) == count(engine, Direction) == count(engine, Shard) == 0


def test_bad_shard_size_is_refused(engine: Engine) -> None:
    with pytest.raises(JobError, match="shard_size"):
        submit(engine, TINY, shard_size=0)
    assert count(engine, Job) == 0


def test_list_jobs_in_order(engine: Engine) -> None:
    first = submit(engine, TINY)
    second = submit(engine, replace(TINY, name="second"))
    summaries = list_jobs(engine)
    assert [(j.id, j.name) for j in summaries] == [(first, "tiny conv2"), (second, "second")]
    assert summaries[0].images_per_second is None and summaries[0].error is None


@pytest.mark.slow
def test_the_demo_job_is_submitted_once(engine: Engine) -> None:
    job_id = submit_demo_if_empty(engine)
    assert job_id is not None
    job = get_job(engine, job_id)
    assert (job.model, job.layers, job.total, job.name) == (
        "efficientnet_lite0", ["blocks.6", "blocks.10"], 16 * 2 * DEMO_REFERENCES, "demo")
    assert [s.name for s in list_sets(engine)] == [BUILTIN]  # imported for it
    assert submit_demo_if_empty(engine) is None
    assert count(engine, Job) == 1


def test_two_starts_at_once_queue_one_demo(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both starts find the database empty; one imports the built-in photos while the other
    waits for them; the count that decides shares the insert's transaction, so only one of them
    queues the demo."""
    import threading

    from service.generation import jobs

    both_checked = threading.Barrier(2, timeout=30)
    real_validate = jobs.validate

    def validate_after_both_counted(request):  # type: ignore[no-untyped-def]
        both_checked.wait()  # each start has counted zero jobs by now
        return real_validate(request)

    monkeypatch.setattr(jobs, "validate", validate_after_both_counted)
    monkeypatch.setattr(jobs, "demo_request", lambda: replace(
        TINY, name=jobs.DEMO_NAME, image_set=BUILTIN, references=DEMO_REFERENCES))
    found: list[int | None] = []
    threads = [threading.Thread(target=lambda: found.append(submit_demo_if_empty(engine)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 2 and found.count(None) == 1
    assert count(engine, Job) == 1
    assert [(s.name, s.count) for s in list_sets(engine)] == [(BUILTIN, 448)]


def test_the_demo_is_known_by_its_mark_not_its_name(engine: Engine) -> None:
    from service.generation.jobs import DEMO_MARKER, DEMO_NAME, demo_job_id
    from service.generation.shards import claim

    assert demo_job_id(engine) is None
    impostor = submit(engine, replace(TINY, name=DEMO_NAME))  # a researcher's job named "demo"
    assert demo_job_id(engine) is None
    with unit_of_work(engine) as s:
        s.execute(delete(Shard).where(Shard.job_id == impostor))
        s.execute(delete(Direction).where(Direction.job_id == impostor))
        s.execute(delete(Job).where(Job.id == impostor))
    demo = submit_demo_if_empty(engine)
    renamed = "My first pictures"
    with unit_of_work(engine) as s:
        job = s.get_one(Job, demo)
        assert job.render_settings[DEMO_MARKER] is True
        job.name = renamed
    submit(engine, replace(TINY, name=DEMO_NAME))
    assert demo_job_id(engine) == demo
    claimed = claim(engine, "w", lease_seconds=60, max_attempts=3)
    assert claimed is not None and claimed.job_id == demo
    assert DEMO_MARKER not in claimed.render_settings  # the renderer gets render settings only
