"""`POST /api/v1/trials/<token>/rating`: a rating (yes/no, confidence 1–5, an optional label),
stored exactly once.

A repeated submit of the same values (double click, retry after a lost answer) gets the stored
rating back with 200, a different answer to an answered trial gets 409, and the database's
unique constraint settles two submits racing each other (`annotate.api.store_answer`).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from sqlalchemy.exc import IntegrityError

from annotate.api import (
    ApiError,
    answered,
    bp,
    error,
    progress_state,
    read_answer,
    refusal_for_no_row,
    row_of,
    store_answer,
    trial_rows,
)
from annotate.current import session_token
from annotate.database import get_db, get_engine
from annotate.rating_input import RatingInput, parse_rating
from service.store.db import unit_of_work
from service.store.models import SessionStatus
from service.store.tokens import is_token


def _stored(row: Any) -> RatingInput:
    return RatingInput(row.interpretable, row.confidence, row.label, row.rt_ms)


def _rating_json(rating: RatingInput) -> dict[str, Any]:
    return {"interpretable": rating.interpretable, "confidence": rating.confidence,
            "label": rating.label, "rt_ms": rating.rt_ms}


def _repeat(stored: RatingInput, submitted: RatingInput, state: dict[str, Any]) -> Response:
    if stored == submitted:
        return jsonify(rating=_rating_json(stored), state=state)
    return error(409, "this trial is already answered", "token", rating=_rating_json(stored))


def _repeat_of(rows: list[Any], trial: Any, submitted: RatingInput) -> Response:
    """The answer to a submit of a trial that already has its rating."""
    return _repeat(_stored(trial), submitted,
                   progress_state(trial.status, trial.slug, answered(rows)))


@bp.post("/trials/<token>/rating")
def rate(token: str) -> tuple[Response, int] | Response:
    submitted = read_answer(parse_rating, "rating")
    owner = session_token()
    if owner is None or not is_token(token):
        raise refusal_for_no_row(get_db())
    try:
        with unit_of_work(get_engine()) as db:
            rows = trial_rows(db, owner)
            trial = row_of(rows, token)
            if trial is None:
                raise refusal_for_no_row(db)
            if trial.reference is not None:
                raise ApiError(400, "this trial takes a choice, not a rating", "token")
            if trial.rating_id is not None:
                return _repeat_of(rows, trial, submitted)
            if trial.status != SessionStatus.ACTIVE:
                raise ApiError(409, "this session is finished", "token")
            progress = store_answer(db, rows, trial, {
                "interpretable": submitted.interpretable, "confidence": submitted.confidence,
                "label": submitted.label, "rt_ms": submitted.rt_ms}, owner)
    except IntegrityError:
        # A second submit of this trial committed first: answer as for any repeat.
        rows = trial_rows(get_db(), owner)
        trial = row_of(rows, token)
        if trial is None or trial.rating_id is None:
            raise
        return _repeat_of(rows, trial, submitted)
    return jsonify(rating=_rating_json(submitted), state=progress), 201
