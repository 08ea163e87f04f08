"""Starting a session: who the annotator is, and which trials they get, safely under concurrency.

A start runs in two transactions. The first only reads: what no other start changes (the
study's stimuli and their conditions, the catch pool, whether the person is known) and every
item's load over the sessions started so far. The second locks the study's row (`SELECT … FOR
UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` takes the database write lock), adds the loads
of the sessions started since (`annotate.start_loads.with_newer_sessions`) and inserts the
annotator (on a first visit), the session and all its trials; a refused start writes nothing.
Starts of one study therefore reserve one after another, each seeing the reservations of the
ones before it, so no item is handed out beyond its k ratings however many annotators arrive at
once; the lock is held only for a few short statements, however large the study has grown.
Rating never takes this lock.

How long a session holds its items is the concern of `annotate.reservations`. One client
address may start only so many sessions of a study within a window (`annotate.start_limit`), so
a script cannot fill a study by consenting in a loop.

The machine annotator (`fvlab machine rate`) starts sessions here too, with the same planning
(balance, k cap, catch trials, order), but its loads are counted apart from people's so it
never fills the k a person needs, no start limit applies to it, and it may start sessions of a
draft study as well as an open one, so a researcher can pilot a study before opening it.

Resuming needs more than an id others can see: participant ids travel in URLs and screenshots.
A session is resumed by the browser that holds its cookie (the routes' business), or by the
whole credential its platform gave the person: Prolific's PROLIFIC_PID with the same SESSION_ID
(the submission), MTurk's workerId with the same assignmentId. Anything else is refused before
the existing session is looked at any further, so the refusal neither shows nor changes it.
"""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotate.reservations import (
    DEFAULT_RESERVATION,
    FIRST_ANSWER_RESERVATION,
    Loads,
    release_taken_items,
    reservation_lapsed,
)
from annotate.start_limit import StartLimit
from annotate.start_loads import study_loads, with_newer_sessions
from annotate.study_items import StudyItems, plan_trials, read_items
from service.store.db import snapshot, unit_of_work, utcnow
from service.store.models import (
    AnnotationSession,
    Annotator,
    AnnotatorSource,
    SessionStatus,
    Study,
    StudyStatus,
    Trial,
)
from service.store.tokens import new_token

DEFAULT_START_LIMIT = (10, 3600.0)  # new sessions of one study per client address, per seconds
MACHINE_STATUSES = (StudyStatus.DRAFT, StudyStatus.OPEN)  # studies the machine may start in


class StartRefused(Exception):
    """The session cannot start; `reason` is one of the REASONS, shown politely to the person."""

    REASONS = ("not_found", "closed", "full", "already_done", "taken", "busy")

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who is starting: an external id from Prolific/MTurk, or a generated anonymous one."""

    source: str
    external_id: str
    external_study_id: str | None = None
    external_session_id: str | None = None
    assignment_id: str | None = None
    turk_submit_to: str | None = None


def resumable_by(session: AnnotationSession, identity: Identity) -> bool:
    """Whether `identity` carries the whole credential `session` was started with (see the
    module's docstring); an id alone, or one with another submission, never does."""
    if identity.source == AnnotatorSource.PROLIFIC:
        held, given = session.external_session_id, identity.external_session_id
    elif identity.source == AnnotatorSource.MTURK:
        held, given = session.assignment_id, identity.assignment_id
    else:
        return False
    return held is not None and given is not None and hmac.compare_digest(held, given)


def _seen_stimuli(db: Session, annotator_id: int) -> set[int]:
    """Stimuli this person already has a trial for, in any study: nobody rates an image twice."""
    return set(
        db.scalars(
            select(Trial.stimulus_id)
            .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
            .where(AnnotationSession.annotator_id == annotator_id)
            .where(Trial.stimulus_id.is_not(None))
        )
    )


@dataclass(frozen=True)
class _Prepared:
    """What a start needs that no other start changes, read before the study lock is taken."""

    annotator_id: int | None  # None: a first visit
    items: StudyItems
    loads: Loads  # over the study's sessions so far, by the starter's population


def _is_machine(identity: Identity) -> bool:
    return identity.source == AnnotatorSource.MACHINE


def _hidden(study: Study | None, identity: Identity) -> bool:
    """Unknown, or a draft to anyone but the machine annotator."""
    return study is None or (study.status == StudyStatus.DRAFT and not _is_machine(identity))


def _prepare(engine: Engine, slug: str, identity: Identity, now: datetime,
             terms: _Terms) -> _Prepared:
    with unit_of_work(engine) as db:
        if terms.client is not None and not _is_machine(identity):
            # first: a deferred SQLite transaction that has read cannot write if another has
            terms.limit.forget_expired(db, now)
        study = db.scalars(select(Study).where(Study.slug == slug)).first()
        if study is None or _hidden(study, identity):
            raise StartRefused("not_found")
        annotator_id, items = _known_annotator(db, identity), read_items(db, study)
    with unit_of_work(snapshot(engine)) as db:  # reads alone: `study_loads` needs one snapshot
        loads = study_loads(db, study, now, _is_machine(identity))
    return _Prepared(annotator_id, items, loads)


def _known_annotator(db: Session, identity: Identity) -> int | None:
    return db.scalar(select(Annotator.id).where(
        Annotator.source == identity.source, Annotator.external_id == identity.external_id))


def _new_annotator(db: Session, identity: Identity, now: datetime) -> int:
    """Made in the same transaction as the session, so a refused start leaves no row behind;
    the unique (source, external id) settles two first visits racing (the loser retries)."""
    return int(db.scalars(
        insert(Annotator).returning(Annotator.id),
        [{"source": identity.source, "external_id": identity.external_id, "consent_at": now}],
    ).one())


@dataclass(frozen=True)
class _Terms:
    """How long a start holds its items, and which start limit applies to whom."""

    hold: timedelta  # until the first answer
    client: str | None  # the client's address; None: no start limit (the CLI, tests)
    limit: StartLimit


def _start_locked(db: Session, slug: str, identity: Identity, prepared: _Prepared,
                  now: datetime, terms: _Terms, rng: random.Random) -> str:
    """Under the study's lock: resume the person's session, or count every item's load and
    reserve a new session's trials. Kept to a few statements, since starts queue on this lock."""
    study = db.scalars(select(Study).where(Study.slug == slug).with_for_update()).first()
    if study is None or _hidden(study, identity):
        raise StartRefused("not_found")
    machine = _is_machine(identity)
    annotator_id = prepared.annotator_id
    existing = None if annotator_id is None else db.scalars(
        select(AnnotationSession).where(
            AnnotationSession.study_id == study.id,
            AnnotationSession.annotator_id == annotator_id,
        )
    ).first()
    if existing is not None:
        if not resumable_by(existing, identity):
            raise StartRefused("taken")
        if existing.status != SessionStatus.ACTIVE:
            raise StartRefused("already_done")
        if reservation_lapsed(existing.reserved_until, now):
            release_taken_items(db, study, existing, now)
        # a resumed session keeps a longer lease it still has; the next answer renews it
        existing.reserved_until = max(existing.reserved_until or now, now + terms.hold)
        return existing.token
    if study.status not in (MACHINE_STATUSES if machine else (StudyStatus.OPEN,)):
        raise StartRefused("closed")
    client = None if machine else terms.client
    if client is not None and terms.limit.reached(db, study.id, client, now):
        raise StartRefused("busy")
    seen = set() if annotator_id is None else _seen_stimuli(db, annotator_id)
    loads = with_newer_sessions(db, prepared.loads, study.id, now, machine)
    plan = plan_trials(db, study, prepared.items, seen, loads, rng)
    if not plan:
        raise StartRefused("full")
    if annotator_id is None:
        annotator_id = _new_annotator(db, identity, now)
    else:
        db.execute(update(Annotator).where(Annotator.id == annotator_id,
                                           Annotator.consent_at.is_(None)).values(consent_at=now))
    token = new_token()
    session_id = db.scalars(insert(AnnotationSession).returning(AnnotationSession.id), [{
        "study_id": study.id, "annotator_id": annotator_id, "token": token,
        "status": SessionStatus.ACTIVE, "external_study_id": identity.external_study_id,
        "external_session_id": identity.external_session_id,
        "assignment_id": identity.assignment_id, "turk_submit_to": identity.turk_submit_to,
        "started_at": now, "consent_at": now, "reserved_until": now + terms.hold,
    }]).one()
    db.execute(insert(Trial).execution_options(render_nulls=True), [  # one multi-row INSERT
        {"session_id": session_id, "position": position, "kind": planned.kind,
         "stimulus_id": planned.stimulus_id, "catch_item_id": planned.catch_item_id,
         "reference": planned.reference, "query_task": planned.query_task,
         "max_position": planned.max_position, "token": new_token()}
        for position, planned in enumerate(plan)
    ])
    if client is not None:
        terms.limit.record(db, study.id, client, now)
    return token


def start_session(engine: Engine, slug: str, identity: Identity, *,
                  reservation: timedelta = DEFAULT_RESERVATION,
                  first_answer: timedelta = FIRST_ANSWER_RESERVATION,
                  client: str | None = None,
                  start_limit: tuple[int, float] = DEFAULT_START_LIMIT,
                  now: datetime | None = None, rng: random.Random | None = None) -> str:
    """Start (or resume) the identity's session in the study and return its token.

    Args:
        reservation: the full lease, which the site gives after each answer.
        first_answer: how long a new session holds its items before its first answer (never
            longer than `reservation`).
        client: the client's address, counted against `start_limit` (count, seconds) of new
            sessions of this study; None counts nothing.

    Raises:
        StartRefused: unknown or draft study, closed, nothing left to rate, this person
            already finished a session of it, the identity lacks the credential its session was
            started with (`taken`), or the address started too many sessions lately (`busy`).
    """
    chosen_rng = rng or random.SystemRandom()
    terms = _Terms(hold=min(first_answer, reservation), client=client,
                   limit=StartLimit(*start_limit))

    def attempt() -> str:
        moment = now or utcnow()
        prepared = _prepare(engine, slug, identity, moment, terms)
        with unit_of_work(engine, lock=True) as db:
            return _start_locked(db, slug, identity, prepared, moment, terms, chosen_rng)

    try:
        return attempt()
    except IntegrityError:
        # The same person starting twice at once (two studies, or a double submit): the other
        # transaction inserted the annotator row first; now it is there to find.
        return attempt()


def start_machine_session(engine: Engine, slug: str, external_id: str,
                          rng: random.Random) -> str | None:
    """Start a session of the study for a new machine annotator `external_id` and return its
    token: the study's own trial plan, drawn with `rng`, from the machine's own loads; None
    when every item already has k machine answers.

    Raises:
        StartRefused: unknown or closed study (`not_found`, `closed`), or the id already has
            a session of it (`taken`).
    """
    identity = Identity(source=AnnotatorSource.MACHINE, external_id=external_id)
    try:
        return start_session(engine, slug, identity, rng=rng)
    except StartRefused as refused:
        if refused.reason == "full":
            return None
        raise
