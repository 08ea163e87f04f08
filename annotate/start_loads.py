"""Counting a study's loads for a session start (and for the consent page's check for room),
without scanning the whole study under its lock.

Under the study's lock a start adds only the sessions started since it counted
(`with_newer_sessions`): counting every session there was a scan of every trial the study ever
handed out, which made each start slower than the last (39 ms each after 600 sessions of 42
trials, `bench/README.md`) while every other start queued behind it. Sessions are only ever
inserted under that lock, and each takes its id at its insert, so their ids grow in the order
their starts committed: the newest id seen before the lock marks exactly which sessions the
first count holds. Whatever else changes in between (an answer turns a reservation into a
completed answer, a reservation lapses or is renewed) is what any start can meet a moment
later, for those changes never take the lock.

Before the lock, a process counts a completed session's answers once and keeps them
(`_Settled`): a completed session takes no more answers and holds no reservations, so what it
adds to each item's load never changes again, and the count reads the sessions still in
progress (and those completed since the last start) rather than the study's whole past.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from annotate.kept import study_key
from annotate.reservations import Loads, load_rows
from service.store.models import AnnotationSession, Annotator, SessionStatus, Study
from service.studies.population import of_population

COMPLETED_PER_QUERY = 500  # session ids bound in one query of newly completed sessions


@dataclass
class _Settled:
    """The completed sessions of one study and population that a process has counted, and the
    loads of their answers."""

    sessions: frozenset[int] = frozenset()
    loads: Loads = field(default_factory=Loads)


_settled: dict[Hashable, _Settled] = {}
_settled_lock = threading.Lock()


def study_loads(db: Session, study: Study, now: datetime, machine: bool = False) -> Loads:
    """Every item's load at `now` over all of the study's sessions so far, and the newest of
    them (`Loads.through`).

    `db` must read one snapshot throughout its transaction (`service.store.db.snapshot`): the
    completed sessions and those in progress are read by separate statements, and a session
    completing between them would otherwise be in neither.
    """
    study_id = study.id
    through = int(db.scalar(select(func.coalesce(func.max(AnnotationSession.id), 0))
                            .where(AnnotationSession.study_id == study_id)) or 0)
    completed = frozenset(db.scalars(
        select(AnnotationSession.id)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .where(AnnotationSession.study_id == study_id, AnnotationSession.id <= through,
               AnnotationSession.status == SessionStatus.COMPLETED, of_population(machine))))
    key = (*study_key(db, study), machine)
    with _settled_lock:
        settled = _settled.get(key, _Settled())
    loads = Loads(through=through)
    in_progress = and_(AnnotationSession.id <= through,
                       AnnotationSession.status != SessionStatus.COMPLETED)
    if not settled.sessions <= completed:
        # Counted from a newer snapshot than this transaction's (another thread's, a moment
        # later): some of those sessions are still in progress here. Count everything.
        loads.add(load_rows(db, study_id, now, machine, AnnotationSession.id <= through))
        return loads
    new = sorted(completed - settled.sessions)
    fresh = Loads()
    for start in range(0, len(new), COMPLETED_PER_QUERY):
        fresh.add(load_rows(db, study_id, now, machine,
                            AnnotationSession.id.in_(new[start:start + COMPLETED_PER_QUERY])))
    loads.include(settled.loads)
    loads.include(fresh)
    loads.add(load_rows(db, study_id, now, machine, in_progress))
    if new:
        grown = _Settled(settled.sessions | frozenset(new), settled.loads.copy())
        grown.loads.include(fresh)
        with _settled_lock:  # keep whichever count holds more sessions
            if len(_settled.get(key, _Settled()).sessions) < len(grown.sessions):
                _settled[key] = grown
    return loads


def with_newer_sessions(db: Session, loads: Loads, study_id: int, now: datetime,
                        machine: bool = False) -> Loads:
    """Under the study's lock: `loads` plus the loads of sessions started after they were
    counted, which is every load there now is."""
    if loads.through is None:
        raise ValueError("these loads count every session already")
    newer = loads.copy()
    newer.through = None
    newer.add(load_rows(db, study_id, now, machine, AnnotationSession.id > loads.through))
    return newer
