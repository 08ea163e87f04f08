"""What a researcher watches while a study runs: ratings against the target, and who is careless.

Progress counts only stimulus and catch trials; practice trials are training and never data.
People's answers fill the target; the machine annotator's (`fvlab machine rate`) are counted
apart, beside them, and never towards k; its sessions are listed with source `machine`.
A 2-AFC study's items are its directions crossed with its reference kinds, so its progress has
one row per condition and reference kind, and its "yes" answers are its correct ones.
Everything here names conditions, layers and channels, so it is for the researcher console and
the CLI only, never for an annotator route.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.orm import Session

from service.store.db import seconds_between, unit_of_work
from service.store.models import (
    AnnotationSession,
    Annotator,
    AnnotatorSource,
    CatchItem,
    Direction,
    Image,
    Job,
    Rating,
    SessionStatus,
    Stimulus,
    Study,
    StudyStimulus,
    StudyTask,
    Trial,
    TrialKind,
)
from service.studies.export import catch_answered
from service.studies.population import of_population
from service.studies.ratings_file import STIMULUS_CONDITIONS
from service.studies.study import StudyError


@dataclass
class ConditionProgress:
    """Ratings of one condition (and, in a 2-AFC study, one reference kind): `collected` of
    `needed` (items × k); `complete` items reached k."""

    condition: str
    items: int
    collected: int
    needed: int
    complete: int
    reference: str | None = None
    machine: int = 0  # the machine annotator's answers, apart from `collected` (people's)

    @property
    def percent(self) -> float:
        return 100.0 * self.collected / self.needed if self.needed else 0.0


@dataclass
class AnnotatorProgress:
    """One session: who, how long, how many ratings, and how many catch trials went wrong."""

    session_id: int
    annotator_id: int
    source: str
    external_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    instructions_seconds: float | None
    total_seconds: float | None
    ratings: int
    catch_answered: int
    catch_failed: int

    @property
    def machine(self) -> bool:
        return self.source == AnnotatorSource.MACHINE

    @property
    def catch_failure_rate(self) -> float | None:
        return self.catch_failed / self.catch_answered if self.catch_answered else None


@dataclass
class StudyProgress:
    """The live figures of one study."""

    study_id: int
    conditions: list[ConditionProgress]
    annotators: list[AnnotatorProgress]

    @property
    def completed_sessions(self) -> int:
        """People's completed sessions (the machine's are `machine_sessions`)."""
        return sum(1 for a in self.annotators
                   if a.status == SessionStatus.COMPLETED and not a.machine)

    @property
    def machine_sessions(self) -> int:
        return sum(1 for a in self.annotators if a.machine)

    @property
    def median_completion_seconds(self) -> float | None:
        """Of people's completed sessions (a machine session takes no time worth knowing)."""
        times = [a.total_seconds for a in self.annotators
                 if a.status == SessionStatus.COMPLETED and a.total_seconds is not None
                 and not a.machine]
        return statistics.median(times) if times else None


@dataclass
class StudySummary:
    """One study as the CLI and the console list it."""

    id: int
    name: str
    slug: str
    status: str
    stimuli: int
    ratings_per_item: int
    ratings: int
    created_at: datetime
    task: str = StudyTask.RATING
    reference_kinds: tuple[str, ...] = ()
    machine_ratings: int = 0  # the machine annotator's answers, apart from `ratings` (people's)

    @property
    def needed(self) -> int:
        """Answers the study needs: k per item (an image; a direction × reference kind)."""
        return self.stimuli * max(1, len(self.reference_kinds)) * self.ratings_per_item


@dataclass
class SheetItem:
    """One stimulus on the contact sheet, with everything annotators must never see."""

    stimulus_id: int
    condition: str
    job_id: int
    model: str
    layer: str
    channel: int | None
    ratings: int
    yes: int  # yes answers; correct answers in a 2-AFC study


def ratings_per_study(db: Session, machine: bool = False) -> dict[int, int]:
    """{study id: stimulus ratings collected} from people (or, with `machine`, from the
    machine annotator); catch and practice trials left out."""
    rows = db.execute(
        select(AnnotationSession.study_id, func.count(Rating.id))
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .join(Trial, Trial.session_id == AnnotationSession.id)
        .join(Rating, Rating.trial_id == Trial.id)
        .where(Trial.kind == TrialKind.STIMULUS, of_population(machine))
        .group_by(AnnotationSession.study_id)
    ).all()
    return {int(study_id): int(count) for study_id, count in rows}


def list_studies(engine: Engine) -> list[StudySummary]:
    """Every study, newest first, with its stimulus count and answers collected so far."""
    with unit_of_work(engine) as db:
        counts = dict(
            db.execute(
                select(StudyStimulus.study_id, func.count()).group_by(StudyStimulus.study_id)
            ).all()
        )
        ratings = ratings_per_study(db)
        machine = ratings_per_study(db, machine=True)
        return [
            StudySummary(
                id=study.id, name=study.name, slug=study.slug, status=study.status,
                stimuli=int(counts.get(study.id, 0)), ratings_per_item=study.ratings_per_item,
                ratings=ratings.get(study.id, 0), created_at=study.created_at, task=study.task,
                reference_kinds=tuple(study.reference_kinds or ()),
                machine_ratings=machine.get(study.id, 0),
            )
            for study in db.scalars(select(Study).order_by(Study.id.desc()))
        ]


def _per_item(db: Session, study_id: int,
              machine: bool = False) -> dict[tuple[int, str | None], tuple[int, int]]:
    """{(stimulus id, reference kind or None): (answers, yes or correct answers)} of the
    study's stimulus trials, people's (or, with `machine`, the machine annotator's)."""
    positive = or_(Rating.interpretable.is_(True), Rating.correct.is_(True))
    rows = db.execute(
        select(Trial.stimulus_id, Trial.reference, func.count(Rating.id),
               func.sum(case((positive, 1), else_=0)))
        .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .join(Rating, Rating.trial_id == Trial.id)
        .where(AnnotationSession.study_id == study_id, Trial.kind == TrialKind.STIMULUS)
        .where(of_population(machine))
        .group_by(Trial.stimulus_id, Trial.reference)
    ).all()
    return {(int(sid), reference): (int(n), int(yes or 0)) for sid, reference, n, yes in rows}


def _per_stimulus(db: Session, study_id: int) -> dict[int, tuple[int, int]]:
    """{stimulus id: (answers, yes or correct answers)} of people, all reference kinds
    together."""
    totals: dict[int, tuple[int, int]] = {}
    for (sid, _), (n, yes) in _per_item(db, study_id).items():
        had = totals.get(sid, (0, 0))
        totals[sid] = (had[0] + n, had[1] + yes)
    return totals


def _conditions(db: Session, study: Study) -> list[ConditionProgress]:
    counts = _per_item(db, study.id)
    machine = _per_item(db, study.id, machine=True)
    kinds = db.execute(
        select(StudyStimulus.stimulus_id, Direction.kind)
        .join(Stimulus, StudyStimulus.stimulus_id == Stimulus.id)
        .join(Direction, Stimulus.direction_id == Direction.id)
        .where(StudyStimulus.study_id == study.id)
    ).all()
    k = study.ratings_per_item
    references: list[str | None] = [*study.reference_kinds] if study.reference_kinds else [None]
    result = []
    for condition in STIMULUS_CONDITIONS:
        ids = [sid for sid, kind in kinds if kind == condition]
        for reference in references:
            got = [counts.get((sid, reference), (0, 0))[0] for sid in ids]
            by_machine = sum(machine.get((sid, reference), (0, 0))[0] for sid in ids)
            result.append(ConditionProgress(condition, len(ids), sum(got), len(ids) * k,
                                            sum(1 for n in got if n >= k), reference,
                                            by_machine))
    return result


def _annotators(db: Session, study_id: int) -> list[AnnotatorProgress]:
    failed = case((catch_answered(as_expected=False), 1), else_=0)
    counts = (
        select(Trial.session_id.label("session_id"),
               func.count(Rating.id).label("ratings"),
               func.count(CatchItem.id).label("catch_answered"),
               func.sum(case((CatchItem.id.is_not(None), failed), else_=0)).label("catch_failed"))
        .join(Rating, Rating.trial_id == Trial.id)
        .outerjoin(CatchItem,
                   and_(Trial.kind == TrialKind.CATCH, Trial.catch_item_id == CatchItem.id))
        .where(Trial.kind != TrialKind.PRACTICE)
        .group_by(Trial.session_id)
        .subquery()
    )
    rows = db.execute(
        select(AnnotationSession, Annotator, counts.c.ratings, counts.c.catch_answered,
               counts.c.catch_failed)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .outerjoin(counts, counts.c.session_id == AnnotationSession.id)
        .where(AnnotationSession.study_id == study_id)
        .order_by(AnnotationSession.id)
    ).all()
    return [
        AnnotatorProgress(
            session_id=session.id, annotator_id=annotator.id, source=annotator.source,
            external_id=annotator.external_id, status=session.status,
            started_at=session.started_at, finished_at=session.finished_at,
            instructions_seconds=seconds_between(session.instructions_shown_at,
                                          session.instructions_done_at),
            total_seconds=seconds_between(session.started_at, session.finished_at),
            ratings=int(ratings or 0), catch_answered=int(answered or 0),
            catch_failed=int(bad or 0),
        )
        for session, annotator, ratings, answered, bad in rows
    ]


def study_progress(engine: Engine, study_id: int) -> StudyProgress:
    """Ratings collected vs needed per condition, and every session's times and catch failures."""
    with unit_of_work(engine) as db:
        study = db.get(Study, study_id)
        if study is None:
            raise StudyError(f"study {study_id} does not exist")
        return StudyProgress(study.id, _conditions(db, study), _annotators(db, study.id))


def contact_sheet(engine: Engine, study_id: int) -> list[SheetItem]:
    """The study's stimuli with their condition, layer and channel, grouped by condition."""
    with unit_of_work(engine) as db:
        if db.get(Study, study_id) is None:
            raise StudyError(f"study {study_id} does not exist")
        counts = _per_stimulus(db, study_id)
        rows = db.execute(
            select(Stimulus.id, Direction.kind, Job.id, Job.model, Direction.layer,
                   Direction.channel)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .join(Direction, Stimulus.direction_id == Direction.id)
            .join(Job, Direction.job_id == Job.id)
            .where(StudyStimulus.study_id == study_id)
            .order_by(Direction.kind, Job.id, Direction.layer, Direction.index, Stimulus.id)
        ).all()
        return [
            SheetItem(sid, kind, job_id, model, layer, channel, *counts.get(sid, (0, 0)))
            for sid, kind, job_id, model, layer, channel in rows
        ]


def stimulus_png(engine: Engine, study_id: int, stimulus_id: int) -> bytes | None:
    """The PNG of a stimulus of the study, or None when the stimulus is not in it."""
    with unit_of_work(engine) as db:
        return db.scalar(
            select(Image.png)
            .join(Stimulus, Stimulus.image_sha256 == Image.sha256)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id, Stimulus.id == stimulus_id)
        )
