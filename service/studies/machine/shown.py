"""What stored 2-AFC trials showed, as images the machine annotator can embed, and their Δ.

A stimulus trial shows its direction's references of the trial's kind and query pair
`query_task` (`annotate.images` composes the same images); a catch trial's queries are the
references at index `query_task`. A trial with reference kind `none` shows no references, so
it carries no evidence: its Δ is 0 and the machine answers it at chance. Images are embedded
from the store's own PNGs (the pictures the composed trial images are made of), each once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.featurevis.embeddings import EmbeddingCache
from service.store.models import Image, ReferenceKind, Stimulus, Study, StudyTask, TrialKind
from service.studies.afc_items import SHOWN_REFERENCES, DirectionItems, direction_items
from service.studies.errors import StudyError
from service.studies.machine.score import ScoreError, deltas

READ_CHUNK = 500  # image keys per SELECT … IN: stays far below any backend's parameter limit


@dataclass(frozen=True)
class ShownTask:
    """One 2-AFC task as shown: image keys (sha256) of both sides' references and the queries;
    no references for kind `none`."""

    direction_id: int
    reference: str
    query_max: str
    query_min: str
    refs_max: tuple[str, ...] = ()
    refs_min: tuple[str, ...] = ()

    @property
    def has_references(self) -> bool:
        return bool(self.refs_max) and bool(self.refs_min)

    def images(self) -> tuple[str, ...]:
        return (self.query_max, self.query_min, *self.refs_max, *self.refs_min)


@dataclass(frozen=True)
class StoredTrial:
    """The fields of a 2-AFC trial row that say what it showed."""

    kind: str
    stimulus_id: int
    reference: str
    query_task: int


def afc_study(db: Session, study_id: int, what: str) -> Study:
    """The study, refused in one line when it does not exist or is not a 2-AFC study (the
    machine annotator has no rating task); `what` is what the machine would do with it."""
    study = db.get(Study, study_id)
    if study is None:
        raise StudyError(f"study {study_id} does not exist")
    if study.task != StudyTask.TWO_AFC:
        raise StudyError(f"study {study_id} is a {study.task} study; the machine annotator "
                         f"{what} {StudyTask.TWO_AFC} studies only")
    return study


def directions_of(db: Session, stimulus_ids: Iterable[int]) -> dict[int, int]:
    """{stimulus id: direction id} (a 2-AFC trial names its direction by its first max render)."""
    ids = sorted(set(stimulus_ids))
    return {int(sid): int(did) for sid, did in db.execute(
        select(Stimulus.id, Stimulus.direction_id).where(Stimulus.id.in_(ids)))}


def shown_tasks(db: Session, trials: Sequence[StoredTrial]) -> list[ShownTask]:
    """The task each trial showed, in order (stimulus and catch trials; never practice)."""
    named = directions_of(db, [t.stimulus_id for t in trials])
    items = direction_items(db, named.values())
    return [_shown(items[named[t.stimulus_id]], t) for t in trials]


def _shown(items: DirectionItems, trial: StoredTrial) -> ShownTask:
    sides = items.references(trial.reference)
    if trial.kind == TrialKind.CATCH:
        if sides is None:
            raise ScoreError(f"a catch trial of direction {items.direction_id} shows no references")
        at = trial.query_task
        query_max, query_min = sides.max_images[at], sides.min_images[at]
    elif trial.kind == TrialKind.STIMULUS:
        pair = items.pairs[trial.query_task]
        query_max, query_min = pair.max_image, pair.min_image
    else:
        raise ScoreError(f"a {trial.kind} trial shows no direction's task")
    if sides is None:
        return ShownTask(items.direction_id, trial.reference, query_max, query_min)
    return ShownTask(items.direction_id, trial.reference, query_max, query_min,
                     sides.max_images, sides.min_images)


def study_tasks(db: Session, stimulus_ids: Iterable[int],
                reference_kinds: Iterable[str]) -> list[ShownTask]:
    """Every stimulus task a 2-AFC study can show with references: each direction × shown
    reference kind × query pair (what the uncalibrated α rule is taken over)."""
    kinds = [ReferenceKind(k) for k in reference_kinds if k in SHOWN_REFERENCES]
    named = directions_of(db, stimulus_ids)
    items = direction_items(db, named.values())
    return [
        _shown(items[did], StoredTrial(TrialKind.STIMULUS, sid, kind, task))
        for sid, did in sorted(named.items())
        for kind in kinds
        for task in range(len(items[did].pairs))
    ]


class TaskEmbedder:
    """Embeds the images of shown tasks through an `EmbeddingCache`, reading each store PNG
    from the database only the first time it is needed."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def embedding(self) -> str:
        return self.cache.embedder.name

    def deltas(self, db: Session, tasks: Sequence[ShownTask]) -> np.ndarray:
        """Δ of each task; 0 for a task without references (it carries no evidence)."""
        result = np.zeros(len(tasks), dtype=np.float64)
        scored = [i for i, task in enumerate(tasks) if task.has_references]
        if not scored:
            return result
        keys = sorted({sha for i in scored for sha in tasks[i].images()})
        self._embed(db, keys)
        row = {sha: n for n, sha in enumerate(keys)}
        matrix = np.stack([self._vectors[sha] for sha in keys])
        chosen = [tasks[i] for i in scored]
        result[scored] = deltas(
            matrix,
            [row[t.query_max] for t in chosen],
            [row[t.query_min] for t in chosen],
            [[row[s] for s in t.refs_max] for t in chosen],
            [[row[s] for s in t.refs_min] for t in chosen],
        )
        return result

    def _embed(self, db: Session, shas: list[str]) -> None:
        todo = [sha for sha in shas if sha not in self._vectors]
        if not todo:
            return
        pngs: dict[str, bytes] = {}
        for start in range(0, len(todo), READ_CHUNK):
            chunk = todo[start:start + READ_CHUNK]
            pngs.update(db.execute(select(Image.sha256, Image.png)
                                   .where(Image.sha256.in_(chunk))).all())
        lost = [sha for sha in todo if sha not in pngs]
        if lost:
            raise ScoreError(f"{len(lost)} shown images are missing from the store, e.g. {lost[0]}")
        vectors = self.cache.embed([pngs[sha] for sha in todo], labels=todo)
        self._vectors.update(zip(todo, vectors, strict=True))
