"""What a session start hands out: the study's items, read before the study's lock is taken,
and the new session's trials, planned under it from every item's current load.

A rating study's items are its images; a 2-AFC study's are its directions (named by their first
max render) crossed with its reference kinds. The plans themselves are pure functions
(`annotate.trial_plan`, `annotate.afc_plan`); this module feeds them from the database.
People and the machine annotator fill each item's k apart (`annotate.reservations`): a study
is full only when people have filled it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from annotate.afc_plan import AfcCandidate, AfcStudy, plan_afc_session
from annotate.kept import Kept, study_key
from annotate.reservations import Item, Loads
from annotate.start_loads import study_loads
from annotate.trial_plan import Candidate, CatchChoice, PlannedTrial, plan_session
from service.store.db import snapshot, unit_of_work
from service.store.models import (
    AnnotationSession,
    CatchItem,
    Direction,
    DirectionKind,
    Image,
    Stimulus,
    Study,
    StudyStimulus,
    StudyTask,
)
from service.studies.afc_items import Shape, shapes
from service.studies.catch import (
    catch_pool_complete,
    ensure_reference_check,
    ensure_study_catch_items,
    find_reference_check,
    study_catch_items,
)


@dataclass(frozen=True)
class StudyItems:
    """A study's items as no other start changes them."""

    stimuli: list[tuple[int, str]]  # (stimulus id, condition) of the study, in id order
    stimulus_size: int | None
    catch_pool: list[CatchChoice]  # empty when some catch item is still to be made
    reference_kinds: tuple[str, ...] = ()  # 2afc only: then the fields below are set too
    shapes: dict[int, Shape] = field(default_factory=dict)  # stimulus id → its direction's
    check_item_id: int | None = None  # the reference check; None: no catch trials


def stimulus_size(db: Session, study_id: int) -> int | None:
    """The side of the study's stimuli (the most common one), which catch items must match (and
    the byte range of the study's stimuli of that side, `service.studies.catch`)."""
    row = db.execute(
        select(Image.width, func.count())
        .join(Stimulus, Stimulus.image_sha256 == Image.sha256)
        .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
        .where(StudyStimulus.study_id == study_id)
        .group_by(Image.width)
        .order_by(func.count().desc(), Image.width)
        .limit(1)
    ).first()
    return None if row is None else int(row[0])


def _choices(items: list[CatchItem]) -> list[CatchChoice]:
    return [CatchChoice(item.id, item.kind) for item in items]  # type: ignore[arg-type]


_kept: Kept[tuple[StudyItems, bool]] = Kept()


def read_items(db: Session, study: Study) -> StudyItems:
    """The study's items and what planning needs of them (catch pool, directions' shapes).

    A study's stimuli are fixed when it is created and its catch items are made once, so a
    process keeps what it read for a minute: every newcomer's consent page and start read them,
    which was a fifth of a session start's work. Items that were still to be made are read
    again next time (what this transaction made may yet be rolled back).
    """
    items, _complete = _kept.get(study_key(db, study), lambda: _read_items(db, study),
                                 keep=lambda read: read[1])
    return items


def _read_items(db: Session, study: Study) -> tuple[StudyItems, bool]:
    """The items, and whether all of them were there already (none made now)."""
    stimuli = [(int(sid), str(kind)) for sid, kind in db.execute(
        select(Stimulus.id, Direction.kind)
        .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
        .join(Direction, Stimulus.direction_id == Direction.id)
        .where(StudyStimulus.study_id == study.id)
        .order_by(Stimulus.id)
    )]
    if study.task == StudyTask.TWO_AFC:
        named = dict(db.execute(select(Stimulus.id, Stimulus.direction_id).where(
            Stimulus.id.in_([sid for sid, _ in stimuli]))).all())
        counts = shapes(db, named.values())
        check = find_reference_check(db) if study.catch_every else None
        complete = check is not None or not study.catch_every
        return StudyItems(
            stimuli=stimuli, stimulus_size=None, catch_pool=[],
            reference_kinds=tuple(study.reference_kinds or ()),
            shapes={sid: counts[did] for sid, did in named.items()},
            check_item_id=check if complete else ensure_reference_check(db)), complete
    size = stimulus_size(db, study.id)
    pool = [] if size is None else study_catch_items(db, study.id, size)
    complete = catch_pool_complete(pool)
    return StudyItems(stimuli=stimuli, stimulus_size=size,
                      catch_pool=_choices(pool) if complete else []), (
        complete or not (study.catch_every or study.practice_count))


def _candidates(items: StudyItems, loads: dict[Item, tuple[int, int]],
                seen: set[int], k: int) -> list[Candidate]:
    candidates = []
    for stimulus_id, condition in items.stimuli:
        done, reserved = loads.get((stimulus_id, None), (0, 0))
        if stimulus_id in seen or done + reserved >= k:
            continue
        candidates.append(Candidate(stimulus_id, DirectionKind(condition), done + reserved))
    return candidates


def _afc_candidates(items: StudyItems, loads: dict[Item, tuple[int, int]],
                    seen: set[int], k: int) -> list[AfcCandidate]:
    candidates = []
    for stimulus_id, condition in items.stimuli:
        if stimulus_id in seen:
            continue
        for reference in items.reference_kinds:
            done, reserved = loads.get((stimulus_id, reference), (0, 0))
            if done + reserved < k:
                candidates.append(AfcCandidate(stimulus_id, condition, reference,
                                               done + reserved))
    return candidates


def has_room(engine: Engine, study: Study, now: datetime) -> bool:
    """Whether a newcomer would get any item now: the consent page says "full" up front
    instead of after the person has agreed. Read-only; a start still decides under the lock.
    Only people's answers and reservations count: machine sessions never fill a study.

    Every newcomer's consent page asks, so the loads are counted only when a count of sessions
    cannot settle it: a session holds at most `trials_per_session` items, so while the sessions
    could not have filled every item's k there is room for sure.
    """
    with unit_of_work(engine) as db:
        items = read_items(db, study)
        sessions = db.scalar(select(func.count()).select_from(AnnotationSession)
                             .where(AnnotationSession.study_id == study.id))
    n_items = len(items.stimuli) * max(1, len(items.reference_kinds))
    if int(sessions or 0) * study.trials_per_session < n_items * study.ratings_per_item:
        return True
    with unit_of_work(snapshot(engine)) as db:  # as a start counts them before its lock
        loads = study_loads(db, study, now).items
    if study.task == StudyTask.TWO_AFC:
        return bool(_afc_candidates(items, loads, set(), study.ratings_per_item))
    return bool(_candidates(items, loads, set(), study.ratings_per_item))


def plan_trials(db: Session, study: Study, items: StudyItems, seen: set[int], loads: Loads,
                rng: random.Random) -> list[PlannedTrial]:
    """Under the study's lock: the new session's trials from every item's current `loads` (of
    people, or of the machine annotator: never both together), none of an item in `seen`
    (what this person was shown before); empty when nothing is left."""
    if study.task == StudyTask.TWO_AFC:
        afc = _afc_candidates(items, loads.items, seen, study.ratings_per_item)
        if not afc:
            return []
        spare = [sid for sid, _ in items.stimuli if sid not in seen]
        terms = AfcStudy(items.reference_kinds, items.shapes, items.check_item_id)
        return plan_afc_session(afc, terms, loads.pairs, spare,
                                study.trials_per_session, study.catch_every,
                                study.practice_count, rng)
    candidates = _candidates(items, loads.items, seen, study.ratings_per_item)
    if not candidates:
        return []
    pool = items.catch_pool
    if not pool and items.stimulus_size is not None and (
            study.catch_every or study.practice_count):  # made once, under the lock
        pool = _choices(ensure_study_catch_items(db, study.id, items.stimulus_size))
    return plan_session(candidates, study.trials_per_session, study.catch_every,
                        study.practice_count, pool, rng)
