"""A job's 2-AFC tasks as its exemplar pass defined them, scored by the machine without a study.

Each direction's tasks are all its query pairs (the t-th max query with the t-th min query, the
pairs `afc_items.direction_items` gives a study's trials), each shown with the direction's
references of one kind: its min and max renders (`synthetic`) or its least and most
activating photos (`natural`). So a job's MIS per direction is what a machine annotator would
score on every trial a 2-AFC study of that job could show, before any study exists.

Images are read from the store and embedded in chunks, so a large job never holds every PNG at
once; the embedding cache keys each by its bytes, so a second run embeds nothing again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select

from service.featurevis.embeddings import EmbeddingCache
from service.store.db import unit_of_work
from service.store.models import Direction, Image, Job, JobStatus, ReferenceKind
from service.studies.afc_items import (
    QUERIES,
    SHOWN_REFERENCES,
    DirectionItems,
    Sides,
    direction_items,
)
from service.studies.afc_study import LACKS
from service.studies.machine.score import (
    DEFAULT_ALPHA_RULE,
    default_alpha,
    deltas,
    mis_per_direction,
    p_correct,
)
from service.studies.machine.trials import GIVEN_ALPHA_NOTE

DEFAULT_REFERENCE = ReferenceKind.SYNTHETIC
READ_CHUNK = 256  # store PNGs read (and embedded) at a time
COLUMNS = ("job_id", "layer", "condition", "channel", "direction_id", "mis", "n_tasks",
           "reference", "embedding", "alpha", "alpha_note")  # fmt: skip


class JobTasksError(ValueError):
    """A job that cannot be scored (unknown, not done, or lacking queries or references)."""


@dataclass(frozen=True)
class DirectionLabel:
    """What a row of the output says about a direction."""

    direction_id: int
    layer: str
    condition: str
    channel: int | None


@dataclass(frozen=True)
class JobTasks:
    """Every task of a job: rows of `images` (store sha256 keys) per query and reference."""

    job_id: int
    reference: str
    directions: tuple[DirectionLabel, ...]  # in direction id order
    task_direction: tuple[int, ...]  # the direction id of each task
    images: tuple[str, ...]
    query_max: tuple[int, ...]
    query_min: tuple[int, ...]
    refs_max: tuple[tuple[int, ...], ...]
    refs_min: tuple[tuple[int, ...], ...]


def job_tasks(engine: Engine, job_id: int, reference: str = DEFAULT_REFERENCE) -> JobTasks:
    """The job's tasks with references of kind `reference`; JobTasksError says what is missing
    (and how a job gets it) in one line."""
    if reference not in SHOWN_REFERENCES:
        kinds = ", ".join(SHOWN_REFERENCES)
        raise JobTasksError(f"reference must be one of {kinds}, got {reference!r}")
    with unit_of_work(engine) as db:
        job = db.get(Job, job_id)
        if job is None:
            raise JobTasksError(f"job {job_id} does not exist")
        if job.status != JobStatus.DONE:
            raise JobTasksError(f"job {job_id} is not done (status {job.status}): score it "
                                f"once it is (fvlab jobs {job_id} shows its progress)")
        rows = db.execute(select(Direction.id, Direction.layer, Direction.kind, Direction.channel)
                          .where(Direction.job_id == job_id).order_by(Direction.id)).all()
        labels = tuple(DirectionLabel(int(i), str(layer), str(kind),
                                      None if channel is None else int(channel))
                       for i, layer, kind, channel in rows)
        items = direction_items(db, [d.direction_id for d in labels])
    if not labels:
        raise JobTasksError(f"job {job_id} has no directions")
    for lack, has in ((QUERIES, lambda item: bool(item.pairs)),
                      (reference, lambda item: _shown(item, reference).count > 0)):
        n = sum(1 for d in labels if not has(items[d.direction_id]))
        if n:
            what, how = LACKS[lack]
            raise JobTasksError(f"{n} of {len(labels)} directions of job {job_id} have no "
                                f"{what}, which its 2-AFC tasks need ({how})")
    return _tasks(job_id, reference, labels, items)


def _shown(item: DirectionItems, reference: str) -> Sides:
    sides = item.references(reference)
    if sides is None:  # job_tasks admits only kinds that show references
        raise JobTasksError(f"reference kind {reference!r} shows no references")
    return sides


def _tasks(job_id: int, reference: str, labels: tuple[DirectionLabel, ...],
           items: dict[int, DirectionItems]) -> JobTasks:
    row: dict[str, int] = {}

    def at(sha: str) -> int:
        return row.setdefault(sha, len(row))

    task_direction: list[int] = []
    q_max: list[int] = []
    q_min: list[int] = []
    r_max: list[tuple[int, ...]] = []
    r_min: list[tuple[int, ...]] = []
    for label in labels:
        item = items[label.direction_id]
        sides = _shown(item, reference)
        shown_max = tuple(at(sha) for sha in sides.max_images)
        shown_min = tuple(at(sha) for sha in sides.min_images)
        for pair in item.pairs:
            task_direction.append(label.direction_id)
            q_max.append(at(pair.max_image))
            q_min.append(at(pair.min_image))
            r_max.append(shown_max)
            r_min.append(shown_min)
    return JobTasks(job_id, reference, labels, tuple(task_direction), tuple(row), tuple(q_max),
                    tuple(q_min), tuple(r_max), tuple(r_min))


def _pngs(engine: Engine, keys: tuple[str, ...]) -> Iterator[tuple[list[str], list[bytes]]]:
    """The store's PNG bytes of `keys`, READ_CHUNK at a time, in order."""
    for start in range(0, len(keys), READ_CHUNK):
        chunk = list(keys[start:start + READ_CHUNK])
        with unit_of_work(engine) as db:
            found = dict(db.execute(select(Image.sha256, Image.png)
                                    .where(Image.sha256.in_(chunk))).all())
        yield chunk, [found[sha] for sha in chunk]


def embed_tasks(engine: Engine, tasks: JobTasks, cache: EmbeddingCache) -> np.ndarray:
    """Unit vectors of the tasks' images, one row per `tasks.images` entry."""
    parts = [cache.embed(data, labels=[f"image {sha}" for sha in keys])
             for keys, data in _pngs(engine, tasks.images)]
    return np.concatenate(parts)


def score_job(engine: Engine, tasks: JobTasks, cache: EmbeddingCache,
              alpha: float | None = None) -> list[dict[str, object]]:
    """One row per direction (`COLUMNS`): its MIS, the mean P(correct) over its tasks, with the
    α used and how it was set (uncalibrated: 1/median |Δ| over all the job's tasks)."""
    delta = deltas(embed_tasks(engine, tasks, cache), tasks.query_max, tasks.query_min,
                   tasks.refs_max, tasks.refs_min)
    used = default_alpha(delta) if alpha is None else alpha
    note = DEFAULT_ALPHA_RULE if alpha is None else GIVEN_ALPHA_NOTE
    scores = mis_per_direction(p_correct(delta, used), np.asarray(tasks.task_direction))
    by_id = {int(did): (float(mis), int(n))
             for did, mis, n in zip(scores.labels, scores.mis, scores.n_tasks, strict=True)}
    return [
        {"job_id": tasks.job_id, "layer": d.layer, "condition": d.condition,
         "channel": d.channel, "direction_id": d.direction_id,
         "mis": by_id[d.direction_id][0], "n_tasks": by_id[d.direction_id][1],
         "reference": tasks.reference, "embedding": cache.embedder.name, "alpha": used,
         "alpha_note": note}
        for d in tasks.directions
    ]
