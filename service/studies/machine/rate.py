"""`fvlab machine rate`: machine annotators answering a 2-AFC study's real trials.

Each machine annotator (source `machine`) gets a session with the study's own trial plan (the
balance, k cap, catch trials and order people get; started through the `start_session` callable
the caller wires to `annotate.assign.start_machine_session`, since this package may not import
the site) and answers every stimulus and catch trial as the model of the machine annotator says
(Zimmermann, Klindt, Brendel et al. 2024): from the images the trial shows, embedded with the
chosen network, P(picks the max query) = λ/2 + (1 − λ)·σ(αΔ), and the choice is drawn from P
with the seed. The choice is stored as the position picked as shown, and `correct` is decided
from the trial's max position exactly as for people; the confidence is the machine's certainty
|P − 0.5| cut into three levels (`CONFIDENCE_CUTS`); the page's response time stays empty.

Practice trials are skipped and removed from machine sessions: practice teaches people the task
with feedback and is never data, and its drawn stripes and dots say nothing about a direction.

Machine answers and reservations never fill the k a person needs (`annotate.reservations`
counts them apart), and machine sessions are capped by k among machine sessions, so a run stops
early, with the sessions it made, once every item has k machine answers.

α is the one given, else the study's fitted α and lapse (`fvlab machine calibrate`), else the
uncalibrated rule over the study's own tasks (`score.default_alpha`, lapse 0); every number
reported without a fitted α says "uncalibrated α".
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, delete, insert, select, update

from service.featurevis.embeddings import EmbeddingCache
from service.store.db import unit_of_work, utcnow
from service.store.models import (
    AnnotationSession,
    Rating,
    SessionStatus,
    StudyStatus,
    StudyStimulus,
    Trial,
    TrialKind,
)
from service.store.tokens import new_token
from service.studies.errors import StudyError
from service.studies.machine.score import default_alpha, p_correct
from service.studies.machine.shown import (
    StoredTrial,
    TaskEmbedder,
    afc_study,
    shown_tasks,
    study_tasks,
)

DEFAULT_ANNOTATORS = 5
RATE_STATUSES = (StudyStatus.DRAFT, StudyStatus.OPEN)  # a draft is piloted before people come
CONFIDENCE_CUTS = (1 / 6, 1 / 3)  # |P − 0.5| below the first: 1, below the second: 2, else 3
MACHINE_ID_PREFIX = "machine"
CALIBRATED_NOTE = "calibrated α: fitted to this study's people (fvlab machine calibrate)"
STUDY_ALPHA_RULE = "uncalibrated α: 1/median |Δ| over the study's tasks"
GIVEN_NOTE = "uncalibrated α: given with --alpha"
NO_EVIDENCE_NOTE = "uncalibrated α: the study shows no references, every answer is at chance"

# (engine, study slug, machine annotator's external id, planning rng) → the new session's
# token, or None when every item already has k machine answers
MachineStart = Callable[[Engine, str, str, random.Random], str | None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MachineAlpha:
    """The α and lapse rate the machine answers with, and where they came from."""

    alpha: float
    lapse: float
    calibrated: bool
    note: str


@dataclass(frozen=True)
class RateSummary:
    """What a run did: sessions made (of those asked for), answers stored, how often right, the
    mean P(correct) over the answers, and the α used."""

    study_id: int
    requested: int
    sessions: int
    answers: int
    correct: int
    mean_p: float
    alpha: float
    lapse: float
    calibrated: bool
    alpha_note: str
    embedding: str

    @property
    def accuracy(self) -> float:
        return self.correct / self.answers if self.answers else math.nan

    @property
    def stopped_early(self) -> bool:
        """Fewer sessions than asked: every item reached k machine answers."""
        return self.sessions < self.requested


@dataclass(frozen=True)
class _Target:
    slug: str
    stimulus_ids: list[int]
    reference_kinds: list[str]
    fitted_alpha: float | None
    fitted_lapse: float | None
    fitted_embedding: str | None
    completion_code: str


def confidence_of(p: float) -> int:
    """Confidence 1–3 from the machine's certainty |P − 0.5| (see `CONFIDENCE_CUTS`)."""
    certainty = abs(p - 0.5)
    return 1 + sum(certainty >= cut for cut in CONFIDENCE_CUTS)


def choose(p: float, max_position: int, draw: float) -> tuple[int, bool]:
    """The position picked (the max query's with probability `p`, `draw` uniform in [0, 1))
    and whether it is right, decided from the max position as for people."""
    choice = max_position if draw < p else 1 - max_position
    return choice, choice == max_position


def _check(annotators: int, alpha: float | None) -> None:
    if annotators < 1:
        raise StudyError(f"annotators: need at least 1 machine annotator, got {annotators}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise StudyError(f"alpha: must be a positive number, got {alpha}")


def _target(engine: Engine, study_id: int) -> _Target:
    with unit_of_work(engine) as db:
        study = afc_study(db, study_id, "answers")
        if study.status not in RATE_STATUSES:
            raise StudyError(f"study {study_id} is {study.status}; the machine annotator rates "
                             f"{' or '.join(RATE_STATUSES)} studies only")
        ids = list(db.scalars(select(StudyStimulus.stimulus_id)
                              .where(StudyStimulus.study_id == study_id)
                              .order_by(StudyStimulus.stimulus_id)))
        return _Target(study.slug, ids, list(study.reference_kinds or ()), study.machine_alpha,
                       study.machine_lapse, study.machine_embedding, study.completion_code)


def check_rate_request(engine: Engine, study_id: int, annotators: int,
                       alpha: float | None) -> None:
    """The checks `rate_study` makes before anything is embedded or written, for a caller
    that wants them answered before it loads an embedding network."""
    _check(annotators, alpha)
    _target(engine, study_id)


def resolve_alpha(engine: Engine, study_id: int, target: _Target, given: float | None,
                  embedder: TaskEmbedder) -> MachineAlpha:
    """`given` (lapse 0), else the study's fitted α and lapse, else the uncalibrated rule over
    every task the study can show with references.

    Raises:
        StudyError: the fitted α is on another embedding's scale than `embedder`'s.
    """
    if given is not None:
        return MachineAlpha(given, 0.0, False, GIVEN_NOTE)
    if target.fitted_alpha is not None:
        if target.fitted_embedding != embedder.embedding:
            raise StudyError(
                f"study {study_id}'s α was fitted with the {target.fitted_embedding} embedding, "
                f"not {embedder.embedding}; rate with that embedding, give --alpha, or "
                f"calibrate again with {embedder.embedding}")
        return MachineAlpha(target.fitted_alpha, target.fitted_lapse or 0.0, True,
                            CALIBRATED_NOTE)
    with unit_of_work(engine) as db:
        tasks = study_tasks(db, target.stimulus_ids, target.reference_kinds)
        delta = embedder.deltas(db, tasks)
    if not tasks:
        return MachineAlpha(0.0, 0.0, False, NO_EVIDENCE_NOTE)
    return MachineAlpha(default_alpha(delta), 0.0, False, STUDY_ALPHA_RULE)


def _open_trials(engine: Engine, token: str) -> tuple[int, list[Trial]]:
    with unit_of_work(engine) as db:
        session_id = db.scalar(select(AnnotationSession.id)
                               .where(AnnotationSession.token == token))
        if session_id is None:
            raise StudyError("a machine session vanished before it was answered")
        trials = list(db.scalars(
            select(Trial).where(Trial.session_id == session_id,
                                Trial.kind != TrialKind.PRACTICE)
            .order_by(Trial.position)))
        return session_id, trials


def _stored(trial: Trial) -> StoredTrial:
    if trial.stimulus_id is None or trial.reference is None or trial.query_task is None:
        raise StudyError(f"trial {trial.id} is not a 2-AFC trial of a direction")
    return StoredTrial(trial.kind, trial.stimulus_id, trial.reference, trial.query_task)


def _answer_session(engine: Engine, session_id: int, trials: list[Trial], probs: np.ndarray,
                    rng: np.random.Generator, completion_code: str,
                    now: datetime) -> list[bool]:
    """Store one session's answers, drop its practice trials and complete it, at once."""
    rows, results = [], []
    for trial, p in zip(trials, probs, strict=True):
        choice, correct = choose(float(p), int(trial.max_position or 0), float(rng.random()))
        results.append(correct)
        rows.append({"trial_id": trial.id, "interpretable": None, "choice": choice,
                     "correct": correct, "confidence": confidence_of(float(p)), "label": None,
                     "rt_ms": None, "server_rt_ms": None, "created_at": now})
    with unit_of_work(engine, lock=True) as db:
        if rows:
            db.execute(insert(Rating).execution_options(render_nulls=True), rows)
        db.execute(update(Trial).where(Trial.id.in_([t.id for t in trials]))
                   .values(answered_at=now))
        db.execute(delete(Trial).where(Trial.session_id == session_id,
                                       Trial.kind == TrialKind.PRACTICE))
        db.execute(update(AnnotationSession).where(AnnotationSession.id == session_id).values(
            status=SessionStatus.COMPLETED, finished_at=now, reserved_until=None,
            completion_code=completion_code))
    return results


def rate_study(engine: Engine, study_id: int, *, annotators: int, cache: EmbeddingCache,
               start_session: MachineStart, alpha: float | None = None, seed: int = 0,
               progress: Progress | None = None) -> RateSummary:
    """Make `annotators` machine annotators answer the study's trials (see the module).

    Args:
        cache: the embedding (and its on-disk cache) the machine sees the images with.
        start_session: starts a machine session, `annotate.assign.start_machine_session`.
        alpha: P's slope; None uses the study's fitted α, or the uncalibrated rule.
        seed: the same seed on the same study state gives the same trials and answers.
        progress: called with (trials answered, trials to answer) as sessions are answered.

    Raises:
        StudyError: unknown study, not 2-AFC, closed, fewer than 1 annotator, a bad α, or
            every item already has k machine answers; nothing is written then.
    """
    _check(annotators, alpha)
    target = _target(engine, study_id)
    embedder = TaskEmbedder(cache)
    used = resolve_alpha(engine, study_id, target, alpha, embedder)
    tokens = []
    for index in range(annotators):
        external_id = f"{MACHINE_ID_PREFIX}-{study_id}-{new_token()[:16]}"
        token = start_session(engine, target.slug, external_id, random.Random(f"{seed}:{index}"))
        if token is None:
            break
        tokens.append(token)
    if not tokens:
        raise StudyError(f"study {study_id}: every item already has its "
                         "k machine answers; nothing to rate")
    sessions = [_open_trials(engine, token) for token in tokens]
    total = sum(len(trials) for _, trials in sessions)
    done, right, p_sum = 0, 0, 0.0
    if progress is not None:
        progress(0, total)
    for index, (session_id, trials) in enumerate(sessions):
        stored = [_stored(t) for t in trials]
        with unit_of_work(engine) as db:
            probs = p_correct(embedder.deltas(db, shown_tasks(db, stored)), used.alpha,
                              used.lapse)
        results = _answer_session(engine, session_id, trials, probs,
                                  np.random.default_rng([seed, index]), target.completion_code,
                                  utcnow())
        done += len(trials)
        right += sum(results)
        p_sum += float(probs.sum())
        if progress is not None:
            progress(done, total)
    return RateSummary(study_id, annotators, len(tokens), done, right,
                       p_sum / done if done else math.nan, used.alpha, used.lapse,
                       used.calibrated, used.note, embedder.embedding)
