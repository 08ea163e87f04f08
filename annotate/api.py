"""The JSON API the trial page's script talks to (`/api/v1`), for annotators only.

A rating is stored exactly once: a repeated submit of the same values (double click, retry after
a lost answer) gets the stored rating back with 200, a different answer to an answered trial gets
409, and the database's unique constraint settles two submits racing each other. Every refusal is
a JSON error naming the field, never a 500; nothing in any answer names a condition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask import session as cookie
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload
from werkzeug.exceptions import HTTPException

from annotate.assign import DEFAULT_RESERVATION, release_taken_items, reservation_lapsed
from annotate.current import COOKIE_KEY, current_session
from annotate.database import get_db, get_engine
from annotate.rating_input import MAX_BODY_BYTES, RatingInput, RatingInputError, parse_rating
from service.db import unit_of_work, utcnow
from service.models import AnnotationSession, Rating, Trial
from service.tokens import is_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PREFIX = "/api/"
DEFAULT_RATE_LIMIT = (30, 10.0)  # ratings per session per seconds; people need > 300 ms each
MAX_TRIALS_PER_FETCH = 50


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


@bp.errorhandler(OperationalError)
def _database_down(_exc: OperationalError) -> Response:
    return error(503, "the database is unavailable; try again shortly")


def _session_or_401(db: Session) -> AnnotationSession:
    session = current_session(db)
    if session is None:
        raise ApiError(401, "no annotation session in this browser; open the study link again")
    return session


def _progress(session: AnnotationSession, trials: list[tuple[str, bool]]) -> dict[str, Any]:
    """The state the page shows, from each trial's (kind, answered) already in hand."""
    practice_total = practice_done = trials_total = trials_done = 0
    for kind, answered in trials:
        if kind == "practice":
            practice_total, practice_done = practice_total + 1, practice_done + answered
        else:  # stimulus and catch trials look and count the same to the annotator
            trials_total, trials_done = trials_total + 1, trials_done + answered
    if session.status != "active":
        phase = "done"
    elif practice_done < practice_total:
        phase = "practice"
    else:
        phase = "trials"
    slug = session.study.slug
    return {
        "phase": phase,
        "practice": {"done": practice_done, "total": practice_total},
        "trials": {"done": trials_done, "total": trials_total},
        "done_url": url_for("study.done", slug=slug),
    }


def _trial_rows(db: Session, session: AnnotationSession) -> list[Any]:
    """Every trial of the session with its rating's id and time, in one query (at most ~50 rows):
    the rating POST derives order, rate limit, what remains and progress from it."""
    return list(db.execute(
        select(Trial.id, Trial.kind, Trial.position, Rating.id.label("rating_id"),
               Rating.created_at)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.session_id == session.id)
    ).all())


def session_state(db: Session, session: AnnotationSession) -> dict[str, Any]:
    """Progress the page shows: practice and rated trials done / total, and where to go next."""
    rows = _trial_rows(db, session)
    return _progress(session, [(r.kind, r.rating_id is not None) for r in rows])


@bp.get("/session")
def state() -> Response:
    db = get_db()
    return jsonify(session_state(db, _session_or_401(db)))


@bp.get("/trials")
def upcoming() -> Response:
    """The next unanswered trials in order, so the page can preload their images."""
    db = get_db()
    session_token = cookie.get(COOKIE_KEY)
    if not isinstance(session_token, str) or not is_token(session_token):
        raise ApiError(401, "no annotation session in this browser; open the study link again")
    limit = request.args.get("limit", "5")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_TRIALS_PER_FETCH:
        _session_or_401(db)  # a stale session is refused first, as before
        raise ApiError(400, f"limit must be 1…{MAX_TRIALS_PER_FETCH}", "limit")
    trials = db.scalars(  # joined on the session's token: one round trip on the hot path
        select(Trial)
        .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(AnnotationSession.token == session_token, Rating.id.is_(None))
        .order_by(Trial.position)
        .limit(int(limit))
    ).all()
    if not trials:
        _session_or_401(db)  # none left, or no such session: only the latter is an error
    return jsonify(
        trials=[
            {"token": t.token, "practice": t.kind == "practice",
             "image": url_for("images.image", token=t.token),
             "shown": url_for("api.shown", token=t.token),
             "rating": url_for("api.rate", token=t.token)}
            for t in trials
        ]
    )


def _own_trial(db: Session, session: AnnotationSession, token: str) -> Trial:
    trial = None
    if is_token(token):
        trial = db.scalars(
            select(Trial).where(Trial.token == token, Trial.session_id == session.id)
        ).first()
    if trial is None:
        raise ApiError(404, "no such trial in this session", "token")
    return trial


def _session_and_trial(db: Session, token: str) -> tuple[AnnotationSession, Trial]:
    """The browser's session and its trial `token` with the trial's rating, in one query;
    401 and 404 as `_session_or_401` and `_own_trial` give them."""
    session_token = cookie.get(COOKIE_KEY)
    if isinstance(session_token, str) and is_token(session_token) and is_token(token):
        row = db.execute(
            select(AnnotationSession, Trial)
            .join(Trial, Trial.session_id == AnnotationSession.id)
            .where(AnnotationSession.token == session_token, Trial.token == token)
            .options(joinedload(Trial.rating), joinedload(AnnotationSession.study))
        ).first()
        if row is not None:
            return row[0], row[1]
    session = _session_or_401(db)
    return session, _own_trial(db, session, token)


@bp.post("/trials/<token>/shown")
def shown(token: str) -> Response:
    """The page reports when a trial's image was actually on screen (for timing, not RT)."""
    with unit_of_work(get_engine()) as db:
        trial = _own_trial(db, _session_or_401(db), token)
        if trial.served_at is None:
            trial.served_at = utcnow()
    return Response(status=204)


def _as_input(rating: Rating) -> RatingInput:
    return RatingInput(rating.interpretable, rating.confidence, rating.label, rating.rt_ms)


def _rating_json(rating: Rating) -> dict[str, Any]:
    return {"interpretable": rating.interpretable, "confidence": rating.confidence,
            "label": rating.label, "rt_ms": rating.rt_ms}


def _repeat(rating: Rating, submitted: RatingInput, state: dict[str, Any]) -> Response:
    if _as_input(rating) == submitted:
        return jsonify(rating=_rating_json(rating), state=state)
    return error(409, "this trial is already answered", "token", rating=_rating_json(rating))


class _RacedRating(Exception):
    """Another submit of the same trial committed after this request read the trial."""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite: naive


def _check_rate(rows: list[Any]) -> None:
    """Refuse when the session already has `count` ratings in the last `seconds`."""
    count, seconds = current_app.config.get("RATING_RATE_LIMIT", DEFAULT_RATE_LIMIT)
    since = utcnow() - timedelta(seconds=seconds)
    recent = sum(1 for r in rows if r.rating_id is not None and _aware(r.created_at) > since)
    if recent >= count:
        raise ApiError(429, "too many ratings in a short time; please slow down")


def _store(db: Session, session: AnnotationSession, trial: Trial,
           rating: RatingInput) -> tuple[Rating, dict[str, Any]]:
    """Insert the rating and update the session; returns the rating and the new progress."""
    now = utcnow()
    rows = _trial_rows(db, session)
    if any(r.id == trial.id and r.rating_id is not None for r in rows):
        raise _RacedRating  # a racing submit committed since the trial was read
    first_open = min((r.position for r in rows if r.rating_id is None), default=None)
    if trial.position != first_open:
        raise ApiError(409, "answer the trials in the order they are shown", "token")
    _check_rate(rows)
    stored = Rating(trial_id=trial.id, interpretable=rating.interpretable,
                    confidence=rating.confidence, label=rating.label, rt_ms=rating.rt_ms,
                    created_at=now)
    db.add(stored)
    trial.answered_at = now
    db.flush()
    if reservation_lapsed(session, now):
        release_taken_items(db, session.study, session, now)  # may drop open trials
        rows = _trial_rows(db, session)
        trials = [(r.kind, r.rating_id is not None) for r in rows]
    else:
        trials = [(r.kind, r.rating_id is not None or r.id == trial.id) for r in rows]
    reservation = current_app.config.get("RESERVATION", DEFAULT_RESERVATION)
    session.reserved_until = now + reservation
    remaining = [kind for kind, answered in trials if not answered]
    if trial.kind == "practice" and "practice" not in remaining:
        session.practice_done_at = now
    if not remaining:
        session.status = "completed"
        session.finished_at = now
        session.completion_code = session.study.completion_code
    return stored, _progress(session, trials)


@bp.post("/trials/<token>/rating")
def rate(token: str) -> tuple[Response, int] | Response:
    if not request.is_json:
        raise ApiError(415, "send the rating as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        submitted = parse_rating(request.stream.read(MAX_BODY_BYTES + 1))
    except RatingInputError as exc:
        status = 413 if exc.message.startswith("body is larger") else 400
        raise ApiError(status, exc.message, exc.field) from None
    try:
        with unit_of_work(get_engine()) as db:
            session, trial = _session_and_trial(db, token)
            if trial.rating is not None:
                return _repeat(trial.rating, submitted, session_state(db, session))
            if session.status != "active":
                raise ApiError(409, "this session is finished", "token")
            stored, progress = _store(db, session, trial, submitted)
    except (IntegrityError, _RacedRating):
        # A second submit of this trial committed first: answer as for any repeat.
        db = get_db()
        session = _session_or_401(db)
        trial = _own_trial(db, session, token)
        if trial.rating is None:
            raise
        return _repeat(trial.rating, submitted, session_state(db, session))
    return jsonify(rating=_rating_json(stored), state=progress), 201
