"""The annotator's pages under `/study/<slug>`: entry, consent, instructions, trials, the end.

Entry reads Prolific (`PROLIFIC_PID`, `STUDY_ID`, `SESSION_ID`) or MTurk (`workerId`,
`assignmentId`, `turkSubmitTo`) parameters, or makes an anonymous id. The session and its trial
list are created only when the person consents; MTurk's preview and mere visits create nothing.
The end page, with the completion code and the hand-off to Prolific or MTurk, is only shown once
the server has stored the last rating, so nobody is paid for ratings that were lost.

Coming back resumes the session from the browser that holds it, or with the whole credential
of its platform (`annotate.assign.resumable_by`); a visible id alone gets a polite refusal that
says nothing about the session and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from sqlalchemy import case, exists, select, update
from sqlalchemy.orm import InstrumentedAttribute
from werkzeug.wrappers import Response as WerkzeugResponse

from annotate.afc_examples import WORKED_ANSWER, worked_example
from annotate.assign import (
    DEFAULT_START_LIMIT,
    Identity,
    StartRefused,
    resumable_by,
    start_session,
)
from annotate.current import current_session, remember
from annotate.database import end_reads, get_db, get_engine
from annotate.reservations import DEFAULT_RESERVATION, FIRST_ANSWER_RESERVATION
from annotate.study_items import has_room
from service.store.db import unit_of_work, utcnow
from service.store.models import (
    AnnotationSession,
    Annotator,
    AnnotatorSource,
    ReferenceKind,
    SessionStatus,
    Study,
    StudyStatus,
    StudyTask,
    Trial,
    TrialKind,
)
from service.store.tokens import new_token
from service.studies.catch import instruction_examples
from service.studies.study import effective_redirect

bp = Blueprint("study", __name__, url_prefix="/study")

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
ENTRY_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId",
                "hitId", "turkSubmitTo")
MESSAGES = {
    "not_found": (404, "Study not found", "There is no open study at this address."),
    "closed": (410, "This study is closed", "It no longer accepts participants. Thank you!"),
    "full": (410, "This study is full",
             "Every image already has enough ratings. Thank you for your interest!"),
    "already_done": (409, "You have already taken part",
                     "Each person can take part in this study once. Thank you!"),
    "taken": (409, "This study has already been started with this id",
              "If you began it in another browser, please continue there, or open the study "
              "again from the link on Prolific or MTurk. Thank you!"),
    "busy": (429, "Too many people have started this study from your network",
             "Please try again later. Thank you for your interest!"),
}


class BadLink(ValueError):
    """The study link's parameters are malformed; the message says which."""


@dataclass(frozen=True)
class Entry:
    identity: Identity | None  # None: anonymous, made at consent
    preview: bool = False


def parse_entry(params: Mapping[str, str]) -> Entry:
    """Who is arriving, from the link's query (or the consent form's hidden copy of it)."""
    for name in ENTRY_PARAMS:
        value = params.get(name)
        if value and not EXTERNAL_ID.match(value) and name != "turkSubmitTo":
            raise BadLink(f"the study link's {name} is not a valid id")
    if params.get("PROLIFIC_PID"):
        return Entry(Identity(AnnotatorSource.PROLIFIC, params["PROLIFIC_PID"],
                              external_study_id=params.get("STUDY_ID") or None,
                              external_session_id=params.get("SESSION_ID") or None))
    assignment = params.get("assignmentId")
    if assignment == MTURK_PREVIEW:
        return Entry(None, preview=True)
    if assignment or params.get("workerId"):
        worker = params.get("workerId")
        if not worker or not assignment:
            raise BadLink("an MTurk link needs both workerId and assignmentId")
        submit_to = (params.get("turkSubmitTo") or MTURK_HOSTS[0]).rstrip("/")
        if submit_to not in MTURK_HOSTS:
            raise BadLink("turkSubmitTo must be MTurk's own site")
        return Entry(Identity(AnnotatorSource.MTURK, worker,
                              external_study_id=params.get("hitId") or None,
                              assignment_id=assignment, turk_submit_to=submit_to))
    return Entry(None)


def message(reason: str) -> tuple[str, int]:
    status, title, text = MESSAGES[reason]
    return render_template("study/message.html", title=title, text=text), status


def _study(slug: str) -> Study | None:
    study = get_db().scalars(select(Study).where(Study.slug == slug)).first()
    return None if study is None or study.status == StudyStatus.DRAFT else study


def _step_url(session: AnnotationSession) -> str:
    slug = session.study.slug
    if session.status != SessionStatus.ACTIVE:
        return url_for("study.done", slug=slug)
    if session.instructions_done_at is None:
        return url_for("study.instructions", slug=slug)
    return url_for("study.trials", slug=slug)


def _own_session(slug: str) -> AnnotationSession | None:
    session = current_session(get_db())
    return session if session is not None and session.study.slug == slug else None


def _is_own(session: AnnotationSession | None,
            identity: Identity | None) -> TypeGuard[AnnotationSession]:
    """The browser's own session serves an entry without an id, or with the session's own id."""
    return session is not None and (identity is None or (
        (session.annotator.source, session.annotator.external_id)
        == (identity.source, identity.external_id)))


def _existing_session(study: Study, identity: Identity) -> AnnotationSession | None:
    return get_db().scalars(
        select(AnnotationSession)
        .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
        .where(AnnotationSession.study_id == study.id, Annotator.source == identity.source,
               Annotator.external_id == identity.external_id)
    ).first()


@bp.get("/<slug>")
def enter(slug: str) -> WerkzeugResponse | tuple[str, int] | str:
    try:
        entry = parse_entry(request.args)
    except BadLink as exc:
        return render_template("study/message.html", title="This link is incomplete",
                               text=str(exc)), 400
    study = _study(slug)
    if study is None:
        return message("not_found")
    if entry.preview:
        return _instructions_page(study, preview=True)
    own = _own_session(slug)
    if _is_own(own, entry.identity):
        return redirect(_step_url(own))
    if entry.identity is not None:
        existing = _existing_session(study, entry.identity)
        if existing is not None:
            if not resumable_by(existing, entry.identity):
                return message("taken")
            if existing.status != SessionStatus.ACTIVE:
                return message("already_done")
            remember(existing.token)
            return redirect(_step_url(existing))
    if study.status != StudyStatus.OPEN:
        return message("closed")
    end_reads()
    if not has_room(get_engine(), study, utcnow()):
        return message("full")
    hidden = {name: request.args[name] for name in ENTRY_PARAMS if request.args.get(name)}
    return render_template("study/consent.html", study=study, hidden=hidden)


@bp.post("/<slug>/start")
def start(slug: str) -> WerkzeugResponse | tuple[str, int]:
    try:
        entry = parse_entry(request.form)
    except BadLink as exc:
        return render_template("study/message.html", title="This link is incomplete",
                               text=str(exc)), 400
    if entry.preview:
        return message("not_found")
    own = _own_session(slug)
    if _is_own(own, entry.identity):
        return redirect(_step_url(own))
    if request.form.get("consent") != "yes":
        study = _study(slug)
        if study is None:
            return message("not_found")
        hidden = {n: request.form[n] for n in ENTRY_PARAMS if request.form.get(n)}
        page = render_template("study/consent.html", study=study, hidden=hidden,
                               error="Please tick the box to give your consent, or close "
                                     "this page if you do not want to take part.")
        return page, 400
    identity = entry.identity or Identity(AnnotatorSource.ANONYMOUS, f"anon-{new_token()}")
    config = current_app.config
    end_reads()
    try:
        token = start_session(
            get_engine(), slug, identity,
            reservation=config.get("RESERVATION", DEFAULT_RESERVATION),
            first_answer=config.get("FIRST_ANSWER_RESERVATION", FIRST_ANSWER_RESERVATION),
            client=request.remote_addr or "?",
            start_limit=config.get("START_RATE_LIMIT", DEFAULT_START_LIMIT))
    except StartRefused as exc:
        return message(exc.reason)
    remember(token)
    return redirect(url_for("study.instructions", slug=slug))


def _is_afc(study: Study) -> bool:
    return study.task == StudyTask.TWO_AFC


def _instructions_page(study: Study, *, preview: bool) -> str:
    """The task's instructions, with examples made from images that are in no study."""
    if _is_afc(study):
        references, queries = worked_example()
        return render_template("study/afc_instructions.html", study=study, preview=preview,
                               references=references, queries=queries,
                               answer=WORKED_ANSWER, no_references=ReferenceKind.NONE)
    return render_template("study/instructions.html", study=study, preview=preview,
                           examples=instruction_examples())


def _stamp_once(session: AnnotationSession, column: InstrumentedAttribute[datetime | None],
                now: datetime | None = None, **also: object) -> None:
    """Set a step's timestamp (and `also`) in one UPDATE, only if no earlier request did."""
    end_reads()
    with unit_of_work(get_engine()) as db:
        db.execute(update(AnnotationSession)
                   .where(AnnotationSession.id == session.id, column.is_(None))
                   .values({column: now or utcnow(), **also})
                   .execution_options(synchronize_session=False))


@bp.get("/<slug>/instructions")
def instructions(slug: str) -> WerkzeugResponse | str:
    session = _own_session(slug)
    if session is None:
        return redirect(url_for("study.enter", slug=slug))
    if session.instructions_shown_at is None:
        _stamp_once(session, AnnotationSession.instructions_shown_at)
    return _instructions_page(session.study, preview=False)


@bp.post("/<slug>/instructions")
def instructions_done(slug: str) -> WerkzeugResponse:
    session = _own_session(slug)
    if session is None:
        return redirect(url_for("study.enter", slug=slug))
    if session.instructions_done_at is None:
        now = utcnow()
        has_practice = exists().where(Trial.session_id == session.id,
                                      Trial.kind == TrialKind.PRACTICE)
        _stamp_once(session, AnnotationSession.instructions_done_at, now,
                    # nothing to practise: practice is over when it would start
                    practice_done_at=case((has_practice, AnnotationSession.practice_done_at),
                                              else_=now))
    return redirect(url_for("study.trials", slug=slug))


@bp.get("/<slug>/trials")
def trials(slug: str) -> WerkzeugResponse | str:
    session = _own_session(slug)
    if session is None:
        return redirect(url_for("study.enter", slug=slug))
    if session.status != SessionStatus.ACTIVE or session.instructions_done_at is None:
        return redirect(_step_url(session))
    page = "study/afc_trials.html" if _is_afc(session.study) else "study/trials.html"
    return render_template(page, study=session.study)


def _handoff(session: AnnotationSession) -> tuple[str | None, str | None]:
    """(Prolific-style redirect URL, MTurk externalSubmit URL) for the end page."""
    code = session.completion_code or session.study.completion_code
    source = session.annotator.source
    if source == AnnotatorSource.MTURK and session.turk_submit_to and session.assignment_id:
        return None, f"{session.turk_submit_to}/mturk/externalSubmit"
    if source == AnnotatorSource.PROLIFIC:
        return effective_redirect(session.study, code), None
    return session.study.redirect_url, None


@bp.get("/<slug>/done")
def done(slug: str) -> WerkzeugResponse | tuple[str, int] | str:
    session = _own_session(slug)
    if session is None:
        return redirect(url_for("study.enter", slug=slug))
    if session.status == SessionStatus.ACTIVE:
        return redirect(_step_url(session))
    if session.status != SessionStatus.COMPLETED:
        return message("already_done")
    redirect_url, mturk_url = _handoff(session)
    return render_template("study/done.html", study=session.study, session=session,
                           redirect_url=redirect_url, mturk_url=mturk_url)
