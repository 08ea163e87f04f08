"""Studies without the worker: stimuli written straight into the image store, with the ORM.

`make_study` builds a job with basis and random directions, one stimulus each (a distinct
pseudo-random picture of the chosen size), and a study over them, on whichever backend the test
runs on. `play` drives the annotator pages and API through Flask's test client.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from annotate import create_app
from service.store.db import unit_of_work
from service.store.images import store
from service.store.models import Direction, Job, Stimulus, Study, StudyStimulus
from service.store.tokens import new_token

QUESTION = (
    "Does this image show one specific thing you could name — an object, an animal, a body "
    "part, or a distinctive texture — rather than a mix of unrelated fragments?"
)
SECRET = "test-secret-key-not-for-production"
_slugs = itertools.count()


@dataclass(frozen=True)
class StudyInfo:
    id: int
    slug: str
    job_name: str
    model: str
    layer: str
    stimulus_ids: dict[str, list[int]]  # condition -> ids


def stimulus_pixels(seed: int, size: int) -> np.ndarray:
    """A colourful interference pattern, different for every seed, standing in for a rendered
    feature visualization (gratings of random orientation and frequency in each channel)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = []
    for _ in range(3):
        angles, freqs = rng.uniform(0, np.pi, 4), rng.uniform(4, 30, 4)
        phases = rng.uniform(0, 6, 4)
        waves = [np.sin(f * (np.cos(a) * x + np.sin(a) * y) + p)
                 for a, f, p in zip(angles, freqs, phases, strict=True)]
        channels.append(np.tanh(1.5 * sum(waves) / 2))
    return ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)


def make_study(engine: Engine, *, n_basis: int = 6, n_random: int = 6, k: int = 3,
               trials: int = 6, catch_every: int = 3, practice: int = 2, size: int = 32,
               status: str = "open", completion_code: str = "C0DE42",
               redirect_url: str | None = None) -> StudyInfo:
    """A job over 'blocks.10' of efficientnet_lite0 and an open study over all its stimuli."""
    number = next(_slugs)
    with unit_of_work(engine) as db:
        job = Job(name=f"secretjob{number}", model="efficientnet_lite0", layers=["blocks.10"],
                  n_basis=n_basis, n_random=n_random, image_size=size, steps=8, seed=number,
                  status="done")
        db.add(job)
        db.flush()
        ids: dict[str, list[int]] = {"basis": [], "random": []}
        for kind, count in (("basis", n_basis), ("random", n_random)):
            for index in range(count):
                direction = Direction(job_id=job.id, layer="blocks.10", kind=kind, index=index,
                                      channel=index * 7 if kind == "basis" else None,
                                      vector=b"\0" * 16, seed=index)
                db.add(direction)
                db.flush()
                image = store(db, stimulus_pixels(number * 1000 + direction.id, size))
                stimulus = Stimulus(direction_id=direction.id, token=new_token(),
                                    image_sha256=image.sha256, objective=1.0,
                                    render_seconds=0.1)
                db.add(stimulus)
                db.flush()
                ids[kind].append(stimulus.id)
        study = Study(name=f"Study {number}", slug=f"study-{number}", status=status,
                      question=QUESTION, ratings_per_item=k, trials_per_session=trials,
                      catch_every=catch_every, practice_count=practice,
                      completion_code=completion_code, redirect_url=redirect_url)
        db.add(study)
        db.flush()
        db.add_all(StudyStimulus(study_id=study.id, stimulus_id=s)
                   for s in ids["basis"] + ids["random"])
        return StudyInfo(study.id, study.slug, job.name, job.model, "blocks.10", ids)


@pytest.fixture
def app(db_url: str, engine: Engine) -> Iterator[Flask]:
    """The site on a fresh database of each backend (schema created by `engine`)."""
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    yield app
    app.extensions["fvlab_engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def start(client: FlaskClient, slug: str, query: str = "") -> None:
    """Enter, consent and read the instructions, as a person would."""
    entry = client.get(f"/study/{slug}{query}")
    assert entry.status_code == 200, entry.text
    params = dict(parse_qsl(query.lstrip("?")))
    response = client.post(f"/study/{slug}/start", data={**params, "consent": "yes"})
    assert response.status_code == 302, response.text
    assert client.get(f"/study/{slug}/instructions").status_code == 200
    assert client.post(f"/study/{slug}/instructions").status_code == 302


def answer_all(client: FlaskClient,
               choose: Callable[[dict], dict] = lambda trial: {"interpretable": True}) -> list:
    """Rate every trial in order; returns the (trial, body) pairs sent."""
    sent = []
    while True:
        trials = client.get("/api/v1/trials?limit=1").get_json()["trials"]
        if not trials:
            return sent
        trial = trials[0]
        body = {"interpretable": True, "confidence": 3, "label": None, "rt_ms": 900}
        body.update(choose(trial))
        response = client.post(trial["rating"], json=body)
        assert response.status_code == 201, response.text
        sent.append((trial, body))
