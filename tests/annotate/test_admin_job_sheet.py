"""A job's contact sheet in the console, and launching a job with an image set from the form."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select

from service.generation.jobs import JobRequest, submit
from service.generation.worker import WorkerConfig, run
from service.store.db import unit_of_work
from service.store.image_sets import add_folder
from service.store.models import Exemplar, Job, Stimulus
from tests.annotate.admin_support import sign_in
from tests.annotate.test_admin_jobs import LAUNCH

IMAGE = re.compile(r'src="(/admin/jobs/\d+/sheet/[0-9a-f]{64}\.png)"')


def _small_set(engine: Engine, root: Path) -> None:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 25, (36, 36, 3)), 0, 255)
        PILImage.fromarray(pixels.astype(np.uint8)).save(root / f"{i}.png")
    add_folder(engine, "small", root)


def test_the_sheet_shows_min_and_max_renders_beside_natural_extremes(
    client: FlaskClient, engine: Engine, tmp_path: Path
) -> None:
    _small_set(engine, tmp_path / "small")
    job_id = submit(engine, JobRequest(model="tiny", layers=["conv2"], n_basis=1, n_random=1,
                                       image_size=32, steps=3, seed=1, image_set="small",
                                       references=2, diversity=0.0))
    other = submit(engine, JobRequest(model="tiny", layers=["conv1"], n_basis=1, n_random=0,
                                      image_size=32, steps=2, seed=2))
    run(WorkerConfig(database_url=engine.url.render_as_string(hide_password=False),
                     accelerator="cpu", once=True))
    sign_in(client, engine)
    page = client.get(f"/admin/jobs/{job_id}/sheet")
    assert page.status_code == 200
    assert "basis" in page.text and "random" in page.text and "conv2 · ch" in page.text
    assert "Image set small · 2 references per sign · diversity 0" in page.text
    images = IMAGE.findall(page.text)
    with unit_of_work(engine) as db:
        shown = (db.scalar(select(func.count(Stimulus.id))
                           .where(Stimulus.direction_id.in_([1, 2]))) or 0)
        naturals = db.scalar(select(func.count(Exemplar.id)).where(Exemplar.role == "reference"))
        other_sha = db.scalars(select(Stimulus.image_sha256).where(Stimulus.direction_id == 3)
                               ).first()
    assert len(images) == shown + naturals == 2 * (2 * 2) + 2 * (2 * 2)
    for src in images:
        response = client.get(src)
        assert response.status_code == 200 and response.mimetype == "image/png"
    assert client.get(f"/admin/jobs/{job_id}/sheet/{other_sha}.png").status_code == 404
    assert client.get(f"/admin/jobs/{other}/sheet").status_code == 200  # a plain job too
    assert client.get("/admin/jobs/999/sheet").status_code == 404


def test_launch_with_an_image_set_and_its_bad_inputs(client: FlaskClient, engine: Engine,
                                                     tmp_path: Path) -> None:
    _small_set(engine, tmp_path / "small")
    token = sign_in(client, engine)
    form = {**LAUNCH, "csrf_token": token, "image_set": "small", "references": "3"}
    for change, message in (({"image_set": "nope"}, "no image set named &#39;nope&#39;"),
                            ({"diversity": "lots"}, "diversity must be a number"),
                            ({"references": "20"}, "20 references per side need at least 40"),
                            ({"query_percentile": "40"}, "query percentile must be between")):
        response = client.post("/admin/jobs", data={**form, **change})
        assert response.status_code == 400 and message in response.text, response.text
    with unit_of_work(engine) as db:
        assert db.scalar(select(func.count(Job.id))) == 0
    assert client.post("/admin/jobs", data={**form, "query_percentile": "95"}).status_code == 302
    with unit_of_work(engine) as db:
        job = db.scalars(select(Job)).one()
        assert (job.n_references, job.diversity, job.query_percentile, job.replicates) == (
            3, None, 95.0, 3)
