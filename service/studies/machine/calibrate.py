"""`fvlab machine calibrate`: the machine annotator's α and lapse fitted to a study's people.

Every answer people (any source but `machine`) gave to a stimulus trial that shows references
is one observation: the Δ of the images that trial showed (`shown`), and whether the person was
right. α and the lapse rate λ of P = λ/2 + (1 − λ)·σ(αΔ) are fitted by maximum likelihood
(`score.fit_alpha`) and stored on the study with the embedding's name (α is on its similarity
scale), so later `fvlab machine rate` runs with that embedding answer with them. Answers to
`none` trials carry no Δ and are left out; so are catch trials (they test attention, not the
direction). No exclusions are applied: every stored answer counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select, update

from service.featurevis.embeddings import EmbeddingCache
from service.store.db import unit_of_work
from service.store.models import (
    AnnotationSession,
    Annotator,
    Rating,
    Study,
    Trial,
    TrialKind,
)
from service.studies.afc_items import SHOWN_REFERENCES
from service.studies.errors import StudyError
from service.studies.machine.score import AlphaFit, ScoreError, fit_alpha, p_correct
from service.studies.machine.shown import StoredTrial, TaskEmbedder, afc_study, shown_tasks
from service.studies.population import of_population

MIN_HUMAN_ANSWERS = 30  # fewer answers than this do not pin α and λ down


@dataclass(frozen=True)
class HumanAnswers:
    """People's answers to a study's trials with references, one entry each."""

    stimulus_id: np.ndarray  # the direction, named by its first max render
    reference: np.ndarray
    delta: np.ndarray
    correct: np.ndarray


@dataclass(frozen=True)
class Calibration:
    """The fit, the answers it was fitted to, and each answer's P under the fit."""

    study_id: int
    fit: AlphaFit
    answers: HumanAnswers
    p: np.ndarray
    embedding: str


def check_calibration_request(engine: Engine, study_id: int) -> None:
    """The study checks `calibrate_study` makes first (it exists, it is 2-AFC), for a caller
    that wants them answered before it loads an embedding network."""
    with unit_of_work(engine) as db:
        afc_study(db, study_id, "is calibrated on")


def human_answers(engine: Engine, study_id: int, embedder: TaskEmbedder) -> HumanAnswers:
    """People's answers to the study's stimulus trials with references, with each trial's Δ."""
    with unit_of_work(engine) as db:
        rows = db.execute(
            select(Trial.kind, Trial.stimulus_id, Trial.reference, Trial.query_task,
                   Rating.correct)
            .join(Rating, Rating.trial_id == Trial.id)
            .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
            .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
            .where(AnnotationSession.study_id == study_id, of_population(False),
                   Trial.kind == TrialKind.STIMULUS,
                   Trial.reference.in_([str(kind) for kind in SHOWN_REFERENCES]),
                   Rating.correct.is_not(None))
            .order_by(Rating.id)
        ).all()
        kept = [(StoredTrial(kind, sid, reference, task), bool(correct))
                for kind, sid, reference, task, correct in rows
                if sid is not None and reference is not None and task is not None]
        trials = [trial for trial, _ in kept]
        delta = embedder.deltas(db, shown_tasks(db, trials)) if trials else np.zeros(0)
    return HumanAnswers(
        stimulus_id=np.array([t.stimulus_id for t in trials], dtype=np.int64),
        reference=np.array([t.reference for t in trials], dtype=object),
        delta=delta,
        correct=np.array([right for _, right in kept], dtype=np.float64),
    )


def calibrate_study(engine: Engine, study_id: int, cache: EmbeddingCache, *,
                    min_answers: int = MIN_HUMAN_ANSWERS) -> Calibration:
    """Fit α and λ to the study's people and store them on the study.

    Raises:
        StudyError: unknown study, a rating study, fewer than `min_answers` answers, or
            answers that cannot pin α down (all right, all wrong, no evidence); nothing is
            stored then.
    """
    check_calibration_request(engine, study_id)
    embedder = TaskEmbedder(cache)
    answers = human_answers(engine, study_id, embedder)
    n = len(answers.correct)
    if n < min_answers:
        raise StudyError(f"study {study_id} has {n} answers from people to trials with "
                         f"references; calibration needs at least {min_answers}")
    if answers.correct.min() == answers.correct.max():
        every = "right" if answers.correct[0] else "wrong"
        raise StudyError(f"study {study_id}: people answered every trial {every}, which "
                         "cannot fit α; collect more answers first")
    try:
        fit = fit_alpha(answers.delta, answers.correct)
    except ScoreError as exc:
        raise StudyError(f"study {study_id}: {exc}") from exc
    with unit_of_work(engine) as db:
        db.execute(update(Study).where(Study.id == study_id)
                   .values(machine_alpha=fit.alpha, machine_lapse=fit.lapse,
                           machine_embedding=embedder.embedding))
    return Calibration(study_id, fit, answers, p_correct(answers.delta, fit.alpha, fit.lapse),
                       embedder.embedding)
