"""The ratings file: the columns and conditions `fvlab export` writes and `fvlab analyze` reads.

This module is the whole contract between the site and `analysis/`, so it imports neither the
ORM nor torch: reading a ratings file must not need either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
CONDITIONS: tuple[str, ...] = ("basis", "random", "catch_positive", "catch_negative")
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
