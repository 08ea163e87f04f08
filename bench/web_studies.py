"""The studies bench/web_load.py serves: written straight into the store, no rendering.

Both are made as a researcher would (`create_study`, which also draws the catch items), then
opened under the slug `load`, with 40 trials a session, a catch trial every 10 and 2 practice
trials, and k so large that no item runs out during a run. Pictures are distinct noisy blocky
patterns whose PNGs take 25-40 KB at 128 px, as rendered visualizations do, so catch items can
be drawn in the stimuli's byte range.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from service.store.db import make_engine, unit_of_work
from service.store.images import store
from service.store.models import (
    Direction,
    Exemplar,
    ImageSet,
    ImageSetMember,
    Job,
    ReferenceKind,
    Stimulus,
    Study,
    StudyTask,
)
from service.store.tokens import new_token
from service.studies.study import StudyRequest, create_study, open_study

SLUG = "load"
IMAGE_SIZE = 128
AFC_IMAGE_SIZE = 64  # composed into 96 px reference and 160 px query cells on the server
REFERENCES = 4  # a side, for synthetic and natural references alike
QUERY_PAIRS = 3
TRIALS, CATCH_EVERY, PRACTICE = 40, 10, 2
UNLIMITED_K = 1_000_000
NOISE = (6, 20)  # the range of each picture's noise amplitude, which sets its PNG's length


def _blocks(rng: np.random.Generator, size: int) -> np.ndarray:
    blocks = rng.integers(0, 256, (size // 8, size // 8, 3))
    amplitude = int(rng.integers(*NOISE))
    noise = rng.integers(-amplitude, amplitude + 1, (size, size, 3))
    pixels = np.kron(blocks, np.ones((8, 8, 1), dtype=np.int64)) + noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _job(n_basis: int, n_random: int, size: int) -> Job:
    return Job(name="load", model="efficientnet_lite0", layers=["blocks.10"], n_basis=n_basis,
               n_random=n_random, image_size=size, steps=1, seed=0, status="done")


def _open_as_load(engine: Engine, request: StudyRequest) -> None:
    """Create the study, give it the bench's slug and an unlimited k, and open it."""
    study_id = create_study(engine, request)
    with unit_of_work(engine) as db:
        db.execute(update(Study).where(Study.id == study_id)
                   .values(slug=SLUG, ratings_per_item=UNLIMITED_K))
    open_study(engine, study_id)


def _request(job_id: int, task: StudyTask, reference_kinds: list[str]) -> StudyRequest:
    return StudyRequest(job_ids=[job_id], name="Pictures", task=task,
                        reference_kinds=reference_kinds, ratings_per_item=1,
                        trials_per_session=TRIALS, catch_every=CATCH_EVERY,
                        practice_count=PRACTICE, completion_code="LOAD")


def setup_rating_study(url: str, n_stimuli: int) -> None:
    """Half basis, half random stimuli; an open rating study over them."""
    engine = make_engine(url)
    rng = np.random.default_rng(0)
    with unit_of_work(engine) as db:
        job = _job(n_stimuli // 2, n_stimuli - n_stimuli // 2, IMAGE_SIZE)
        db.add(job)
        db.flush()
        for index in range(n_stimuli):
            kind = "basis" if index < job.n_basis else "random"
            direction = Direction(job_id=job.id, layer="blocks.10", kind=kind, index=index,
                                  channel=index if kind == "basis" else None,
                                  vector=b"\0" * 16, seed=index)
            db.add(direction)
            db.flush()
            image = store(db, _blocks(rng, IMAGE_SIZE))
            db.add(Stimulus(direction_id=direction.id, token=new_token(),
                            image_sha256=image.sha256, objective=1.0, render_seconds=0.1))
        job_id = job.id
    _open_as_load(engine, _request(job_id, StudyTask.RATING, []))
    engine.dispose()


def _afc_direction(db: Session, rng: np.random.Generator, job: Job, image_set: ImageSet,
                   kind: str, index: int, positions: itertools.count[int]) -> None:
    """One direction with REFERENCES renders of each sign and, from the image set,
    REFERENCES natural references a side and QUERY_PAIRS query pairs."""
    direction = Direction(job_id=job.id, layer="blocks.10", kind=kind, index=index,
                          channel=index if kind == "basis" else None, vector=b"\0" * 16,
                          seed=index, activation_sd=2.0)
    db.add(direction)
    db.flush()
    for sign in ("max", "min"):
        for replicate in range(REFERENCES):
            sha = store(db, _blocks(rng, AFC_IMAGE_SIZE)).sha256
            db.add(Stimulus(direction_id=direction.id, sign=sign, replicate=replicate,
                            token=new_token(), image_sha256=sha, objective=1.0,
                            render_seconds=0.1))
        for rank in range(REFERENCES + QUERY_PAIRS):
            sha = store(db, _blocks(rng, AFC_IMAGE_SIZE)).sha256
            position = next(positions)
            data = f"photo {position} {sha}".encode()
            member = ImageSetMember(set_id=image_set.id, position=position,
                                    sha256=hashlib.sha256(data).hexdigest(), data=data,
                                    source=f"photo-{position}")
            db.add(member)
            db.flush()
            activation = (10.0 - 0.5 * rank) * (1 if sign == "max" else -1)
            db.add(Exemplar(direction_id=direction.id, member_id=member.id, image_sha256=sha,
                            sign=sign, rank=rank, activation=activation,
                            role="reference" if rank < REFERENCES else "query"))


def setup_afc_study(url: str, n_directions: int) -> None:
    """Half basis, half random directions; an open 2-AFC study over them with every reference
    kind, made as a researcher would (`create_study`), then given the bench's slug and k."""
    engine = make_engine(url)
    rng = np.random.default_rng(0)
    with unit_of_work(engine) as db:
        job = _job(n_directions // 2, n_directions - n_directions // 2, AFC_IMAGE_SIZE)
        image_set = ImageSet(name="load", source="bench", status="complete")
        db.add_all([job, image_set])
        db.flush()
        positions = itertools.count()
        for index in range(n_directions):
            kind = "basis" if index < job.n_basis else "random"
            _afc_direction(db, rng, job, image_set, kind, index, positions)
        image_set.count = next(positions)
        job_id = job.id
    _open_as_load(engine, _request(job_id, StudyTask.TWO_AFC, list(ReferenceKind)))
    engine.dispose()


SETUP = {StudyTask.RATING: setup_rating_study, StudyTask.TWO_AFC: setup_afc_study}
