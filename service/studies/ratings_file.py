"""The ratings file: the columns and conditions `fvlab export` writes and `fvlab analyze` reads.

This module is the whole contract between the site and `analysis/`, so it imports neither the
ORM nor torch: reading a ratings file must not need either.

CSV exports are opened in spreadsheets, where a cell that begins with `=`, `+`, `-`, `@`, a tab
or a carriage return can run as a formula (a label such as `=HYPERLINK(…)` typed by an
annotator). `neutralise` prefixes such text cells with `'`, as OWASP advises, and `restore`
undoes exactly that when `fvlab analyze` reads the file, so a CSV and the raw Parquet export of
the same ratings read back to the same values. Numbers are never prefixed: a numeric cell
cannot hold a formula.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from service.featurevis.kinds import DirectionKind

REQUIRED_COLUMNS: tuple[str, ...] = (  # every ratings file has these, older ones only these
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
APPENDED_COLUMNS: tuple[str, ...] = (  # after created_at; a file without them is still valid
    "task",
    "reference",
    "correct",
    "choice",
    "annotator_source",
    "question",
    "query_gap",
    "server_rt_ms",
)
RATINGS_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + APPENDED_COLUMNS
# The values of the `task` and `reference` columns. The store's StudyTask and ReferenceKind hold
# the same values (a test keeps them equal); this module cannot import the ORM to share them.
TASKS: tuple[str, ...] = ("rating", "2afc")
REFERENCES: tuple[str, ...] = ("synthetic", "natural", "none")
# annotator_source of the machine annotator's rows: left out of an analysis unless asked for
MACHINE_SOURCE = "machine"


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
                "interpretable", "confidence", "rt_ms", "correct", "choice", "server_rt_ms")
FLOAT_COLUMNS = ("query_gap",)
TEXT_COLUMNS = tuple(c for c in RATINGS_COLUMNS if c not in INT_COLUMNS + FLOAT_COLUMNS)
FORMULA_STARTS = ("=", "+", "-", "@")  # after any leading blanks, which spreadsheets strip
CONTROL_STARTS = ("\t", "\r")
NEUTRALISER = "'"
PARQUET_SUFFIXES = (".parquet", ".pq")


def format_for(path: Path, fmt: str | None = None) -> ExportFormat:
    """The format asked for, else the one the file name implies (`.parquet`), else CSV."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
        return "parquet" if fmt == "parquet" else "csv"
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def _needs_prefix(cell: str) -> bool:
    """Whether a spreadsheet could read the cell as a formula, or the cell would read back as
    one that was neutralised (it already begins with `'` in front of such a start)."""
    bare = cell.lstrip(NEUTRALISER)
    return bare.startswith(CONTROL_STARTS) or bare.lstrip().startswith(FORMULA_STARTS)


def neutralise(cell: str) -> str:
    """The text as a CSV cell a spreadsheet shows as text; `restore` gives the text back."""
    return NEUTRALISER + cell if _needs_prefix(cell) else cell


def restore(cell: str) -> str:
    """The text `neutralise` was given (text that was never neutralised comes back unchanged)."""
    if cell.startswith(NEUTRALISER) and _needs_prefix(cell[1:]):
        return cell[1:]
    return cell


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
