"""`POST /api/v1/trials/<token>/answer`: a 2-AFC answer, stored exactly once.

The body is the position picked as shown (`choice`, 0 first in reading order), a confidence of
1–3 and the page's response time. Whether the choice is right is decided here, from the trial's
`max_position`, which no response ever carries; only a practice trial's answer says whether it
was right (`feedback`), since practice teaches the task and is never data. Every answer's
response carries the session's next open trials (`upcoming`), so after the first trial the page
needs no request beyond this one and the next trial's two pictures. Repeats and races are
settled as for ratings (`annotate.answer_flow`): the same answer again gets the stored one back
with 200, a different one 409.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from annotate.answer_flow import AnswerTask, answer_trial
from annotate.api import bp
from annotate.rating_input import ChoiceInput, parse_choice
from service.store.models import TrialKind


def _stored(row: Any) -> ChoiceInput:
    return ChoiceInput(row.choice, row.confidence, row.rt_ms)


def _columns(trial: Any, answer: ChoiceInput) -> dict[str, Any]:
    return {"choice": answer.choice, "correct": answer.choice == trial.max_position,
            "confidence": answer.confidence, "rt_ms": answer.rt_ms}


def _answer_json(answer: ChoiceInput) -> dict[str, Any]:
    return {"choice": answer.choice, "confidence": answer.confidence, "rt_ms": answer.rt_ms}


def _feedback(trial: Any, answer: ChoiceInput) -> dict[str, Any]:
    if trial.kind != TrialKind.PRACTICE:
        return {}
    return {"feedback": {"correct": answer.choice == trial.max_position}}


CHOICE = AnswerTask(name="answer", parse=parse_choice, rating=False,
                    wrong_trial="this trial takes a rating, not a choice", stored=_stored,
                    columns=_columns, as_json=_answer_json, extra=_feedback)


@bp.post("/trials/<token>/answer")
def answer(token: str) -> tuple[Response, int]:
    return answer_trial(token, CHOICE)
