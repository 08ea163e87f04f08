"""The worker on a CUDA GPU: Fabric picks bf16-mixed and renders a small job (skipped without CUDA).

`bench/gpu_check.sh` runs this on a GPU machine; elsewhere it skips.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sqlalchemy import select

from service.generation.jobs import JobRequest, get_job, submit
from service.generation.worker import WorkerConfig, run
from service.store.db import make_engine, unit_of_work
from service.store.models import Direction, Stimulus
from tests.conftest import create_schema

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
JOB = JobRequest(model="efficientnet_lite0", layers=["blocks.6", "blocks.10"], n_basis=3,
                 n_random=3, image_size=64, steps=32, seed=1)


def test_the_gpu_worker_renders_in_bf16_mixed_precision(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    create_schema(engine)
    job_id = submit(engine, JOB, shard_size=4)
    with caplog.at_level(logging.INFO, logger="fvlab"):
        run(WorkerConfig(database_url=sqlite_url, accelerator="gpu", once=True, batch_size=8))
    assert "worker on cuda:0 (bf16 mixed precision)" in caplog.text
    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("done", 12, 12)
    with unit_of_work(engine) as s:
        stimuli = s.scalars(select(Stimulus).join(Direction)
                            .where(Direction.job_id == job_id)).all()
        assert len(stimuli) == 12
        assert all(np.isfinite(st.objective) and st.natural_max is not None for st in stimuli)
    engine.dispose()
