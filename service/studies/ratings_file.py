"""The ratings file: the columns and conditions `fvlab export` writes and `fvlab analyze` reads.

This module is the whole contract between the site and `analysis/`, so it imports neither the
ORM nor torch: reading a ratings file must not need either.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from service.featurevis.kinds import DirectionKind

RATINGS_COLUMNS: tuple[str, ...] = (
    "rating_id",
    "study_id",
    "session_id",
    "annotator_id",
    "trial_position",
    "stimulus_id",
    "catch_item_id",
    "direction_id",
    "job_id",
    "model",
    "layer",
    "condition",
    "channel",
    "interpretable",
    "confidence",
    "label",
    "rt_ms",
    "created_at",
)


class Condition(StrEnum):
    """What a rating is of: a basis or a random direction's stimulus, or a catch item.

    Stimulus conditions are the engine's direction kinds; a catch item's condition is `catch_`
    and its kind (`service.store.models.CatchKind`), see `catch_condition`.
    """

    BASIS = DirectionKind.BASIS.value
    RANDOM = DirectionKind.RANDOM.value
    CATCH_POSITIVE = "catch_positive"
    CATCH_NEGATIVE = "catch_negative"


CONDITIONS: tuple[str, ...] = tuple(condition.value for condition in Condition)
STIMULUS_CONDITIONS: tuple[Condition, ...] = (Condition.BASIS, Condition.RANDOM)
CATCH_CONDITIONS: tuple[Condition, ...] = (Condition.CATCH_POSITIVE, Condition.CATCH_NEGATIVE)
CATCH_PREFIX = "catch_"
# The rule that scores catch trials, everywhere (the sessions export's catch score, the study's
# progress page, the analysis' exclusions): an attentive annotator says yes (interpretable) to a
# clear photo and no to noise or a flat texture.
EXPECTED_ANSWERS: dict[Condition, bool] = {
    Condition.CATCH_POSITIVE: True,
    Condition.CATCH_NEGATIVE: False,
}
SESSIONS_COLUMNS: tuple[str, ...] = (
    "session_id",
    "study_id",
    "annotator_id",
    "started_at",
    "finished_at",
    "instructions_seconds",
    "total_seconds",
    "n_ratings",
    "n_catch",
    "catch_score",
    "status",
)
EXTERNAL_ID_COLUMNS: tuple[str, ...] = ("annotator_source", "annotator_external_id")
FORMATS = ("csv", "parquet")
ExportFormat = Literal["csv", "parquet"]

INT_COLUMNS = ("rating_id", "study_id", "session_id", "annotator_id", "trial_position",
                "stimulus_id", "catch_item_id", "direction_id", "job_id", "channel",
                "interpretable", "confidence", "rt_ms")
PARQUET_SUFFIXES = (".parquet", ".pq")


def format_for(path: Path, fmt: str | None = None) -> ExportFormat:
    """The format asked for, else the one the file name implies (`.parquet`), else CSV."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
        return "parquet" if fmt == "parquet" else "csv"
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def catch_condition(catch_kind: str) -> Condition:
    """The condition of a catch item's ratings: `positive` → `catch_positive`, and so on."""
    return Condition(CATCH_PREFIX + catch_kind)


def expected_answer(catch_kind: str) -> bool:
    """The answer an attentive annotator gives to a catch item: True (yes, interpretable) for a
    positive item, False for a negative one.

    Args:
        catch_kind: the item's kind (`positive`, `negative`) or its condition (`catch_positive`,
            `catch_negative`), so the database's and the ratings file's spelling both work.
    """
    condition = catch_kind if catch_kind.startswith(CATCH_PREFIX) else CATCH_PREFIX + catch_kind
    try:
        return EXPECTED_ANSWERS[Condition(condition)]
    except (KeyError, ValueError):
        raise ValueError(f"{catch_kind!r} is not a catch kind") from None
