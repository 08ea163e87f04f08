"""Reservations: which items a study's active sessions hold, and for how long.

An item's load is its completed ratings plus its open reservations: unanswered trials of active
sessions whose `reserved_until` is still ahead. A new session holds its items only briefly
(`FIRST_ANSWER_RESERVATION`) until it shows life; its first answer brings the full lease
(`DEFAULT_RESERVATION`), which answers renew (`RENEWAL_STEP`). A session that goes quiet lets its
reservations lapse, and its items return to the pool for the next annotator.

An item is a stimulus in a rating study and a (stimulus, reference kind) pair in a 2-AFC study,
so loads are keyed by both; a rating trial's reference kind is None.

People and the machine annotator (`fvlab machine rate`) are counted apart: machine answers and
reservations never fill the k a person needs, and machine sessions are capped by k among
machine sessions only (`machine=True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from service.store.models import (
    AnnotationSession,
    Annotator,
    AnnotatorSource,
    Rating,
    SessionStatus,
    Study,
    Trial,
    TrialKind,
)
from service.studies.population import of_population

DEFAULT_RESERVATION = timedelta(hours=2)  # the lease after each answer
FIRST_ANSWER_RESERVATION = timedelta(minutes=10)  # a new session's hold until its first answer
# An answer renews the lease once this much of it has run: answers a few seconds apart then
# write the session's row about once a minute instead of each time, and the lease after any
# answer is still at least the full one less this step.
RENEWAL_STEP = timedelta(minutes=1)


def _open_reservation(now: datetime) -> ColumnElement[bool]:
    return and_(
        Rating.id.is_(None),
        AnnotationSession.status == SessionStatus.ACTIVE,
        AnnotationSession.reserved_until > now,
    )


Item = tuple[int, str | None]  # (stimulus id, reference kind or None)
Pair = tuple[int, str]  # a 2-AFC item (stimulus id, reference kind), whose query pairs are loaded


@dataclass
class Loads:
    """One population's loads in a study at one moment, counted over its sessions up to
    `through` (a session id; 0 before any; None: all of them): `items` {item: (completed
    answers, open reservations)} and, for a 2-AFC study, `pairs` {item: {query pair: answers
    + reservations}}.
    """

    items: dict[Item, tuple[int, int]] = field(default_factory=dict)
    pairs: dict[Pair, dict[int, int]] = field(default_factory=dict)
    through: int | None = None

    def add(self, rows: list[Any]) -> None:
        """Count `load_rows`' rows too."""
        for sid, reference, task, done, reserved in rows:
            item = (int(sid), reference)
            had_done, had_reserved = self.items.get(item, (0, 0))
            self.items[item] = (had_done + int(done), had_reserved + int(reserved))
            if task is not None:
                used = self.pairs.setdefault((int(sid), reference), {})
                used[task] = used.get(task, 0) + int(done) + int(reserved)

    def include(self, other: Loads) -> None:
        """Count the sessions `other` counted too (none of them counted here already)."""
        for item, (done, reserved) in other.items.items():
            had_done, had_reserved = self.items.get(item, (0, 0))
            self.items[item] = (had_done + done, had_reserved + reserved)
        for pair, used in other.pairs.items():
            mine = self.pairs.setdefault(pair, {})
            for task, load in used.items():
                mine[task] = mine.get(task, 0) + load

    def copy(self) -> Loads:
        return Loads(dict(self.items), {pair: dict(used) for pair, used in self.pairs.items()},
                     self.through)


def load_rows(db: Session, study_id: int, now: datetime, machine: bool,
              *sessions: ColumnElement[bool]) -> list[Any]:
    """(stimulus id, reference kind, query pair, completed, reserved) of the study's stimulus
    trials in use by one population (people, or the machine annotator), in its sessions that
    meet the conditions `sessions` (all of them without)."""
    return list(db.execute(
        select(Trial.stimulus_id, Trial.reference, Trial.query_task, func.count(Rating.id),
               func.count(Trial.id).filter(_open_reservation(now)))
        .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(AnnotationSession.study_id == study_id, Trial.kind == TrialKind.STIMULUS,
               *sessions)
        .where(of_population(machine))
        .where(or_(Rating.id.is_not(None), _open_reservation(now)))
        .group_by(Trial.stimulus_id, Trial.reference, Trial.query_task)
    ))


def item_loads(db: Session, study_id: int, now: datetime,
               machine: bool = False) -> dict[Item, tuple[int, int]]:
    """{(stimulus id, reference kind): (completed answers, open reservations)} for the study's
    items in use, by people (or, with `machine`, by the machine annotator), in one statement."""
    loads = Loads()
    loads.add(load_rows(db, study_id, now, machine))
    return loads.items


def release_taken_items(db: Session, study: Study, session: AnnotationSession,
                         now: datetime) -> None:
    """Before a session's reservation is renewed, drop its unanswered trials whose items others
    filled meanwhile; otherwise renewing a lapsed reservation would push those items past k.
    (A rating given on a lapsed trial is still stored: no rating is ever lost.)"""
    session.reserved_until = None
    db.flush()
    loads = item_loads(db, study.id, now, session.annotator.source == AnnotatorSource.MACHINE)
    for trial in db.scalars(
        select(Trial).outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.session_id == session.id, Trial.kind == TrialKind.STIMULUS,
               Rating.id.is_(None))
        .order_by(Trial.position)
    ):
        item = (trial.stimulus_id, trial.reference)
        done, reserved = loads.get(item, (0, 0))  # type: ignore[arg-type]
        if done + reserved >= study.ratings_per_item:
            db.delete(trial)
        else:
            loads[item] = (done, reserved + 1)  # type: ignore[index]
    db.flush()


def reservation_lapsed(reserved_until: datetime | None, now: datetime) -> bool:
    return reserved_until is None or reserved_until <= now


def lease_due(reserved_until: datetime | None, now: datetime, reservation: timedelta) -> bool:
    """Whether an answer at `now` renews the session's lease to `now + reservation`."""
    return reserved_until is None or reserved_until - now < reservation - RENEWAL_STEP
