"""Jobs in the console: the list with progress, the launch form (the CLI's checks), cancel."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work, utcnow
from service.store.models import Direction, Job
from tests.annotate.admin_support import sign_in

LAUNCH = {"model": "efficientnet_lite0", "layers": "blocks.10", "n_basis": "2", "n_random": "2",
          "random_kind": "gaussian", "objective": "dot", "image_size": "32", "steps": "4",
          "lr": "0.05", "seed": "3", "name": "tiny"}


def _job(engine: Engine, status: str, progress: int = 0, total: int = 4) -> int:
    with unit_of_work(engine) as db:
        job = Job(name=f"{status} job", model="efficientnet_lite0", layers=["blocks.10"],
                  n_basis=2, n_random=2, seed=1, status=status, progress=progress, total=total,
                  finished_at=utcnow() if status == "done" else None)
        db.add(job)
        db.flush()
        return job.id


def _jobs(engine: Engine) -> list[tuple[str, str]]:
    with unit_of_work(engine) as db:
        return [(job.name, job.status) for job in db.scalars(select(Job).order_by(Job.id))]


def test_list_shows_progress_and_cancel_works(client: FlaskClient, engine: Engine) -> None:
    running = _job(engine, "running", progress=1)
    done = _job(engine, "done", progress=4)
    token = sign_in(client, engine)
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    assert '<progress max="4" value="1"></progress> 1/4' in page.text
    assert page.text.count(">Cancel</button>") == 1  # only the unfinished job offers it
    response = client.post(f"/admin/jobs/{running}/cancel", data={"csrf_token": token})
    assert response.status_code == 302
    assert f"Job {running} cancelled." in client.get("/admin/jobs").text
    again = client.post(f"/admin/jobs/{done}/cancel", data={"csrf_token": token})
    assert again.status_code == 302
    assert f"job {done} already finished" in client.get("/admin/jobs").text
    assert client.post("/admin/jobs/999/cancel", data={"csrf_token": token}).status_code == 404
    assert _jobs(engine) == [("running job", "cancelled"), ("done job", "done")]


BAD_LAUNCHES = [
    ({"n_basis": "two"}, "n_basis must be a whole number, got &#39;two&#39;"),
    ({"lr": "fast"}, "lr must be a number, got &#39;fast&#39;"),
    ({"seed": "1.5"}, "seed must be a whole number"),
    ({"model": "no_such_net"}, "model &#39;no_such_net&#39; is unknown"),
    ({"layers": " "}, "layers: give at least one layer"),
    ({"n_basis": "0", "n_random": "0"}, "basis (--basis) and random (--random) are both 0"),
    ({"objective": "max"}, "objective must be one of dot, cossim"),
    ({"image_size": "8"}, "image_size must be between 16 and 1024"),
    ({"layers": "blocks.99"}, "layer &#39;blocks.99&#39; does not exist in efficientnet_lite0"),
]


def test_bad_launch_shows_the_jobs_error_and_writes_nothing(client: FlaskClient, engine: Engine,
                                                            subtests: pytest.Subtests) -> None:
    token = sign_in(client, engine)
    for change, message in BAD_LAUNCHES:
        with subtests.test(msg=message):
            response = client.post("/admin/jobs", data={**LAUNCH, **change, "csrf_token": token})
            assert response.status_code == 400
            assert message in response.text
            assert 'value="tiny"' in response.text  # the form keeps what was typed
            assert _jobs(engine) == []


def test_launch_queues_a_job_with_its_directions(client: FlaskClient, engine: Engine) -> None:
    token = sign_in(client, engine)
    response = client.post("/admin/jobs", data={**LAUNCH, "layers": "blocks.10, blocks.12",
                                                "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/jobs")
    assert "Job 1 queued" in page.text and "blocks.10, blocks.12" in page.text
    with unit_of_work(engine) as db:
        job = db.scalars(select(Job)).one()
        assert (job.name, job.layers, job.image_size, job.steps, job.seed, job.status) == (
            "tiny", ["blocks.10", "blocks.12"], 32, 4, 3, "queued")
        assert db.scalar(select(func.count(Direction.id))) == 8  # (2 + 2) per layer
