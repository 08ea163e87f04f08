"""Studies as researchers make them: create one from finished jobs, open it, close it, list them.

A study is written whole or not at all: `create_study` checks every setting first and writes the
study, its stimuli and (through `service.studies.catch`) the catch items it needs in one
transaction.

A study has one task. A `rating` study covers the jobs' renders and asks its question of each.
A `2afc` study covers the jobs' directions (each named by its first max render, see
`service.studies.afc_items`) crossed with its reference kinds, and every direction must have
query pairs and the references each kind shows (`service.studies.afc_study`). New studies
start as drafts, so the researcher can look at the contact sheet before any annotator can enter;
`open_study` lets people in and `close_study` stops new sessions.

Annotators see the study's slug (in the link), its name (in the page title), its question and its
consent text, so the slug is random rather than derived from the name, and a name that mentions
the model, a layer or a job of the study is refused: those would tell annotators what they rate.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.store.db import unit_of_work
from service.store.models import (
    Direction,
    Image,
    Job,
    JobStatus,
    Sign,
    Stimulus,
    Study,
    StudyStatus,
    StudyStimulus,
    StudyTask,
)
from service.studies.afc_study import AFC_QUESTION, afc_directions, check_task
from service.studies.catch import ensure_reference_check, ensure_study_catch_items
from service.studies.errors import StudyError

DEFAULT_QUESTION = (
    "Does this image show one specific thing you could name — an object, an animal, a body "
    "part, or a distinctive texture — rather than a mix of unrelated fragments?"
)
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc={code}"
PROLIFIC_QUERY = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{4,100}$")
TOKEN_PATTERN = re.compile(r"[a-z0-9]+")
SLUG_ALPHABET = string.ascii_lowercase + string.digits
SLUG_LENGTH = 12
NAME_MAX_CHARS = 200
QUESTION_MAX_CHARS = 1000
CONSENT_MAX_CHARS = 20_000
URL_MAX_CHARS = 1000
LIMITS = {  # setting: (lowest, highest)
    "ratings_per_item": (1, 1000),
    "trials_per_session": (1, 1000),
    "catch_every": (0, 1000),
    "practice_count": (0, 50),
}


@dataclass
class StudyRequest:
    """What a researcher asks for; `create_study` checks every field before anything is written.

    `catch_every` 0 means no catch trials; `completion_code` None draws a random one;
    `redirect_url` None sends Prolific participants to Prolific's completion URL with the code.
    `question` None asks the task's default question; `reference_kinds` (2afc only) empty
    means `synthetic`.
    """

    job_ids: list[int]
    name: str
    ratings_per_item: int = 5
    trials_per_session: int = 40
    catch_every: int = 10
    practice_count: int = 3
    question: str | None = None
    task: str = StudyTask.RATING
    reference_kinds: list[str] = field(default_factory=list)
    consent_text: str = ""
    completion_code: str | None = None
    redirect_url: str | None = None


def _check_int(name: str, value: object) -> int:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise StudyError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check_text(name: str, value: object, high: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise StudyError(f"{name} must be text")
    text = value.strip()
    if required and not text:
        raise StudyError(f"{name} must not be empty")
    if len(text) > high:
        raise StudyError(f"{name} is {len(text)} characters; the limit is {high}")
    return text


def _check_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > URL_MAX_CHARS:
        raise StudyError(f"redirect_url must be an http(s) address, got {value!r}")
    return url


def _check_settings(request: StudyRequest) -> tuple[str, str, str, str, str | None]:
    """Everything that can be checked without the database: (name, question, consent, code, url)."""
    name = _check_text("name", request.name, NAME_MAX_CHARS, required=True)
    for setting in LIMITS:
        _check_int(setting, getattr(request, setting))
    default = AFC_QUESTION if request.task == StudyTask.TWO_AFC else DEFAULT_QUESTION
    asked = default if request.question is None else request.question
    question = _check_text("question", asked, QUESTION_MAX_CHARS, required=True)
    consent = _check_text("consent_text", request.consent_text, CONSENT_MAX_CHARS, required=False)
    code = request.completion_code
    if code is None or not code.strip():
        code = secrets.token_hex(4).upper()
    elif not CODE_PATTERN.match(code.strip()):
        raise StudyError("completion_code must be 4–100 letters, digits, _ or -")
    raw_url = (request.redirect_url or "").strip()
    url = _check_url(raw_url) if raw_url else None
    if not request.job_ids:
        raise StudyError("jobs: choose at least one finished job")
    if len(set(request.job_ids)) != len(request.job_ids):
        raise StudyError(f"jobs: {request.job_ids} lists a job twice")
    return name, question, consent, code.strip(), url


def _finished_jobs(db: Session, job_ids: list[int]) -> list[Job]:
    jobs = {job.id: job for job in db.scalars(select(Job).where(Job.id.in_(job_ids)))}
    for job_id in job_ids:
        job = jobs.get(job_id)
        if job is None:
            raise StudyError(f"jobs: job {job_id} does not exist")
        if job.status != JobStatus.DONE:
            raise StudyError(f"jobs: job {job_id} is {job.status}, not done")
    return [jobs[job_id] for job_id in job_ids]


def _tokens(text: str) -> tuple[str, ...]:
    """Lower-case runs of letters and digits: "EfficientNet_Lite0 blocks.10" → efficientnet,
    lite0, blocks, 10."""
    return tuple(TOKEN_PATTERN.findall(text.lower()))


def _leaked_word(name: str, jobs: list[Job]) -> str | None:
    """A model, layer or job name of the study that the study's name mentions, if any.

    Names are compared as words, not as text: "blocks.10" is mentioned by "Blocks 10 study" but
    a layer called `stem` is not mentioned by "Ecosystem pictures" (it is by "stem cells").
    """
    said = _tokens(name)
    words = {job.model for job in jobs} | {layer for job in jobs for layer in job.layers}
    words |= {job.name for job in jobs}
    for word in sorted(words):
        sought = _tokens(word)
        if sought and any(said[i : i + len(sought)] == sought
                          for i in range(len(said) - len(sought) + 1)):
            return word
    return None


def _stimuli(db: Session, jobs: list[Job]) -> tuple[list[int], int]:
    """The jobs' renders of +v (the images a rating study asks about; renders of −v are 2-AFC
    references) and their one common image side; StudyError otherwise."""
    rows = db.execute(
        select(Stimulus.id, Image.width, Image.height)
        .join(Direction, Stimulus.direction_id == Direction.id)
        .join(Image, Stimulus.image_sha256 == Image.sha256)
        .where(Direction.job_id.in_([job.id for job in jobs]), Stimulus.sign == Sign.MAX)
        .order_by(Stimulus.id)
    ).all()
    if not rows:
        raise StudyError("jobs: the chosen jobs have no rendered stimuli")
    sizes = {(width, height) for _, width, height in rows}
    if len(sizes) != 1 or len({side for size in sizes for side in size}) != 1:
        shown = ", ".join(f"{w}×{h}" for w, h in sorted(sizes))
        raise StudyError(f"jobs: stimuli must all be one square size to look alike, got {shown}")
    return [row[0] for row in rows], rows[0][1]


def _new_slug(db: Session) -> str:
    while True:
        slug = "".join(secrets.choice(SLUG_ALPHABET) for _ in range(SLUG_LENGTH))
        if db.scalar(select(Study.id).where(Study.slug == slug)) is None:
            return slug


def create_study(engine: Engine, request: StudyRequest) -> int:
    """Validate the request, then write a draft study over the jobs' stimuli; returns its id.

    Catch items of the stimuli's size and PNG byte range are made in the same transaction, so
    the first annotator does not pay for drawing them. Raises StudyError (and writes nothing) on
    any bad setting, or when no catch item can be drawn inside the stimuli's byte range.
    """
    task, reference_kinds = check_task(request.task, request.reference_kinds,
                                       request.catch_every)
    name, question, consent, code, url = _check_settings(request)
    with unit_of_work(engine) as db:
        jobs = _finished_jobs(db, request.job_ids)
        leaked = _leaked_word(name, jobs)
        if leaked is not None:
            raise StudyError(
                f"name mentions {leaked!r}; annotators see the name, so keep it neutral"
            )
        if reference_kinds is None:
            stimulus_ids, size = _stimuli(db, jobs)
        else:
            stimulus_ids = afc_directions(db, jobs, reference_kinds)
        study = Study(
            name=name, slug=_new_slug(db), status=StudyStatus.DRAFT, question=question,
            consent_text=consent, ratings_per_item=request.ratings_per_item,
            trials_per_session=request.trials_per_session, catch_every=request.catch_every,
            practice_count=request.practice_count, completion_code=code, redirect_url=url,
            task=task, reference_kinds=reference_kinds,
        )
        db.add(study)
        db.flush()
        db.add_all(StudyStimulus(study_id=study.id, stimulus_id=s) for s in stimulus_ids)
        if reference_kinds is None:
            if request.catch_every or request.practice_count:  # both show catch items
                ensure_study_catch_items(db, study.id, size)
        else:
            ensure_reference_check(db)
        return study.id


def _set_status(
    engine: Engine, study_id: int, status: StudyStatus, allowed_from: tuple[StudyStatus, ...]
) -> None:
    with unit_of_work(engine) as db:
        study = db.get(Study, study_id)
        if study is None:
            raise StudyError(f"study {study_id} does not exist")
        if study.status == status:
            return
        if study.status not in allowed_from:
            raise StudyError(f"study {study_id} is {study.status}; it cannot become {status}")
        study.status = status


def open_study(engine: Engine, study_id: int) -> None:
    """Let annotators in (from draft, or again after closing); opening an open study is a no-op."""
    _set_status(engine, study_id, StudyStatus.OPEN, (StudyStatus.DRAFT, StudyStatus.CLOSED))


def close_study(engine: Engine, study_id: int) -> None:
    """Stop new sessions; sessions already started may finish, so no rating is lost."""
    _set_status(engine, study_id, StudyStatus.CLOSED, (StudyStatus.DRAFT, StudyStatus.OPEN))


def get_study(engine: Engine, study_id: int) -> Study:
    """The study row (detached); StudyError when it does not exist."""
    with unit_of_work(engine) as db:
        study = db.get(Study, study_id)
        if study is None:
            raise StudyError(f"study {study_id} does not exist")
        return study


def prolific_completion_url(code: str) -> str:
    """Prolific's completion page, which credits the participant who brings this code."""
    return PROLIFIC_COMPLETE.format(code=quote(code))


def effective_redirect(study: Study, code: str | None = None) -> str:
    """Where a Prolific participant goes after the last rating: the study's redirect URL, or
    Prolific's completion page with `code` (by default the study's completion code)."""
    return study.redirect_url or prolific_completion_url(code or study.completion_code)


def annotator_links(base_url: str, slug: str) -> dict[str, str]:
    """The links to paste into the recruiting platforms, each with its own URL parameters.

    Prolific fills the {{%…%}} placeholders; MTurk's ExternalQuestion appends workerId,
    assignmentId, hitId and turkSubmitTo by itself, so its link is the plain one.
    """
    plain = f"{base_url.rstrip('/')}/study/{slug}"
    return {"direct": plain, "prolific": f"{plain}?{PROLIFIC_QUERY}", "mturk": plain}
