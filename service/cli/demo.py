"""`fvlab demo` (what `make run` runs): the whole fvlab demo on the embedded default.

It migrates the SQLite store, makes a researcher login and a secret key the first time (kept
under the data dir, readable by the owner only), queues the demo job unless one exists, starts
`fvlab worker` and `fvlab serve` as children in this process group, opens a rating study and a
2-AFC study over the job once it has rendered, pilots the 2-AFC study with the machine annotator
(`demo_pilot`), and prints the machine's findings, the annotator links and the admin login.
Ctrl-C (or SIGTERM) stops both children cleanly. A second run reuses everything and is up in
seconds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from sqlalchemy import Engine, select

from service.cli.context import CliContext, pass_cli
from service.config import Settings
from service.generation.jobs import demo_job_id, submit_demo_if_empty, watch
from service.store.accounts import create_user
from service.store.db import make_engine, unit_of_work
from service.store.migrate import upgrade
from service.store.models import Job, Study, StudyStimulus, User

ADMIN_NAME = "admin"
DEMO_STUDY_NAME = "Picture ratings"
POLL_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 60.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _private_file(path: Path, make: str) -> str:
    """Read `path`, or write `make` into it (mode 0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


def _admin_password(engine: Engine, data_dir: Path) -> str | None:
    """The demo researcher's password, created with the account on first run."""
    path = data_dir / "admin-password.txt"
    with unit_of_work(engine) as session:
        exists = session.scalar(select(User.id).where(User.name == ADMIN_NAME)) is not None
    if exists:
        return path.read_text().strip() if path.exists() else None
    password = secrets.token_urlsafe(12)
    path.unlink(missing_ok=True)
    _private_file(path, password)
    create_user(engine, ADMIN_NAME, password)
    return password


def _demo_job_id(engine: Engine) -> int | None:
    """The job marked as the demo when it was queued; a job merely named "demo" is not it."""
    return demo_job_id(engine)


def _demo_study_slug(engine: Engine, job_id: int) -> str:
    """The demo study's slug, creating and opening it over the finished job when absent."""
    from service.studies.study import StudyRequest, create_study, open_study

    with unit_of_work(engine) as session:
        slug = session.scalar(select(Study.slug).where(Study.name == DEMO_STUDY_NAME))
    if slug is not None:
        return slug
    study_id = create_study(
        engine,
        StudyRequest(
            job_ids=[job_id], name=DEMO_STUDY_NAME, ratings_per_item=3, trials_per_session=12,
            catch_every=4, practice_count=2,
        ),
    )
    open_study(engine, study_id)
    with unit_of_work(engine) as session:
        study = session.get_one(Study, study_id)
        count = len(session.scalars(
            select(StudyStimulus.stimulus_id).where(StudyStimulus.study_id == study_id)
        ).all())
        print(f"demo study opened over {count} stimuli", flush=True)
        return study.slug


def _studies(engine: Engine, job_id: int, data_dir: Path, env: dict[str, str],
             base: str) -> list[str]:
    """Open the demo's studies over the rendered job, pilot the 2-AFC one with the machine
    annotator, and return what to print: the machine's findings and the annotator links.

    A demo job from before natural exemplars (no image set) gets the rating study only.
    """
    from service.cli import demo_pilot

    links = [f"annotator link (yes/no ratings): {base}/study/{_demo_study_slug(engine, job_id)}"]
    with unit_of_work(engine) as session:
        has_exemplars = session.get_one(Job, job_id).image_set_id is not None
    if not has_exemplars:
        return links
    study_id, slug = demo_pilot.afc_study(engine, job_id)
    folder = demo_pilot.pilot(engine, study_id, data_dir, env)
    lines = demo_pilot.summary(folder, demo_pilot.is_calibrated(engine, study_id))
    return [*lines, *links, f"annotator link (2-AFC): {base}/study/{slug}"]


def _child_signals() -> None:
    """In a child before exec: Ctrl-C is left to us (so we stop the children in order), and
    the signals we block while starting it are let through again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _start(children: list[subprocess.Popen[bytes]], args: list[str], env: dict[str, str]) -> None:
    """Start `fvlab ARGS` as a child in our process group and add it to `children`.

    Ctrl-C and SIGTERM wait while it starts, so that one arriving then cannot leave a child
    that is running but not yet in the list `_stop` stops.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        children.append(subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args], env=env, preexec_fn=_child_signals,
        ))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the children and wait for them to finish cleanly; a second Ctrl-C (or SIGTERM)
    meanwhile, or a child that takes too long, has them killed at once. None outlives us."""
    try:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
    except KeyboardInterrupt:
        print("stopping now", flush=True)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # nothing may cut the killing short
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()


def _wait_for_job(engine: Engine, job_id: int, children: list[subprocess.Popen[bytes]]) -> str:
    """Poll the demo job until it ends, printing its progress; returns its final status."""
    from service.generation.job_sheet import reference_report

    shown = None
    for job in watch(engine, job_id, POLL_SECONDS):
        report = reference_report(engine, job_id)
        scored = ("" if report is None else f"exemplar pass {report.exemplar_layers_done}/"
                  f"{report.exemplar_layers} layers, ")
        line = f"demo job {job_id}: {scored}{job.progress}/{job.total} images, {job.status}"
        if line != shown:
            print(line, flush=True)
            shown = line
        if any(child.poll() is not None for child in children):
            raise RuntimeError("the worker or the site stopped; see the messages above")
    if job.error:
        print(f"demo job error: {job.error}", flush=True)
    return job.status


def _prepare(settings: Settings) -> tuple[Engine, dict[str, str], str | None, int | None]:
    env = dict(os.environ)
    env["FVLAB_DATA_DIR"] = str(settings.data_dir)
    env["FVLAB_DATABASE_URL"] = settings.database_url
    if settings.secret_key is None:
        key_file = settings.data_dir / "secret-key.txt"
        env["FVLAB_SECRET_KEY"] = _private_file(key_file, secrets.token_hex(32))
    engine = make_engine(settings.database_url)
    upgrade(settings.database_url)
    password = _admin_password(engine, settings.data_dir)
    queued = submit_demo_if_empty(engine, _import_progress)
    if queued is not None:
        print(f"queued the demo job {queued} (EfficientNet-Lite0, basis and random directions, "
              "natural exemplars from the built-in photos)", flush=True)
    return engine, env, password, _demo_job_id(engine)


def _import_progress(done: int, total: int) -> None:
    """The built-in photos' import, a line at every quarter (it takes seconds)."""
    if done == total or done % max(1, total // 4) == 0:
        print(f"importing the built-in photos: {done}/{total}", flush=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_cli
def demo(cli: CliContext, host: str, port: int) -> None:
    """Run the demo: render the demo job, open studies over it, pilot one, serve the site.

    Migrates the store, queues the demo job (EfficientNet-Lite0, basis and random directions of
    two layers, natural exemplars from the built-in photos) unless a job exists, starts a worker
    and the site, opens a rating and a 2-AFC study, lets the machine annotator answer the 2-AFC
    study and analyses it, and prints the machine's accuracy for basis and random directions,
    its verdict, the annotator links and the researcher login. Ctrl-C stops everything.
    """
    sys.exit(_run(cli.settings.check_all(), host, port))


def _run(settings: Settings, host: str, port: int) -> int:
    engine, env, password, job_id = _prepare(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    children: list[subprocess.Popen[bytes]] = []
    try:
        _start(children, ["worker"], env)
        _start(children, ["serve", "--host", host, "--port", str(port)], env)
        base = f"http://{host}:{port}"
        print(f"site: {base}/  ·  researcher console: {base}/admin", flush=True)
        if password is None:
            print(f"admin login: {ADMIN_NAME} (its password file is gone; make another account "
                  "with: fvlab admin create-user NAME)", flush=True)
        else:
            print(f"admin login: {ADMIN_NAME} / {password}", flush=True)
        if job_id is not None and _wait_for_job(engine, job_id, children) == "done":
            for line in _studies(engine, job_id, settings.data_dir, env, base):
                print(line, flush=True)
        print("running; press Ctrl-C to stop the worker and the site", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(1.0)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the worker and the site…", flush=True)
        return 0
    finally:
        _stop(children)
