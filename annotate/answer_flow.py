"""Storing an answer of either task exactly once, and the reply that carries the next trials.

Both answer routes (`annotate.rating_api`, `annotate.afc_api`) take the same steps: find the
trial among the browser's session's trials (one query returns them all), refuse a trial of the
other task, settle a repeat (the same answer again gets the stored one back with 200, a
different one 409; the database's unique constraint settles two submits racing each other),
store a new answer once, and reply with the progress and the session's next open trials
(`upcoming`), so the page needs no request between trials beyond the answer and the next
trial's pictures. What differs between the tasks is an `AnswerTask`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from flask import Response, current_app, jsonify
from sqlalchemy import Table, bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotate.api import (
    ApiError,
    answered,
    error,
    progress_state,
    read_answer,
    refusal_for_no_row,
    row_of,
    trial_json,
    trial_rows,
)
from annotate.current import session_token
from annotate.database import get_db, get_engine
from annotate.reservations import (
    DEFAULT_RESERVATION,
    lease_due,
    release_taken_items,
    reservation_lapsed,
)
from service.store.db import unit_of_work, utcnow
from service.store.models import AnnotationSession, Rating, SessionStatus, Trial, TrialKind
from service.store.tokens import is_token

UPCOMING = 2  # the trial now due and the one after it, whose pictures the page preloads
DEFAULT_RATE_LIMIT = (30, 10.0)  # answers per session per seconds; people need > 300 ms each
A = TypeVar("A")

_TRIALS = cast(Table, Trial.__table__)  # a mapped class's table is a Table; the stubs say less
_SESSIONS = cast(Table, AnnotationSession.__table__)
_INSERT_RATING = cast(Table, Rating.__table__).insert()
_MARK_ANSWERED = (_TRIALS.update().where(_TRIALS.c.id == bindparam("trial"))
                  .values(answered_at=bindparam("moment")))


def _no_extra(trial: Any, answer: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class AnswerTask(Generic[A]):
    """How one task's answers are read, stored and echoed.

    `name` is the body's name in messages and the reply's key for the answer; `rating` says
    which trials take this answer (rating trials have no reference kind, 2-AFC trials do);
    `stored` reads the answer a trial row already has; `columns` are the ratings row's values
    for a new answer; `extra` adds task-specific keys to a reply (a practice trial's feedback).
    """

    name: str
    parse: Callable[[bytes], A]
    rating: bool
    wrong_trial: str
    stored: Callable[[Any], A]
    columns: Callable[[Any, A], dict[str, Any]]
    as_json: Callable[[A], dict[str, Any]]
    extra: Callable[[Any, A], dict[str, Any]] = _no_extra


def answer_trial(token: str, task: AnswerTask[A]) -> tuple[Response, int]:
    """The whole answer route for trial `token`: 201 when stored, 200 for a repeat, else a
    JSON refusal (raised as ApiError or returned)."""
    submitted = read_answer(task.parse, task.name)
    owner = session_token()
    if owner is None or not is_token(token):
        raise refusal_for_no_row(get_db())
    try:
        with unit_of_work(get_engine()) as db:
            rows = trial_rows(db, owner, token)
            trial = row_of(rows, token)
            if trial is None:
                raise refusal_for_no_row(db)
            if (trial.reference is None) != task.rating:
                raise ApiError(400, task.wrong_trial, "token")
            if trial.rating_id is not None:
                return _repeat(rows, trial, submitted, task)
            if trial.status != SessionStatus.ACTIVE:
                raise ApiError(409, "this session is finished", "token")
            state, rows = store_answer(db, rows, trial, task.columns(trial, submitted), owner)
            return _reply(rows, trial, submitted, state, task), 201
    except IntegrityError:
        # A second submit of this trial committed first: answer as for any repeat.
        rows = trial_rows(get_db(), owner, token)
        trial = row_of(rows, token)
        if trial is None or trial.rating_id is None:
            raise
        return _repeat(rows, trial, submitted, task)


def next_open(rows: list[Any], answered_now: int | None = None) -> list[Any]:
    """The session's next unanswered trials in order (at most UPCOMING), from its rows in hand;
    `answered_now` is a trial answered in this transaction whose row does not say so yet."""
    waiting = [r for r in rows if r.rating_id is None and r.id != answered_now]
    return sorted(waiting, key=lambda r: r.position)[:UPCOMING]


def _reply(rows: list[Any], trial: Any, answer: A, state: dict[str, Any],
           task: AnswerTask[A]) -> Response:
    """The same keys for every trial of a task, whatever its condition."""
    return jsonify({task.name: task.as_json(answer), "state": state,
                    "upcoming": [trial_json(t) for t in next_open(rows, trial.id)],
                    **task.extra(trial, answer)})


def _repeat(rows: list[Any], trial: Any, submitted: A,
            task: AnswerTask[A]) -> tuple[Response, int]:
    """The response to an answer for a trial that already has one."""
    stored = task.stored(trial)
    if stored != submitted:
        return error(409, "this trial is already answered", "token",
                     **{task.name: task.as_json(stored)}), 409
    state = progress_state(trial.status, trial.slug, answered(rows))
    return _reply(rows, trial, stored, state, task), 200


def check_rate(rows: list[Any], now: datetime) -> None:
    """Refuse when the session already has `count` answers in the last `seconds`."""
    count, seconds = current_app.config.get("RATING_RATE_LIMIT", DEFAULT_RATE_LIMIT)
    since = now - timedelta(seconds=seconds)
    recent = sum(1 for r in rows if r.rating_id is not None and r.created_at > since)
    if recent >= count:
        raise ApiError(429, "too many ratings in a short time; please slow down")


def server_rt_ms(rows: list[Any], trial: Any, now: datetime) -> int:
    """The answer time on the server's own clock, kept beside the page's `rt_ms`: from the moment
    the trial became the person's current one (their previous answer stored, the instructions
    finished or else the session started, or the page's report that the image is on screen,
    whichever came last) to `now`. What a client reports can only make it shorter, never longer
    than the time that really passed, so a script that claims slow answers is still seen as
    fast."""
    moments = [r.created_at for r in rows if r.rating_id is not None]
    moments.append(trial.instructions_done_at or trial.started_at)
    if trial.served_at is not None:
        moments.append(trial.served_at)
    return max(0, round((now - max(moments)).total_seconds() * 1000))


def store_answer(db: Session, rows: list[Any], trial: Any, values: dict[str, Any],
                 owner: str) -> tuple[dict[str, Any], list[Any]]:
    """Insert the answer (the ratings row's `values`), mark the trial answered and renew the
    session's lease when due; returns the progress and the session's trial rows as they now
    stand (read again only when lapsed reservations dropped some)."""
    now = utcnow()
    first_open = min((r.position for r in rows if r.rating_id is None), default=None)
    if trial.position != first_open:
        raise ApiError(409, "answer the trials in the order they are shown", "token")
    check_rate(rows, now)
    conn = db.connection()  # Core statements on ids already in hand: no ORM on the hot path
    conn.execute(_INSERT_RATING, {
        "trial_id": trial.id, **values, "server_rt_ms": server_rt_ms(rows, trial, now),
        "created_at": now})
    conn.execute(_MARK_ANSWERED, {"trial": trial.id, "moment": now})
    session_id = trial.session_id
    trials = answered(rows, also=trial.id)
    if reservation_lapsed(trial.reserved_until, now):
        session = db.get_one(AnnotationSession, session_id)
        release_taken_items(db, session.study, session, now)  # may drop open trials
        rows = trial_rows(db, owner)
        trials = answered(rows)
    reservation = current_app.config.get("RESERVATION", DEFAULT_RESERVATION)
    changes: dict[str, Any] = {}
    if lease_due(trial.reserved_until, now, reservation):
        changes["reserved_until"] = now + reservation
    remaining = [kind for kind, done in trials if not done]
    if trial.kind == TrialKind.PRACTICE and TrialKind.PRACTICE not in remaining:
        changes["practice_done_at"] = now
    if not remaining:
        changes.update(status=SessionStatus.COMPLETED, finished_at=now,
                       completion_code=trial.completion_code)
    if changes:
        conn.execute(_SESSIONS.update().where(_SESSIONS.c.id == session_id).values(**changes))
    return progress_state(changes.get("status", trial.status), trial.slug, trials), rows
