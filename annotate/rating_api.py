"""`POST /api/v1/trials/<token>/rating`: a rating (yes/no, confidence 1–5, an optional label),
stored exactly once.

A repeated submit of the same values (double click, retry after a lost answer) gets the stored
rating back with 200, a different answer to an answered trial gets 409, and the database's
unique constraint settles two submits racing each other (`annotate.answer_flow`). Every
rating's response carries the session's next open trials (`upcoming`), so after the first
trial the page needs no request beyond this one and the next trial's image, which it loads
while the current trial is on screen.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from annotate.answer_flow import AnswerTask, answer_trial
from annotate.api import bp
from annotate.rating_input import RatingInput, parse_rating


def _stored(row: Any) -> RatingInput:
    return RatingInput(row.interpretable, row.confidence, row.label, row.rt_ms)


def _columns(trial: Any, rating: RatingInput) -> dict[str, Any]:
    return {"interpretable": rating.interpretable, "confidence": rating.confidence,
            "label": rating.label, "rt_ms": rating.rt_ms}


RATING = AnswerTask(name="rating", parse=parse_rating, rating=True,
                    wrong_trial="this trial takes a choice, not a rating", stored=_stored,
                    columns=_columns, as_json=lambda rating: _columns(None, rating))


@bp.post("/trials/<token>/rating")
def rate(token: str) -> tuple[Response, int]:
    return answer_trial(token, RATING)
