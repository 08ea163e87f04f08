"""The worker in this process (Fabric on CPU, tiny model): renders, writes, retries, fails."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, select

import service.featurevis
from service.generation.jobs import JobRequest, get_job, job_shards, submit
from service.generation.worker import WorkerConfig, resolve_accelerator, run
from service.store.db import unit_of_work
from service.store.models import Direction, Stimulus

TINY = JobRequest(model="tiny", layers=["conv2"], n_basis=2, n_random=2, image_size=32, steps=4,
                  seed=3)


def config(engine: Engine, **changes: object) -> WorkerConfig:
    base = WorkerConfig(database_url=engine.url.render_as_string(hide_password=False),
                        accelerator="cpu", once=True, lease_seconds=30)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_job_is_rendered_into_stimuli(engine: Engine) -> None:
    job_id = submit(engine, TINY, shard_size=3)
    assert run(config(engine, batch_size=2)) == 2
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("done", 4, 4)
    assert job.images_per_second is not None and job.images_per_second > 0
    with unit_of_work(engine) as s:
        query = select(Stimulus).join(Direction).where(Direction.job_id == job_id)
        stimuli = s.scalars(query).all()
        assert len({st.direction_id for st in stimuli}) == 4
        for stimulus in stimuli:
            assert stimulus.replicate == 0 and len(stimulus.token) == 32
            assert np.isfinite(stimulus.objective) and stimulus.natural_max is not None
            assert stimulus.render_seconds > 0
            png = PILImage.open(io.BytesIO(stimulus.image.png))
            assert png.size == (32, 32) and png.mode == "RGB"
    assert [s.attempts for s in job_shards(engine, job_id)] == [1, 1]


def test_a_failing_render_is_retried_then_failed_and_the_rest_completes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_render = service.featurevis.render

    def render_failing_on_conv3(model, requests, *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(r.layer == "conv3" for r in requests):
            raise RuntimeError("injected failure on conv3")
        return real_render(model, requests, *args, **kwargs)

    monkeypatch.setattr(service.featurevis, "render", render_failing_on_conv3)
    job_id = submit(engine, replace(TINY, layers=["conv2", "conv3"]), shard_size=4)
    run(config(engine, max_attempts=2))
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("failed", 4, 8)
    assert "injected failure on conv3" in (job.error or "")
    shards = job_shards(engine, job_id)
    assert [(s.status, s.attempts) for s in shards] == [("done", 1), ("failed", 2)]
    assert shards[1].error == "RuntimeError: injected failure on conv3"


def test_accelerator_choices() -> None:
    assert resolve_accelerator("cpu") == "cpu"
    assert resolve_accelerator("auto") in ("cpu", "gpu")
    with pytest.raises(ValueError, match="accelerator must be one of auto, cpu, gpu"):
        resolve_accelerator("tpu")
