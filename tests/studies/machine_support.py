"""Machine annotator runs on 2-AFC studies made without the worker (`tests.annotate.afc_support`),
embedded with a tiny embedder so that no network loads."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine, delete, func, select

from annotate.assign import start_machine_session
from service.featurevis.embeddings import EmbeddingCache
from service.store.db import unit_of_work
from service.store.models import AnnotationSession, Annotator, Rating, Trial
from service.studies.machine.rate import RateSummary, rate_study
from tests.studies.test_machine_trials import MeanColour


def tiny_cache() -> EmbeddingCache:
    return EmbeddingCache(MeanColour())


def rate(engine: Engine, study_id: int, **options: Any) -> RateSummary:
    options.setdefault("annotators", 2)
    options.setdefault("cache", tiny_cache())
    return rate_study(engine, study_id, start_session=start_machine_session, **options)


def machine_answers(engine: Engine, study_id: int) -> list[tuple[Any, ...]]:
    """Every machine answer, in session then position order, without ids or tokens."""
    with unit_of_work(engine) as db:
        return [tuple(row) for row in db.execute(
            select(Trial.position, Trial.kind, Trial.stimulus_id, Trial.reference,
                   Trial.query_task, Trial.max_position, Rating.choice, Rating.correct,
                   Rating.confidence, Rating.rt_ms)
            .join(Rating, Rating.trial_id == Trial.id)
            .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
            .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
            .where(AnnotationSession.study_id == study_id, Annotator.source == "machine")
            .order_by(AnnotationSession.id, Trial.position))]


def forget_machine(engine: Engine) -> None:
    """Delete every machine annotator with its sessions, trials and answers."""
    with unit_of_work(engine) as db:
        sessions = select(AnnotationSession.id).join(
            Annotator, AnnotationSession.annotator_id == Annotator.id).where(
            Annotator.source == "machine")
        trials = select(Trial.id).where(Trial.session_id.in_(sessions))
        db.execute(delete(Rating).where(Rating.trial_id.in_(trials)))
        db.execute(delete(Trial).where(Trial.session_id.in_(sessions)))
        db.execute(delete(AnnotationSession).where(AnnotationSession.id.in_(sessions)))
        db.execute(delete(Annotator).where(Annotator.source == "machine"))


def row_counts(engine: Engine) -> tuple[int, ...]:
    with unit_of_work(engine) as db:
        return tuple(int(db.scalar(select(func.count()).select_from(table)) or 0)
                     for table in (Annotator, AnnotationSession, Trial, Rating))


def stimulus_loads(engine: Engine, study_id: int, source_is_machine: bool) -> Counter:
    """{(stimulus id, reference): stimulus trials} of one population, answered or not."""
    source = Annotator.source == "machine" if source_is_machine else Annotator.source != "machine"
    with unit_of_work(engine) as db:
        return Counter(db.execute(
            select(Trial.stimulus_id, Trial.reference)
            .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
            .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
            .where(AnnotationSession.study_id == study_id, Trial.kind == "stimulus", source)
        ).all())
