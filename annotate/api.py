"""The JSON API the trial pages' scripts talk to (`/api/v1`), for annotators only.

This module holds what both tasks' pages read: the session's state, its open trials, the
`shown` report, and the helpers every route uses (the session's trial rows, errors, reading a
body). The answer routes are `annotate.rating_api` (a rating) and `annotate.afc_api` (a 2-AFC
choice); what they share, storing an answer exactly once and replying with the next trials, is
`annotate.answer_flow`. Every refusal is a JSON error naming the field, never
a 500; nothing in any answer names a condition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Blueprint, Response, jsonify, request, url_for
from sqlalchemy import Table, bindparam, case, func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from annotate.current import current_session, session_token
from annotate.database import get_db, get_engine
from annotate.rating_input import MAX_BODY_BYTES, RatingInputError
from annotate.whole_numbers import is_plain_number
from service.store.db import unit_of_work, utcnow
from service.store.models import (
    AnnotationSession,
    Rating,
    ReferenceKind,
    SessionStatus,
    Study,
    Trial,
    TrialKind,
)
from service.store.tokens import is_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PREFIX = "/api/"
MAX_TRIALS_PER_FETCH = 50
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error(status: int, message: str, field: str | None = None, **extra: Any) -> Response:
    response = jsonify(error=message, field=field, **extra)
    response.status_code = status
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error(exc.status, exc.message, exc.field)


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response | HTTPException:
    """JSON for every HTTP error under /api/ (unknown route, wrong method, …); others as before."""
    if request.path.startswith(PREFIX):
        return error(exc.code or 500, exc.description or exc.name)
    return exc


def _session_or_401(db: Session) -> AnnotationSession:
    session = current_session(db)
    if session is None:
        raise ApiError(401, "no annotation session in this browser; open the study link again")
    return session


def progress_state(status: str, slug: str, trials: list[tuple[str, bool]]) -> dict[str, Any]:
    """The state the page shows, from each trial's (kind, answered) already in hand."""
    practice_total = practice_done = trials_total = trials_done = 0
    for kind, answered in trials:
        if kind == TrialKind.PRACTICE:
            practice_total, practice_done = practice_total + 1, practice_done + answered
        else:  # stimulus and catch trials look and count the same to the annotator
            trials_total, trials_done = trials_total + 1, trials_done + answered
    if status != SessionStatus.ACTIVE:
        phase = "done"
    elif practice_done < practice_total:
        phase = "practice"
    else:
        phase = "trials"
    return {
        "phase": phase,
        "practice": {"done": practice_done, "total": practice_total},
        "trials": {"done": trials_done, "total": trials_total},
        "done_url": url_for("study.done", slug=slug),
    }


def _answering(column: Any) -> Any:
    """`column` on the row of the trial being answered (bound as `answering`) and NULL on the
    others: every row would otherwise carry and convert the same session times, or an answer
    nobody compares."""
    return case((Trial.token == bindparam("answering"), column)).label(column.key)


_TRIAL_ROWS = (  # built once: the hot path only binds the tokens
    select(Trial.id, Trial.token, Trial.kind, Trial.position, Trial.reference,
           Rating.id.label("rating_id"), Rating.created_at,
           AnnotationSession.id.label("session_id"), AnnotationSession.status, Study.slug,
           Study.completion_code,
           *(_answering(column) for column in (
               Trial.served_at, Trial.max_position, Rating.interpretable, Rating.confidence,
               Rating.label, Rating.rt_ms, Rating.choice, AnnotationSession.reserved_until,
               AnnotationSession.started_at, AnnotationSession.instructions_done_at)))
    .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
    .join(Study, AnnotationSession.study_id == Study.id)
    .outerjoin(Rating, Rating.trial_id == Trial.id)
    .where(AnnotationSession.token == bindparam("session_token"))
)
_TRIALS = cast(Table, Trial.__table__)  # a mapped class's table is a Table; the stubs say less
_SESSIONS = cast(Table, AnnotationSession.__table__)
_MARK_SHOWN = (  # the first report counts; matched on the trial's and the session's token
    _TRIALS.update()
    .where(_TRIALS.c.token == bindparam("trial"),
           _TRIALS.c.session_id == select(_SESSIONS.c.id)
           .where(_SESSIONS.c.token == bindparam("session_token")).scalar_subquery())
    .values(served_at=func.coalesce(_TRIALS.c.served_at,
                                    bindparam("moment", type_=_TRIALS.c.served_at.type)))
)


def trial_rows(db: Session, owner: str, answering: str | None = None) -> list[Any]:
    """Every trial of the browser's session with its rating's id and time, and the session's
    and study's fields, in one query (at most ~50 rows): order, rate limit, what remains and
    progress all come from it. The row of trial `answering` also holds its answer, when it has
    one, and the times an answer POST needs (`_answering`)."""
    return list(db.connection().execute(
        _TRIAL_ROWS, {"session_token": owner, "answering": answering or ""}))


def session_state(db: Session, session: AnnotationSession) -> dict[str, Any]:
    """Progress the page shows: practice and rated trials done / total, and where to go next."""
    return progress_state(session.status, session.study.slug,
                     answered(trial_rows(db, session.token)))


@bp.get("/session")
def state() -> Response:
    db = get_db()
    return jsonify(session_state(db, _session_or_401(db)))


_OPEN_TRIALS = (  # joined on the session's token: one round trip on the hot path; built once
    select(Trial.token, Trial.kind, Trial.reference)
    .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
    .outerjoin(Rating, Rating.trial_id == Trial.id)
    .where(AnnotationSession.token == bindparam("session_token"), Rating.id.is_(None))
    .order_by(Trial.position)
    .limit(bindparam("limit"))
)


@bp.get("/trials")
def upcoming() -> Response:
    """The next unanswered trials in order, so the page can preload their images."""
    db = get_db()
    owner = session_token()
    if owner is None:
        raise ApiError(401, "no annotation session in this browser; open the study link again")
    limit = request.args.get("limit", "5")
    if not is_plain_number(limit) or not 1 <= int(limit) <= MAX_TRIALS_PER_FETCH:
        _session_or_401(db)  # a stale session is refused first, as before
        raise ApiError(400, f"limit must be 1…{MAX_TRIALS_PER_FETCH}", "limit")
    trials = open_trials(db, owner, int(limit))
    if not trials:
        _session_or_401(db)  # none left, or no such session: only the latter is an error
    return jsonify(trials=[trial_json(t) for t in trials])


def trial_json(trial: Any) -> dict[str, Any]:
    """What the page needs of a trial (`token`, `kind`, `reference` in hand): the same keys
    for every kind of trial of one task, and URLs that carry the trial's token only."""
    practice = trial.kind == TrialKind.PRACTICE
    if trial.reference is not None:  # a 2-AFC trial: no `shown` report, to save a request
        references = None if trial.reference == ReferenceKind.NONE else url_for(
            "images.composed", token=trial.token, part="references")
        return {"token": trial.token, "practice": practice, "references": references,
                "queries": url_for("images.composed", token=trial.token, part="queries"),
                "answer": url_for("api.answer", token=trial.token)}
    return {"token": trial.token, "practice": practice,
            "image": url_for("images.image", token=trial.token),
            "shown": url_for("api.shown", token=trial.token),
            "rating": url_for("api.rate", token=trial.token)}


def open_trials(db: Session, owner: str, limit: int) -> list[Any]:
    """The session's next unanswered trials, in order (at most `limit`)."""
    return list(db.connection().execute(_OPEN_TRIALS, {"session_token": owner, "limit": limit}))


@bp.post("/trials/<token>/shown")
def shown(token: str) -> Response:
    """The page reports when a trial's image was actually on screen (for timing, not RT)."""
    owner = session_token()
    if owner is not None and is_token(token):
        with unit_of_work(get_engine()) as db:
            marked = db.connection().execute(
                _MARK_SHOWN, {"trial": token, "session_token": owner, "moment": utcnow()})
        if marked.rowcount:
            return Response(status=204)
    raise refusal_for_no_row(get_db())


def answered(rows: list[Any], also: int | None = None) -> list[tuple[str, bool]]:
    return [(r.kind, r.rating_id is not None or r.id == also) for r in rows]


def row_of(rows: list[Any], token: str) -> Any | None:
    return next((r for r in rows if r.token == token), None)


def refusal_for_no_row(db: Session) -> ApiError:
    """No row for this token in the browser's session: 401 without a session, else 404."""
    _session_or_401(db)
    return ApiError(404, "no such trial in this session", "token")


def read_answer(parse: Callable[[bytes], T], what: str) -> T:
    """The request's JSON body parsed by `parse`; ApiError (415, 413 or 400) otherwise."""
    if not request.is_json:
        raise ApiError(415, f"send the {what} as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return parse(request.stream.read(MAX_BODY_BYTES + 1))
    except RatingInputError as exc:
        status = 413 if exc.message.startswith("body is larger") else 400
        raise ApiError(status, exc.message, exc.field) from None


