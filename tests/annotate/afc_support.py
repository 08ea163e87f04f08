"""2-AFC studies without the worker: renders of both signs and scored exemplars written straight
into the store, then a study made and opened through the service, as a researcher would.

Every image is a distinct pseudo-random picture (`stimulus_pixels`), so a test can tell any two
apart by their hash; activations are planted so each query pair's gap is known.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from flask.testing import FlaskClient
from sqlalchemy import Engine

from service.store.db import unit_of_work
from service.store.images import store
from service.store.models import (
    Direction,
    Exemplar,
    ImageSet,
    ImageSetMember,
    Job,
    Stimulus,
)
from service.store.tokens import new_token
from service.studies.study import StudyRequest, create_study, get_study, open_study
from tests.annotate.conftest import stimulus_pixels

_numbers = itertools.count(1)
SD = 2.0  # every direction's planted activation SD over its set


@dataclass(frozen=True)
class AfcJob:
    job_id: int
    name: str
    model: str
    layer: str
    directions: dict[str, list[int]]  # condition → direction ids
    images: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # see make_afc_job


def _activation(sign: str, rank: int) -> float:
    return 10.0 - 0.5 * rank if sign == "max" else -10.0 + 0.5 * rank


def query_gap(rank: int, references: int) -> float:
    """The planted gap of query pair `rank` (0 = the first pair) in units of SD."""
    q = references + rank
    return (_activation("max", q) - _activation("min", q)) / SD


def make_afc_job(engine: Engine, *, n_basis: int = 4, n_random: int = 4, references: int = 4,
                 pairs: int = 3, size: int = 32, natural: bool = True,
                 natural_references: bool = True, min_renders: bool = True,
                 activation_sd: float | None = SD,
                 photos: Sequence[np.ndarray] | None = None) -> AfcJob:
    """A done job over 'blocks.10' whose every direction has `references` renders of each sign
    and, when `natural`, `pairs` query pairs and (unless not `natural_references`)
    `references` natural references a side.

    Natural exemplars are drawn from `photos` in turn when given (distinct pictures).
    `images[direction][part]` lists the shown images' sha256 in order, for parts
    `synthetic_max`, `synthetic_min`, `natural_max`, `natural_min`, `query_max`, `query_min`.
    """
    number = next(_numbers)
    seeds = itertools.count(number * 100_000)
    with unit_of_work(engine) as db:
        job = Job(name=f"afcjob{number}", model="efficientnet_lite0", layers=["blocks.10"],
                  n_basis=n_basis, n_random=n_random, image_size=size, steps=8, seed=number,
                  status="done")
        image_set = ImageSet(name=f"afcset{number}", source="test", status="complete")
        db.add_all([job, image_set])
        db.flush()
        positions = itertools.count()
        ids: dict[str, list[int]] = {"basis": [], "random": []}
        images: dict[int, dict[str, list[str]]] = {}
        for kind, count in (("basis", n_basis), ("random", n_random)):
            for index in range(count):
                direction = Direction(job_id=job.id, layer="blocks.10", kind=kind, index=index,
                                      channel=index * 7 if kind == "basis" else None,
                                      vector=b"\0" * 16, seed=index, activation_sd=activation_sd)
                db.add(direction)
                db.flush()
                ids[kind].append(direction.id)
                shown: dict[str, list[str]] = {}
                for sign in ("max", "min") if min_renders else ("max",):
                    for replicate in range(references):
                        sha = store(db, stimulus_pixels(next(seeds), size)).sha256
                        shown.setdefault(f"synthetic_{sign}", []).append(sha)
                        db.add(Stimulus(direction_id=direction.id, sign=sign,
                                        replicate=replicate, token=new_token(),
                                        image_sha256=sha, objective=1.0, render_seconds=0.1))
                if natural:
                    for sign in ("max", "min"):
                        for rank in range(references + pairs):
                            role = "reference" if rank < references else "query"
                            if role == "reference" and not natural_references:
                                continue
                            at = next(seeds)
                            pixels = (stimulus_pixels(at, 48) if photos is None
                                      else photos[at % len(photos)])
                            sha = store(db, pixels).sha256
                            position = next(positions)
                            data = f"photo {position} {sha}".encode()
                            member = ImageSetMember(
                                set_id=image_set.id, position=position,
                                sha256=hashlib.sha256(data).hexdigest(), data=data,
                                source=f"photo-{sha[:8]}")
                            db.add(member)
                            db.flush()
                            db.add(Exemplar(direction_id=direction.id, member_id=member.id,
                                            image_sha256=sha, sign=sign, rank=rank,
                                            activation=_activation(sign, rank), role=role))
                            part = "natural" if role == "reference" else "query"
                            shown.setdefault(f"{part}_{sign}", []).append(sha)
                images[direction.id] = shown
        image_set.count = next(positions)
        return AfcJob(job.id, job.name, job.model, "blocks.10", ids, images)


@dataclass(frozen=True)
class AfcStudyInfo:
    id: int
    slug: str
    job: AfcJob


def make_afc_study(engine: Engine, job: AfcJob | None = None, *,
                   reference_kinds: Sequence[str] = ("synthetic",), k: int = 2,
                   trials: int = 6, catch_every: int = 3, practice: int = 2,
                   completion_code: str = "AFC123", status: str = "open",
                   **job_options: object) -> AfcStudyInfo:
    """A 2-AFC study over `job` (made with `job_options` when None), opened unless a draft."""
    job = job or make_afc_job(engine, **job_options)  # type: ignore[arg-type]
    study_id = create_study(engine, StudyRequest(
        job_ids=[job.job_id], name=f"Pictures {next(_numbers)}", task="2afc",
        reference_kinds=list(reference_kinds), ratings_per_item=k, trials_per_session=trials,
        catch_every=catch_every, practice_count=practice, completion_code=completion_code))
    if status == "open":
        open_study(engine, study_id)
    return AfcStudyInfo(study_id, get_study(engine, study_id).slug, job)


def answer_all_afc(client: FlaskClient, choose: object = None) -> list[tuple[dict, dict]]:
    """Answer every 2-AFC trial in order (choice 0, confidence 2 unless `choose(trial)` says
    otherwise), following each answer's `upcoming`; returns the (trial, body) pairs sent."""
    sent = []
    upcoming = client.get("/api/v1/trials?limit=2").get_json()["trials"]
    while upcoming:
        trial = upcoming[0]
        body = {"choice": 0, "confidence": 2, "rt_ms": 900}
        if callable(choose):
            body.update(choose(trial))
        response = client.post(trial["answer"], json=body)
        assert response.status_code == 201, response.text
        sent.append((trial, body))
        upcoming = response.get_json()["upcoming"]
    return sent
