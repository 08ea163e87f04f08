"""Starting a session: who the annotator is, and which trials they get, safely under concurrency.

Every session start of a study runs in one transaction that first locks the study's row
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` takes the database write lock).
Session starts of one study therefore run one after another, each seeing the reservations of the
ones before it, so no item is handed out beyond its k ratings however many annotators arrive at
once. Only the start is serialized; rating trials never takes this lock.

An item's load is its completed ratings plus its open reservations: unanswered trials of active
sessions whose `reserved_until` is still ahead. A session that goes quiet lets its reservations
lapse, and its items return to the pool for the next annotator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotate.trial_plan import Candidate, CatchChoice, plan_session
from service.catch import ensure_catch_items
from service.db import unit_of_work, utcnow
from service.models import (
    AnnotationSession,
    Annotator,
    Direction,
    Image,
    Rating,
    Stimulus,
    Study,
    StudyStimulus,
    Trial,
)
from service.tokens import new_token

DEFAULT_RESERVATION = timedelta(hours=2)


class StartRefused(Exception):
    """The session cannot start; `reason` is one of the REASONS, shown politely to the person."""

    REASONS = ("not_found", "closed", "full", "already_done")

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who is starting: an external id from Prolific/MTurk, or a generated anonymous one."""

    source: str
    external_id: str
    external_study_id: str | None = None
    external_session_id: str | None = None
    assignment_id: str | None = None
    turk_submit_to: str | None = None


def _open_reservation(now: datetime) -> ColumnElement[bool]:
    return and_(
        Rating.id.is_(None),
        AnnotationSession.status == "active",
        AnnotationSession.reserved_until > now,
    )


def item_loads(db: Session, study_id: int, now: datetime) -> dict[int, tuple[int, int]]:
    """{stimulus id: (completed ratings, open reservations)} for the study's stimuli in use."""
    rows = db.execute(
        select(
            Trial.stimulus_id,
            func.count(Rating.id),
            func.count(Trial.id).filter(_open_reservation(now)),
        )
        .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(AnnotationSession.study_id == study_id, Trial.kind == "stimulus")
        .where(or_(Rating.id.is_not(None), _open_reservation(now)))
        .group_by(Trial.stimulus_id)
    ).all()
    return {stimulus_id: (int(done), int(reserved)) for stimulus_id, done, reserved in rows}


def _candidates(db: Session, study: Study, annotator_id: int | None,
                now: datetime) -> list[Candidate]:
    seen: set[int] = set()
    if annotator_id is not None:
        seen = set(
            db.scalars(
                select(Trial.stimulus_id)
                .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
                .where(AnnotationSession.annotator_id == annotator_id)
                .where(Trial.stimulus_id.is_not(None))
            )
        )
    loads = item_loads(db, study.id, now)
    rows = db.execute(
        select(Stimulus.id, Direction.kind)
        .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
        .join(Direction, Stimulus.direction_id == Direction.id)
        .where(StudyStimulus.study_id == study.id)
        .order_by(Stimulus.id)
    ).all()
    candidates = []
    for stimulus_id, condition in rows:
        done, reserved = loads.get(stimulus_id, (0, 0))
        if stimulus_id in seen or done + reserved >= study.ratings_per_item:
            continue
        candidates.append(Candidate(stimulus_id, condition, done + reserved))
    return candidates


def stimulus_size(db: Session, study_id: int) -> int | None:
    """The side of the study's stimuli (the most common one), which catch items must match."""
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


def _annotator(db: Session, identity: Identity) -> Annotator:
    found = db.scalars(
        select(Annotator).where(
            Annotator.source == identity.source, Annotator.external_id == identity.external_id
        )
    ).first()
    if found is None:
        found = Annotator(source=identity.source, external_id=identity.external_id)
        db.add(found)
        db.flush()
    return found


def release_taken_items(db: Session, study: Study, session: AnnotationSession,
                         now: datetime) -> None:
    """Before a session's reservation is renewed, drop its unanswered trials whose items others
    filled meanwhile; otherwise renewing a lapsed reservation would push those items past k.
    (A rating given on a lapsed trial is still stored: no rating is ever lost.)"""
    session.reserved_until = None
    db.flush()
    loads = item_loads(db, study.id, now)
    for trial in db.scalars(
        select(Trial).outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.session_id == session.id, Trial.kind == "stimulus", Rating.id.is_(None))
        .order_by(Trial.position)
    ):
        done, reserved = loads.get(trial.stimulus_id, (0, 0))  # type: ignore[arg-type]
        if done + reserved >= study.ratings_per_item:
            db.delete(trial)
        else:
            loads[trial.stimulus_id] = (done, reserved + 1)  # type: ignore[index]
    db.flush()


def reservation_lapsed(session: AnnotationSession, now: datetime) -> bool:
    until = session.reserved_until
    if until is None:
        return True
    if until.tzinfo is None:  # SQLite hands back naive UTC datetimes
        until = until.replace(tzinfo=UTC)
    return until <= now


def _start_locked(db: Session, slug: str, identity: Identity, now: datetime,
                  reservation: timedelta, rng: random.Random) -> str:
    study = db.scalars(select(Study).where(Study.slug == slug).with_for_update()).first()
    if study is None or study.status == "draft":
        raise StartRefused("not_found")
    annotator = _annotator(db, identity)
    existing = db.scalars(
        select(AnnotationSession).where(
            AnnotationSession.study_id == study.id,
            AnnotationSession.annotator_id == annotator.id,
        )
    ).first()
    if existing is not None:
        if existing.status != "active":
            raise StartRefused("already_done")
        if reservation_lapsed(existing, now):
            release_taken_items(db, study, existing, now)
        existing.reserved_until = now + reservation
        return existing.token
    if study.status != "open":
        raise StartRefused("closed")
    candidates = _candidates(db, study, annotator.id, now)
    if not candidates:
        raise StartRefused("full")
    size = stimulus_size(db, study.id)
    pool = [] if size is None else ensure_catch_items(db, size)
    plan = plan_session(
        candidates, study.trials_per_session, study.catch_every, study.practice_count,
        [CatchChoice(item.id, item.kind) for item in pool], rng,  # type: ignore[arg-type]
    )
    session = AnnotationSession(
        study_id=study.id, annotator_id=annotator.id, token=new_token(), status="active",
        external_study_id=identity.external_study_id,
        external_session_id=identity.external_session_id,
        assignment_id=identity.assignment_id, turk_submit_to=identity.turk_submit_to,
        started_at=now, consent_at=now, reserved_until=now + reservation,
    )
    annotator.consent_at = annotator.consent_at or now
    db.add(session)
    db.flush()
    db.add_all(
        Trial(session_id=session.id, position=position, kind=planned.kind,
              stimulus_id=planned.stimulus_id, catch_item_id=planned.catch_item_id,
              token=new_token())
        for position, planned in enumerate(plan)
    )
    return session.token


def start_session(engine: Engine, slug: str, identity: Identity, *,
                  reservation: timedelta = DEFAULT_RESERVATION, now: datetime | None = None,
                  rng: random.Random | None = None) -> str:
    """Start (or resume) the identity's session in the study and return its token.

    Raises:
        StartRefused: unknown or draft study, closed, nothing left to rate, or this person
            already finished a session of it.
    """
    chosen_rng = rng or random.SystemRandom()

    def attempt() -> str:
        with unit_of_work(engine, lock=True) as db:
            return _start_locked(db, slug, identity, now or utcnow(), reservation, chosen_rng)

    try:
        return attempt()
    except IntegrityError:
        # The same person starting two studies at once: the other transaction inserted the
        # annotator row first (the study lock does not cover it); now it is there to be found.
        return attempt()
