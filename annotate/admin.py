"""The researcher console under `/admin`: sign in and out, the generation jobs and their
contact sheets (a job's min and max renders beside its natural extremes, per direction).

Studies live in `annotate/admin_studies.py`, a blueprint nested in this one so that the sign-in
and CSRF guard of `annotate.auth.protect` covers them too. Everything here may name models,
layers, channels and conditions, because only researchers get past the guard.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from annotate import admin_studies, auth
from annotate.admin_forms import FormError, float_field, int_field, optional_int_field
from annotate.auth import (
    current_researcher,
    log_in,
    log_out,
    login_keys,
    protect,
    safe_next,
    throttle,
)
from annotate.database import get_engine
from service.featurevis.kinds import Objective, RandomKind
from service.generation.job_requests import AUTO_DIVERSITY
from service.generation.job_sheet import job_sheet, reference_report, sheet_png
from service.generation.jobs import JobError, JobRequest, cancel, get_job, list_jobs, submit
from service.store.accounts import authenticate

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.register_blueprint(admin_studies.bp)
protect(bp, public={"admin.login"})

JOB_DEFAULTS = {"model": "efficientnet_lite0", "layers": "blocks.10", "n_basis": "16",
                "n_random": "16", "random_kind": RandomKind.GAUSSIAN.value,
                "objective": Objective.DOT.value, "image_size": "128", "steps": "512", "lr": "0.05",
                "seed": "", "name": "", "image_set": "", "references": "", "diversity": "",
                "query_percentile": ""}
SHA256_CHARS = 64


@bp.route("/login", methods=["GET", "POST"])
def login() -> WerkzeugResponse | tuple[str, int] | str:
    next_url = request.values.get("next")
    if request.method == "GET":
        if current_researcher() is not None:
            return redirect(safe_next(next_url))
        return render_template("admin/login.html", next_url=next_url)
    name = request.form.get("name", "").strip()
    keys = login_keys(name)
    if throttle().blocked(keys):
        return render_template("admin/login.html", next_url=next_url, name=name,
                               error="Too many failed attempts; wait a few minutes."), 429
    user = authenticate(get_engine(), name, request.form.get("password", ""))
    if user is None:
        throttle().failed(keys)
        return render_template("admin/login.html", next_url=next_url, name=name,
                               error="Wrong name or password."), 401
    throttle().succeeded(keys)
    log_in(user)
    return redirect(safe_next(next_url))


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    log_out()
    return redirect(url_for("admin.login"))


@bp.get("/")
def index() -> WerkzeugResponse:
    return redirect(url_for("admin.studies.index"))


def _jobs_page(form: dict[str, str], error: str | None = None,
               status: int = 200) -> tuple[str, int]:
    page = render_template("admin/jobs.html", jobs=list_jobs(get_engine()), form=form,
                           error=error, random_kinds=list(RandomKind), objectives=list(Objective))
    return page, status


@bp.get("/jobs")
def jobs() -> tuple[str, int]:
    return _jobs_page(dict(JOB_DEFAULTS))


def _job_request(form: MultiDict[str, str]) -> JobRequest:
    layers = [layer for layer in form.get("layers", "").replace(",", " ").split() if layer]
    return JobRequest(
        model=form.get("model", "").strip(), layers=layers,
        n_basis=int_field(form, "n_basis"), n_random=int_field(form, "n_random"),
        random_kind=form.get("random_kind", ""), objective=form.get("objective", ""),
        image_size=int_field(form, "image_size"), steps=int_field(form, "steps"),
        lr=float_field(form, "lr"), seed=optional_int_field(form, "seed"),
        name=form.get("name", "").strip() or None,
        image_set=form.get("image_set", "").strip() or None,
        references=optional_int_field(form, "references"),
        diversity=_diversity_field(form),
        query_percentile=_optional_float(form, "query_percentile"),
    )


def _optional_float(form: MultiDict[str, str], name: str) -> float | None:
    return float_field(form, name) if form.get(name, "").strip() else None


def _diversity_field(form: MultiDict[str, str]) -> float | str | None:
    """Blank (the default: auto with an image set), "auto", or a weight."""
    if form.get("diversity", "").strip() == AUTO_DIVERSITY:
        return AUTO_DIVERSITY
    return _optional_float(form, "diversity")


@bp.post("/jobs")
def launch_job() -> WerkzeugResponse | tuple[str, int]:
    entered = {key: request.form.get(key, "") for key in JOB_DEFAULTS}
    try:
        job_id = submit(get_engine(), _job_request(request.form))
    except (FormError, JobError) as exc:
        return _jobs_page(entered, str(exc), 400)
    flash(f"Job {job_id} queued; a worker will pick it up.")
    return redirect(url_for("admin.jobs"))


@bp.post("/jobs/<int:job_id>/cancel")
def cancel_job(job_id: int) -> WerkzeugResponse:
    try:
        get_job(get_engine(), job_id)
    except JobError:
        abort(404)
    try:
        cancel(get_engine(), job_id)
    except JobError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Job {job_id} cancelled.")
    return redirect(url_for("admin.jobs"))


@bp.get("/jobs/<int:job_id>/sheet")
def job_sheet_page(job_id: int) -> str:
    """Per direction, its min and max renders beside its natural extremes (researchers only)."""
    try:
        job = get_job(get_engine(), job_id)
    except JobError:
        abort(404)
    return render_template("admin/job_sheet.html", job=job,
                           report=reference_report(get_engine(), job_id),
                           directions=job_sheet(get_engine(), job_id))


@bp.get("/jobs/<int:job_id>/sheet/<sha256>.png")
def job_sheet_image(job_id: int, sha256: str) -> Response:
    png = sheet_png(get_engine(), job_id, sha256) if len(sha256) == SHA256_CHARS else None
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private"})


def init_app(app: Flask) -> None:
    """Mount the console at /admin with its sign-in throttle and the templates' csrf_token()."""
    auth.init_app(app)
    app.register_blueprint(bp)
