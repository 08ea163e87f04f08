"""Studies in the researcher console: create, open, close, watch progress, look, export.

Nested in the `admin` blueprint (endpoints `admin.studies.*`), so every route here is behind the
researcher sign-in and CSRF guard. The contact sheet and its images show conditions, layers and
channels; they exist only here, never on an annotator route.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from annotate.admin_forms import FormError, int_field
from annotate.database import get_engine
from annotate.whole_numbers import parse_id
from service.generation.jobs import JobSummary, list_jobs
from service.store.models import JobStatus, ReferenceKind, Study, StudyStatus, StudyTask
from service.studies.afc_study import AFC_QUESTION
from service.studies.progress import contact_sheet, list_studies, stimulus_png, study_progress
from service.studies.study import (
    DEFAULT_QUESTION,
    LIMITS,
    PROLIFIC_COMPLETE,
    StudyError,
    StudyRequest,
    annotator_links,
    close_study,
    create_study,
    effective_redirect,
    get_study,
    open_study,
)

bp = Blueprint("studies", __name__, url_prefix="/studies")

STUDY_DEFAULTS = {"name": "", "task": StudyTask.RATING.value, "ratings_per_item": "5",
                  "trials_per_session": "40", "catch_every": "10", "practice_count": "3",
                  "question": DEFAULT_QUESTION, "consent_text": "", "completion_code": "",
                  "redirect_url": ""}
EXPORT_KINDS = ("ratings", "sessions")
EXPORT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
REFRESH_SECONDS = 15


def _study_or_404(study_id: int) -> Study:
    try:
        return get_study(get_engine(), study_id)
    except StudyError:
        abort(404)


def _finished_jobs() -> list[JobSummary]:
    return [job for job in list_jobs(get_engine()) if job.status == JobStatus.DONE]


def _index_page(form: dict[str, str], chosen: list[int], references: list[str],
                error: str | None = None, status: int = 200) -> tuple[str, int]:
    page = render_template("admin/studies.html", studies=list_studies(get_engine()),
                           jobs=_finished_jobs(), form=form, chosen=chosen, error=error,
                           limits=LIMITS, prolific_complete=PROLIFIC_COMPLETE.format(code="…"),
                           tasks=list(StudyTask), reference_kinds=list(ReferenceKind),
                           references=references, afc_question=AFC_QUESTION)
    return page, status


@bp.get("")
def index() -> tuple[str, int]:
    return _index_page(dict(STUDY_DEFAULTS), [], [ReferenceKind.SYNTHETIC.value])


def _study_request(form: MultiDict[str, str]) -> StudyRequest:
    job_ids = []
    for raw in form.getlist("job"):
        job_id = parse_id(raw)
        if job_id is None:
            raise StudyError(f"jobs: {raw!r} is not a job id")
        job_ids.append(job_id)
    settings = {name: int_field(form, name) for name in LIMITS}
    task = form.get("task", StudyTask.RATING)
    question: str | None = form.get("question", "")
    if task == StudyTask.TWO_AFC and (question or "").strip() == DEFAULT_QUESTION:
        question = None  # the form's prefilled yes/no question: ask the 2-AFC one instead
    return StudyRequest(
        job_ids=job_ids, name=form.get("name", ""), question=question, task=task,
        reference_kinds=form.getlist("reference") if task == StudyTask.TWO_AFC else [],
        consent_text=form.get("consent_text", "").replace("\r\n", "\n"),
        completion_code=form.get("completion_code") or None,
        redirect_url=form.get("redirect_url") or None, **settings,
    )


@bp.post("")
def create() -> WerkzeugResponse | tuple[str, int]:
    entered = {key: request.form.get(key, "") for key in STUDY_DEFAULTS}
    chosen = [job for job in map(parse_id, request.form.getlist("job")) if job is not None]
    references = request.form.getlist("reference")
    try:
        study_id = create_study(get_engine(), _study_request(request.form))
    except (FormError, StudyError) as exc:
        return _index_page(entered, chosen, references, str(exc), 400)
    flash(f"Study {study_id} created as a draft. Check the stimuli, then open it.")
    return redirect(url_for("admin.studies.detail", study_id=study_id))


@bp.get("/<int:study_id>")
def detail(study_id: int) -> Response:
    study = _study_or_404(study_id)
    page = render_template(
        "admin/study.html", study=study, progress=study_progress(get_engine(), study_id),
        links=annotator_links(request.host_url, study.slug),
        redirect_url=effective_redirect(study),
    )
    return Response(page, headers={"Refresh": str(REFRESH_SECONDS)}
                    if study.status == StudyStatus.OPEN else {})


@bp.get("/<int:study_id>/progress.json")
def progress_json(study_id: int) -> Response:
    _study_or_404(study_id)
    progress = study_progress(get_engine(), study_id)
    return jsonify(
        study_id=study_id,
        conditions=[asdict(c) | {"percent": round(c.percent, 1)} for c in progress.conditions],
        sessions=[asdict(a) | {"catch_failure_rate": a.catch_failure_rate}
                  for a in progress.annotators],
        completed_sessions=progress.completed_sessions,
        median_completion_seconds=progress.median_completion_seconds,
    )


@bp.post("/<int:study_id>/<any(open, close):action>")
def change_status(study_id: int, action: str) -> WerkzeugResponse:
    _study_or_404(study_id)
    try:
        (open_study if action == "open" else close_study)(get_engine(), study_id)
    except StudyError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Study {study_id} is {'open' if action == 'open' else 'closed'}.")
    return redirect(url_for("admin.studies.detail", study_id=study_id))


@bp.get("/<int:study_id>/stimuli")
def sheet(study_id: int) -> str:
    study = _study_or_404(study_id)
    return render_template("admin/sheet.html", study=study,
                           items=contact_sheet(get_engine(), study_id))


@bp.get("/<int:study_id>/stimuli/<int:stimulus_id>.png")
def stimulus_image(study_id: int, stimulus_id: int) -> Response:
    png = stimulus_png(get_engine(), study_id, stimulus_id)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private"})


@bp.get("/<int:study_id>/export/<kind>.<fmt>")
def export(study_id: int, kind: str, fmt: str) -> Response:
    """The same file `fvlab export <kind> --study ID --format <fmt>` writes."""
    from service.studies.export import ratings_frame, sessions_frame, write_frame

    _study_or_404(study_id)
    if kind not in EXPORT_KINDS or fmt not in EXPORT_TYPES:
        abort(404)
    make = ratings_frame if kind == "ratings" else sessions_frame
    frame = make(get_engine(), study_id)
    with tempfile.TemporaryDirectory() as folder:
        path = write_frame(frame, Path(folder) / f"export.{fmt}", fmt)  # type: ignore[arg-type]
        data = path.read_bytes()
    filename = f"study-{study_id}-{kind}.{fmt}"
    return Response(data, mimetype=EXPORT_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
