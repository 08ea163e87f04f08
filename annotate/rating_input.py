"""Checking an answer's JSON body (a rating, or a 2-AFC choice) before anything touches the
database.

Every rule names the field it is about, so the page (or a researcher reading logs) knows exactly
what was wrong, and a bad body is refused whole: nothing is stored from it.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

from service.store.models import LABEL_MAX_CHARS

MAX_BODY_BYTES = 4096
# An hour on one image is not a response time but an abandoned tab.
MAX_RT_MS = 3_600_000
FIELDS = ("interpretable", "confidence", "label", "rt_ms")
CHOICE_FIELDS = ("choice", "confidence", "rt_ms")
CHOICE_CONFIDENCE = (1, 3)  # a 2-AFC answer's confidence levels, as IMI's three a side


class RatingInputError(ValueError):
    """A bad rating body; `field` is the offending field or None for the body as a whole."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RatingInput:
    interpretable: bool
    confidence: int
    label: str | None
    rt_ms: int


@dataclass(frozen=True)
class ChoiceInput:
    """A 2-AFC answer: the centre position picked (0 first in reading order) and how sure."""

    choice: int
    confidence: int
    rt_ms: int


def _integer(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    # bool is an int in Python and 2.0 is a float; neither is what the page sends.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RatingInputError(field, f"{field} must be a whole number")
    return value


def _label(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RatingInputError("label", "label must be text or null")
    text = value.strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text):
        raise RatingInputError("label", "label must not contain control characters")
    if len(text) > LABEL_MAX_CHARS:
        raise RatingInputError("label", f"label must be at most {LABEL_MAX_CHARS} characters")
    return text or None


def _object(raw: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with no field beyond `fields`."""
    if len(raw) > MAX_BODY_BYTES:
        raise RatingInputError(None, f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RatingInputError(None, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RatingInputError(None, "body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RatingInputError(unknown[0], f"unknown field {unknown[0]!r}")
    return body


def _rt_ms(body: dict[str, Any]) -> int:
    rt_ms = _integer(body, "rt_ms")
    if not 1 <= rt_ms <= MAX_RT_MS:
        raise RatingInputError("rt_ms", f"rt_ms must be between 1 and {MAX_RT_MS}")
    return rt_ms


def parse_rating(raw: bytes) -> RatingInput:
    """Parse and check a rating body (`interpretable`, `confidence`, `label`, `rt_ms`).

    Raises:
        RatingInputError: naming the field, for any body that is not a valid rating.
    """
    body = _object(raw, FIELDS)
    interpretable = body.get("interpretable")
    if not isinstance(interpretable, bool):
        raise RatingInputError("interpretable", "interpretable must be true or false")
    confidence = _integer(body, "confidence")
    if not 1 <= confidence <= 5:
        raise RatingInputError("confidence", "confidence must be between 1 and 5")
    return RatingInput(interpretable, confidence, _label(body.get("label")), _rt_ms(body))


def parse_choice(raw: bytes) -> ChoiceInput:
    """Parse and check a 2-AFC answer body (`choice` 0 or 1, `confidence` 1–3, `rt_ms`).

    Raises:
        RatingInputError: naming the field, for any body that is not a valid answer.
    """
    body = _object(raw, CHOICE_FIELDS)
    choice = _integer(body, "choice")
    if choice not in (0, 1):
        raise RatingInputError("choice", "choice must be 0 or 1")
    confidence = _integer(body, "confidence")
    low, high = CHOICE_CONFIDENCE
    if not low <= confidence <= high:
        raise RatingInputError("confidence", f"confidence must be between {low} and {high}")
    return ChoiceInput(choice, confidence, _rt_ms(body))


def _reject_constant(name: str) -> float:
    """NaN and Infinity are not JSON; Python's parser would accept them otherwise."""
    raise ValueError(f"{name} is not allowed")

