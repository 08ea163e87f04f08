"""Ratings in: from an export file (CSV or Parquet) or straight from a study in the database.

Everything the analysis computes rests on this table, so it is validated before anything else
runs: a malformed file stops with an error naming the first bad row and column, instead of an
estimate quietly built on half-parsed values. The analysis reads
files only: of `service` it imports the ratings-file contract, never the ORM or torch (the CLI
queries a study's ratings from the database and hands them to `validate`).

Files written before the appended columns (`task` … `server_rt_ms`) existed stay valid: those
columns are then empty (`task` is `rating`, the only task such files hold). A CSV's text cells
come back as the Parquet export holds them: the spreadsheet guard `'` that the export put in
front of cells like `=…` or `-1` is taken off again (`ratings_file.restore`).

A file holds one task. Rating rows answer yes/no (`interpretable`, confidence 1–5); 2-AFC rows
leave `interpretable` empty and carry `correct` and `choice` (0/1), a confidence of 1–3 and, on
stimulus rows, the reference kind shown. Mixing the tasks in one file would mix two outcomes
into one rate, so it is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tasks import AFC, RATING, REFERENCES
from service.studies.ratings_file import (
    APPENDED_COLUMNS,
    CONDITIONS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    MACHINE_SOURCE,
    RATINGS_COLUMNS,
    REQUIRED_COLUMNS,
    SESSIONS_COLUMNS,
    TASKS,
    TEXT_COLUMNS,
    format_for,
    restore,
)

STIMULUS_CONDITIONS = ("basis", "random")
CATCH_CONDITIONS = ("catch_positive", "catch_negative")
CONFIDENCE_RANGE = {RATING: (1, 5), AFC: (1, 3)}
_REQUIRED_EVERYWHERE = ("rating_id", "annotator_id", "condition", "confidence", "rt_ms",
                        "created_at")
_PAGE_ONLY = ("rt_ms",)  # empty on the machine annotator's rows (annotator_source machine)


class RatingsError(ValueError):
    """The ratings cannot be analysed as given; the message names the row and column."""


def machine_rows(ratings: pd.DataFrame) -> np.ndarray:
    """Which rows are the machine annotator's (none in a file without `annotator_source`)."""
    if "annotator_source" not in ratings.columns:
        return np.zeros(len(ratings), dtype=bool)
    return (ratings["annotator_source"] == MACHINE_SOURCE).fillna(False).to_numpy(dtype=bool)


def _where(frame: pd.DataFrame, bad: np.ndarray, column: str, problem: str) -> None:
    """Raise for the first row flagged in `bad` (rows count from 1, the header not counted)."""
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    value = frame[column].iloc[first]
    if isinstance(value, np.generic):  # numpy's repr (np.int64(7)) means nothing to a reader
        value = value.item()
    shown = "empty" if pd.isna(value) else repr(value)
    raise RatingsError(
        f"row {first + 1}, column {column!r}: {shown} {problem} ({int(bad.sum())} such rows)"
    )


def _whole_numbers(frame: pd.DataFrame, raw: pd.Series, column: str) -> pd.Series:
    """A column as nullable integers; text or fractions are errors, empty cells stay empty."""
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype("Int64")
    if pd.api.types.is_numeric_dtype(raw):
        number = raw.astype("Float64")
        absent = number.isna().to_numpy()
    else:
        text = raw.astype("string").str.strip()
        absent = text.isna().to_numpy() | (text == "").fillna(True).to_numpy(dtype=bool)
        number = pd.to_numeric(text.mask(absent), errors="coerce").astype("Float64")
    whole = number.notna().to_numpy(dtype=bool) & (number.fillna(0) % 1 == 0).to_numpy(dtype=bool)
    _where(frame, ~absent & ~whole, column, "is not a whole number")
    return number.astype("Int64")


def _decimals(frame: pd.DataFrame, raw: pd.Series, column: str) -> pd.Series:
    """A column as nullable floats; text that is not a number is an error, empty stays empty."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype("Float64")
    text = raw.astype("string").str.strip()
    absent = text.isna().to_numpy() | (text == "").fillna(True).to_numpy(dtype=bool)
    number = pd.to_numeric(text.mask(absent), errors="coerce").astype("Float64")
    _where(frame, ~absent & number.isna().to_numpy(dtype=bool), column, "is not a number")
    return number


def _with_appended(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every appended column, empty where an older file lacks it."""
    absent = [c for c in APPENDED_COLUMNS if c not in frame.columns]
    if not absent:
        return frame
    filled = {c: pd.Series(pd.NA, index=frame.index, dtype="object") for c in absent}
    if "task" in absent:
        filled["task"] = pd.Series("rating", index=frame.index, dtype="object")
    return frame.assign(**filled)


def _categorical(raw: pd.Series) -> pd.Categorical:
    """Text as a categorical with surrounding blanks stripped and empty cells missing.

    Work is done on the distinct values only (a million rows hold a few dozen layers and
    conditions), then mapped back through integer codes.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    stripped = pd.Series(uniques, dtype="object").map(lambda v: str(v).strip())
    categories = pd.unique(stripped[stripped != ""])
    lookup = pd.Index(categories).get_indexer(pd.Index(stripped))  # -1 for the empty ones
    new_codes = np.where(codes >= 0, lookup[np.maximum(codes, 0)] if len(lookup) else -1, -1)
    return pd.Categorical.from_codes(new_codes, categories=pd.Index(categories, dtype="object"))


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """Check columns and values; return a typed copy for analysis.

    Whole-number columns become nullable integers, text columns categoricals (fast to filter
    and group on a million rows), `created_at` a UTC datetime.

    Raises:
        RatingsError: a column is missing, or a value is out of its domain; the message names
            the first offending row (1-based data row) and the column.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise RatingsError(f"missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise RatingsError("the file has no ratings")
    frame = _with_appended(frame)
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in RATINGS_COLUMNS:
        raw = frame[column].reset_index(drop=True)
        if column in INT_COLUMNS:
            out[column] = _whole_numbers(frame, raw, column)
        elif column in FLOAT_COLUMNS:
            out[column] = _decimals(frame, raw, column)
        elif column == "created_at":
            text = raw.astype("string").str.strip()
            out[column] = text.mask(text == "")
        else:
            out[column] = _categorical(raw)
    machine = machine_rows(out)
    for column in _REQUIRED_EVERYWHERE:
        empty = out[column].isna().to_numpy()
        if column in _PAGE_ONLY:  # the machine annotator has no page to time it
            empty = empty & ~machine
        _where(frame, empty, column, "is required")
    _where(frame, ~out["condition"].isin(CONDITIONS).to_numpy(), "condition",
           f"is not one of {', '.join(CONDITIONS)}")
    _where(frame, (out["rt_ms"] < 0).fillna(False).to_numpy(dtype=bool), "rt_ms", "is negative")
    _where(frame, (out["server_rt_ms"] < 0).fillna(False).to_numpy(dtype=bool), "server_rt_ms",
           "is negative")
    _where(frame, ~out["task"].isin(TASKS).to_numpy(), "task", f"is not one of {', '.join(TASKS)}")
    _one_task(out)
    is_stimulus = out["condition"].isin(STIMULUS_CONDITIONS).to_numpy()
    _answers(frame, out, is_stimulus)
    for column in ("stimulus_id", "layer"):
        _where(frame, is_stimulus & out[column].isna().to_numpy(), column,
               "is required on basis/random rows")
    _where(frame, is_stimulus & out["catch_item_id"].notna().to_numpy(), "catch_item_id",
           "must be empty on basis/random rows")
    _where(frame, ~is_stimulus & out["catch_item_id"].isna().to_numpy(), "catch_item_id",
           "is required on catch rows")
    _where(frame, ~is_stimulus & out["stimulus_id"].notna().to_numpy(), "stimulus_id",
           "must be empty on catch rows")
    _where(frame, (out["condition"] == "random").to_numpy(dtype=bool)
           & out["channel"].notna().to_numpy(), "channel", "must be empty for random directions")
    stamps = pd.to_datetime(out["created_at"].astype("object"), format="ISO8601", utc=True,
                            errors="coerce")
    _where(frame, stamps.isna().to_numpy(), "created_at", "is not an ISO 8601 time")
    out["created_at"] = stamps
    _where(frame, out["rating_id"].duplicated().to_numpy(), "rating_id", "is a duplicate")
    return out


def _one_task(out: pd.DataFrame) -> None:
    """One file, one task: the first row whose task differs from the first row's is named."""
    task = out["task"].to_numpy(dtype=object)
    other = np.flatnonzero(task != task[0])
    if other.size:
        raise RatingsError(
            f"row {int(other[0]) + 1}, column 'task': {task[other[0]]!r} but row 1 is "
            f"{task[0]!r}; a ratings file holds one task, so analyse each study's export on "
            "its own")


def _answers(frame: pd.DataFrame, out: pd.DataFrame, is_stimulus: np.ndarray) -> None:
    """The answer columns the file's task uses are filled and in range; the others are empty."""
    task = str(out["task"].iloc[0])
    low, high = CONFIDENCE_RANGE[task]
    _where(frame, ~out["confidence"].between(low, high).to_numpy(dtype=bool), "confidence",
           f"is not in {low}–{high}" + (" (a 2-AFC confidence)" if task == AFC else ""))
    if task == RATING:
        _where(frame, out["interpretable"].isna().to_numpy(), "interpretable", "is required")
        _where(frame, ~out["interpretable"].isin([0, 1]).to_numpy(), "interpretable",
               "is not 0 or 1")
        for column in ("reference", "correct", "choice"):
            _where(frame, out[column].notna().to_numpy(), column,
                   "must be empty for the rating task")
        return
    _where(frame, out["interpretable"].notna().to_numpy(), "interpretable",
           "must be empty for the 2afc task (its answer is `correct`)")
    for column in ("correct", "choice"):
        _where(frame, out[column].isna().to_numpy(), column, "is required for the 2afc task")
        _where(frame, ~out[column].isin([0, 1]).to_numpy(), column, "is not 0 or 1")
    _where(frame, is_stimulus & out["reference"].isna().to_numpy(), "reference",
           "is required on 2afc basis/random rows")
    _where(frame, out["reference"].notna().to_numpy() & ~out["reference"].isin(REFERENCES)
           .to_numpy(), "reference", f"is not one of {', '.join(REFERENCES)}")


def task_of(ratings: pd.DataFrame) -> str:
    """The task of validated ratings (`validate` made sure there is one)."""
    return str(ratings["task"].iloc[0])


def read_ratings(path: str | Path) -> pd.DataFrame:
    """Read and validate an export file; `.parquet`/`.pq` as Parquet, anything else as CSV."""
    source = Path(path)
    if not source.is_file():
        raise RatingsError(f"no such file: {source}")
    try:
        if format_for(source) == "parquet":
            frame = pd.read_parquet(source)
        else:
            frame = _restored(pd.read_csv(source, keep_default_na=False, na_values=[""],
                                          dtype=dict.fromkeys(TEXT_COLUMNS, "string")))
    except (ValueError, OSError) as exc:
        raise RatingsError(f"cannot read {source}: {exc}") from exc
    return validate(frame)


def _restored(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV's text cells without the export's spreadsheet guard (the Parquet file's text)."""
    text = [c for c in TEXT_COLUMNS if c in frame.columns]
    return frame.assign(**{c: frame[c].map(restore, na_action="ignore").astype("string")
                           for c in text})


SESSION_TIME_COLUMNS = ("session_id", "annotator_id", "total_seconds", "instructions_seconds")


def validate_sessions(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a sessions export's ids and times; return them typed (times as float seconds,
    empty where unknown, e.g. a session not finished).

    Raises:
        RatingsError: a column the time rules need is missing, or a value is not an id or a
            non-negative number of seconds; the message names the row and column.
    """
    missing = [c for c in SESSION_TIME_COLUMNS if c not in frame.columns]
    if missing:
        raise RatingsError(f"the sessions file lacks column(s): {', '.join(missing)} (expected "
                           f"the sessions export: {', '.join(SESSIONS_COLUMNS)})")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in SESSION_TIME_COLUMNS:
        raw = frame[column].reset_index(drop=True)
        if column.endswith("_id"):
            out[column] = _whole_numbers(frame, raw, column)
            _where(frame, out[column].isna().to_numpy(), column, "is required")
        else:
            out[column] = _decimals(frame, raw, column)
            _where(frame, (out[column] < 0).fillna(False).to_numpy(dtype=bool), column,
                   "is negative")
    _where(frame, out["session_id"].duplicated().to_numpy(), "session_id", "is a duplicate")
    return out


def read_sessions(path: str | Path) -> pd.DataFrame:
    """Read and validate a sessions export (`fvlab export sessions`), CSV or Parquet."""
    source = Path(path)
    if not source.is_file():
        raise RatingsError(f"no such file: {source}")
    try:
        frame = (pd.read_parquet(source) if format_for(source) == "parquet" else
                 pd.read_csv(source, keep_default_na=False, na_values=[""]))
    except (ValueError, OSError) as exc:
        raise RatingsError(f"cannot read {source}: {exc}") from exc
    return validate_sessions(frame)
