"""`POST /api/v1/trials/<token>/answer`: a 2-AFC answer, stored exactly once.

The body is the position picked as shown (`choice`, 0 first in reading order), a confidence of
1–3 and the page's response time. Whether the choice is right is decided here, from the trial's
`max_position`, which no response ever carries; only a practice trial's answer says whether it
was right (`feedback`), since practice teaches the task and is never data. Every answer's
response carries the session's next open trials (`upcoming`), so after the first trial the page
needs no request beyond this one and the next trial's two pictures. Repeats and races are
settled as for ratings (`annotate.api`): the same answer again gets the stored one back with
200, a different one 409.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotate.api import (
    ApiError,
    answered,
    bp,
    error,
    open_trials,
    progress_state,
    read_answer,
    refusal_for_no_row,
    row_of,
    store_answer,
    trial_json,
    trial_rows,
)
from annotate.current import session_token
from annotate.database import get_db, get_engine
from annotate.rating_input import ChoiceInput, parse_choice
from service.store.db import unit_of_work
from service.store.models import SessionStatus, TrialKind
from service.store.tokens import is_token

UPCOMING = 2  # the trial now due and the one after it, whose pictures the page preloads


def _answer_json(answer: ChoiceInput) -> dict[str, Any]:
    return {"choice": answer.choice, "confidence": answer.confidence, "rt_ms": answer.rt_ms}


def _reply(db: Session, owner: str, trial: Any, answer: ChoiceInput,
           state: dict[str, Any]) -> dict[str, Any]:
    reply = {"answer": _answer_json(answer), "state": state,
             "upcoming": [trial_json(t) for t in open_trials(db, owner, UPCOMING)]}
    if trial.kind == TrialKind.PRACTICE:
        reply["feedback"] = {"correct": answer.choice == trial.max_position}
    return reply


def _repeat(db: Session, owner: str, rows: list[Any], trial: Any,
            submitted: ChoiceInput) -> Response:
    """The response to an answer for a trial that already has one."""
    stored = ChoiceInput(trial.choice, trial.confidence, trial.rt_ms)
    if stored != submitted:
        return error(409, "this trial is already answered", "token",
                     answer=_answer_json(stored))
    state = progress_state(trial.status, trial.slug, answered(rows))
    return jsonify(_reply(db, owner, trial, stored, state))


@bp.post("/trials/<token>/answer")
def answer(token: str) -> tuple[Response, int] | Response:
    submitted = read_answer(parse_choice, "answer")
    owner = session_token()
    if owner is None or not is_token(token):
        raise refusal_for_no_row(get_db())
    try:
        with unit_of_work(get_engine()) as db:
            rows = trial_rows(db, owner)
            trial = row_of(rows, token)
            if trial is None:
                raise refusal_for_no_row(db)
            if trial.reference is None:
                raise ApiError(400, "this trial takes a rating, not a choice", "token")
            if trial.rating_id is not None:
                return _repeat(db, owner, rows, trial, submitted)
            if trial.status != SessionStatus.ACTIVE:
                raise ApiError(409, "this session is finished", "token")
            state = store_answer(db, rows, trial, {
                "choice": submitted.choice, "correct": submitted.choice == trial.max_position,
                "confidence": submitted.confidence, "rt_ms": submitted.rt_ms}, owner)
            return jsonify(_reply(db, owner, trial, submitted, state)), 201
    except IntegrityError:
        # A second submit of this trial committed first: answer as for any repeat.
        db = get_db()
        rows = trial_rows(db, owner)
        trial = row_of(rows, token)
        if trial is None or trial.rating_id is None:
            raise
        return _repeat(db, owner, rows, trial, submitted)
