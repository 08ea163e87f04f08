"""Data exports: ratings (the analysis input) and sessions (who took part, how carefully).

The ratings export is the contract between the site and `analysis/`: its columns are fixed in
`service.studies.ratings_file` (and docs/reference.md) and `fvlab analyze --ratings` accepts
exactly this file. Practice trials never leave
the database, because they are training, not data. Annotators appear by their internal id only;
external ids (Prolific PIDs, MTurk worker ids) identify people, so the sessions export adds them
only when the caller asks explicitly.

The researcher console calls `ratings_frame`, `sessions_frame` and `write_frame` for its download
buttons; the CLI (`service/cli/export.py`) calls the same functions. CSV files have their text
cells neutralised against spreadsheet formulas (`ratings_file.neutralise`); Parquet files keep
the raw text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, null, or_, select
from sqlalchemy.orm import Session

from service.store.db import seconds_between
from service.store.models import (
    AnnotationSession,
    Annotator,
    CatchItem,
    CatchKind,
    Direction,
    Image,
    Job,
    Rating,
    Stimulus,
    Study,
    Trial,
    TrialKind,
)
from service.studies.afc_items import pair_gaps
from service.studies.ratings_file import (
    EXTERNAL_ID_COLUMNS,
    FLOAT_COLUMNS,
    FORMATS,
    INT_COLUMNS,
    RATINGS_COLUMNS,
    SESSIONS_COLUMNS,
    ExportFormat,
    catch_condition,
    expected_answer,
    neutralise,
)

if TYPE_CHECKING:
    import pandas as pd


class ExportError(ValueError):
    """The export cannot be made as asked (e.g. no such study); nothing was written."""


def _require_study(engine: Engine, study_id: int | None) -> None:
    if study_id is None:
        return
    with engine.connect() as conn:
        if conn.execute(select(Study.id).where(Study.id == study_id)).first() is None:
            raise ExportError(f"no study with id {study_id}")


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (stored timestamps read back as aware UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def catch_answered(*, as_expected: bool) -> ColumnElement[bool]:
    """SQL: a catch trial's answer is (or, with False, is not) the one an attentive annotator
    gives: for a rating, the answer `expected_answer` gives for its item's kind; for a 2-AFC
    choice, the right one (`correct`). Rows need CatchItem and Rating joined."""
    return or_(
        *(and_(CatchItem.kind == kind,
               Rating.interpretable.is_(expected_answer(kind) == as_expected))
          for kind in CatchKind),
        Rating.correct.is_(as_expected),
    )


def ratings_frame(engine: Engine, study_id: int | None = None) -> pd.DataFrame:
    """One row per rating of a stimulus or catch trial (never practice), ordered by rating id.

    Args:
        engine: the fvlab database.
        study_id: only this study's ratings; None exports every study.

    Returns:
        A DataFrame with exactly `RATINGS_COLUMNS`; id columns are nullable integers so that
        catch rows keep their stimulus columns empty and random rows their channel.
    """
    import pandas as pd

    _require_study(engine, study_id)
    condition = case(
        *((CatchItem.kind == kind, catch_condition(kind).value) for kind in CatchKind),
        else_=Direction.kind,
    )
    query = (
        select(
            Rating.id, AnnotationSession.study_id, Trial.session_id,
            AnnotationSession.annotator_id, Trial.position, Stimulus.id,  # stimulus rows only
            Trial.catch_item_id, Stimulus.direction_id, Direction.job_id, Job.model,
            Direction.layer, condition, Direction.channel, Rating.interpretable,
            Rating.confidence, Rating.label, Rating.rt_ms, Rating.created_at,
            # appended columns: task, reference, correct, choice, annotator_source, question,
            # query_gap (filled below), server_rt_ms
            Study.task, Trial.reference, Rating.correct, Rating.choice, Annotator.source,
            Study.question, null(), Rating.server_rt_ms,
            # what the query gap needs, after the file's columns
            Trial.query_task,
        )
        .join(Trial, Rating.trial_id == Trial.id)
        .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .join(Study, AnnotationSession.study_id == Study.id)
        .outerjoin(Stimulus,
                   and_(Trial.kind == TrialKind.STIMULUS, Trial.stimulus_id == Stimulus.id))
        .outerjoin(Direction, Stimulus.direction_id == Direction.id)
        .outerjoin(Job, Direction.job_id == Job.id)
        .outerjoin(CatchItem,
                   and_(Trial.kind == TrialKind.CATCH, Trial.catch_item_id == CatchItem.id))
        .where(Trial.kind != TrialKind.PRACTICE)
        .order_by(Rating.id)
    )
    if study_id is not None:
        query = query.where(AnnotationSession.study_id == study_id)
    with Session(engine) as db:
        rows = _with_query_gaps(db, db.execute(query).all())
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(RATINGS_COLUMNS)
    data: dict[str, object] = {}
    for name, values in zip(RATINGS_COLUMNS, columns, strict=True):
        if name in INT_COLUMNS:
            cells = [None if v is None else int(v) for v in values]
            data[name] = pd.array(cells, dtype="Int64")
        elif name in FLOAT_COLUMNS:
            data[name] = pd.array([None if v is None else float(v) for v in values],
                                  dtype="Float64")
        elif name == "created_at":
            data[name] = pd.array([iso_utc(v) for v in values], dtype="string")
        else:
            data[name] = pd.array(list(values), dtype="string")
    frame = pd.DataFrame(data, columns=list(RATINGS_COLUMNS))
    return frame


_GAP = RATINGS_COLUMNS.index("query_gap")
_DIRECTION = RATINGS_COLUMNS.index("direction_id")


def _with_query_gaps(db: Session, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows cut to the file's columns, with the query gap of each 2-AFC stimulus row (its
    direction's pair `query_task`); rating and catch rows keep it empty."""
    directions = {row[_DIRECTION] for row in rows
                  if row[-1] is not None and row[_DIRECTION] is not None}
    gaps = pair_gaps(db, directions) if directions else {}
    result = []
    for row in rows:
        cells = list(row[:len(RATINGS_COLUMNS)])
        task, direction = row[-1], row[_DIRECTION]
        if task is not None and direction is not None and task < len(gaps[direction]):
            cells[_GAP] = gaps[direction][task]
        result.append(tuple(cells))
    return result


def sessions_frame(
    engine: Engine, study_id: int | None = None, *, include_external_ids: bool = False
) -> pd.DataFrame:
    """One row per session: who, when, how long, and how well they did on catch trials.

    `catch_score` is the share of answered catch trials answered as expected (yes on a
    positive item, no on a negative one); it is empty when the session answered none.

    Args:
        engine: the fvlab database.
        study_id: only this study's sessions; None exports every study.
        include_external_ids: add the annotator's source and external id (personal data).
    """
    import pandas as pd

    _require_study(engine, study_id)
    correct = case(
        (catch_answered(as_expected=True), 1),
        else_=0,
    )
    counts = (
        select(
            Trial.session_id.label("session_id"),
            func.count(Rating.id).label("n_ratings"),
            func.count(CatchItem.id).label("n_catch"),
            func.sum(case((CatchItem.id.is_not(None), correct), else_=0)).label("n_correct"),
        )
        .join(Rating, Rating.trial_id == Trial.id)
        .outerjoin(CatchItem,
                   and_(Trial.kind == TrialKind.CATCH, Trial.catch_item_id == CatchItem.id))
        .where(Trial.kind != TrialKind.PRACTICE)
        .group_by(Trial.session_id)
        .subquery()
    )
    query = (
        select(AnnotationSession, Annotator, counts.c.n_ratings, counts.c.n_catch,
               counts.c.n_correct)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .outerjoin(counts, counts.c.session_id == AnnotationSession.id)
        .order_by(AnnotationSession.id)
    )
    if study_id is not None:
        query = query.where(AnnotationSession.study_id == study_id)
    records = []
    with Session(engine) as orm:
        for session, annotator, n_ratings, n_catch, n_correct in orm.execute(query):
            record = {
                "session_id": session.id,
                "study_id": session.study_id,
                "annotator_id": session.annotator_id,
                "started_at": iso_utc(session.started_at),
                "finished_at": iso_utc(session.finished_at),
                "instructions_seconds": seconds_between(
                    session.instructions_shown_at, session.instructions_done_at
                ),
                "total_seconds": seconds_between(session.started_at, session.finished_at),
                "n_ratings": int(n_ratings or 0),
                "n_catch": int(n_catch or 0),
                "catch_score": (int(n_correct) / int(n_catch)) if n_catch else None,
                "status": session.status,
            }
            if include_external_ids:
                record["annotator_source"] = annotator.source
                record["annotator_external_id"] = annotator.external_id
            records.append(record)
    columns = list(SESSIONS_COLUMNS) + (list(EXTERNAL_ID_COLUMNS) if include_external_ids else [])
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("instructions_seconds", "total_seconds", "catch_score"):
        frame[column] = frame[column].astype("float64")
    for column in ("session_id", "study_id", "annotator_id", "n_ratings", "n_catch"):
        frame[column] = frame[column].astype("int64")
    return frame


def write_frame(frame: pd.DataFrame, path: str | Path, fmt: ExportFormat = "csv") -> Path:
    """Write an export as CSV (empty cells for missing values) or Parquet; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        # CRLF line ends (RFC 4180) make the writer quote every cell that holds a CR or LF, so
        # no cell can break into a new row whose first cell a spreadsheet would evaluate
        _neutralised(frame).to_csv(target, index=False, na_rep="", lineterminator="\r\n")
    else:
        frame.to_parquet(target, index=False)
    return target


def _neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas; numbers stay numbers."""
    import pandas as pd

    text = [name for name in frame.columns
            if pd.api.types.is_string_dtype(frame[name]) or frame[name].dtype == object]
    return frame.assign(**{name: frame[name].map(
        lambda cell: neutralise(cell) if isinstance(cell, str) else cell) for name in text})


def stimulus_pngs(engine: Engine, stimulus_ids: list[int]) -> dict[int, bytes]:
    """PNG bytes of the given stimuli, for the analysis report's contact sheet."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Stimulus.id, Image.png)
            .join(Image, Stimulus.image_sha256 == Image.sha256)
            .where(Stimulus.id.in_(stimulus_ids))
        ).all()
    return {int(sid): bytes(png) for sid, png in rows}
