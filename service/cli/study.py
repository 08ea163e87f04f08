"""`fvlab study …`: create a study from finished jobs, open and close it, list studies.

A study has one task: `rating` (a yes/no question about each render) or `2afc` (pick which of
two photos belongs with a direction's max references; `--reference` chooses what is shown beside
them, and is given once per kind).

`study create` takes the same settings as the console's form and goes through the same
`service.studies.study.create_study`, so both refuse the same bad input with the same message.
"""

from __future__ import annotations

from typing import TextIO

import click

from service.cli.context import CliContext, pass_cli
from service.store.models import ReferenceKind, StudyTask
from service.studies.afc_study import AFC_QUESTION
from service.studies.study import DEFAULT_QUESTION

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@click.group()
def study() -> None:
    """Annotation studies: create, open, close, list."""


@study.command("create")
@click.option("--job", "job_ids", type=int, multiple=True, required=True,
              help="A finished job whose stimuli the study covers (repeatable).")
@click.option("--name", required=True, help="Shown to annotators: keep it neutral.")
@click.option("--task", type=click.Choice([t.value for t in StudyTask]),
              default=StudyTask.RATING.value, show_default=True,
              help="rating: a yes/no question about each render; 2afc: pick which of two photos "
                   "belongs with a direction's max references (the IMI task).")
@click.option("--reference", "references", multiple=True,
              type=click.Choice([k.value for k in ReferenceKind]),
              help="2afc: what trials show beside the queries, crossed with the condition "
                   "(repeatable; default synthetic): the direction's min/max renders, its "
                   "least/most activating photos, or nothing.")
@click.option("--ratings-per-item", "k", default=5, show_default=True, type=int,
              help="Answers each item needs (k): each render, or each direction × reference.")
@click.option("--trials", default=40, show_default=True, type=int,
              help="Stimulus trials per session.")
@click.option("--catch-every", default=10, show_default=True, type=int,
              help="About one catch trial per N trials (0: none).")
@click.option("--practice", default=3, show_default=True, type=int,
              help="Practice trials before the real ones (not analysed).")
@click.option("--question", default=None,
              help=f"The question asked of every trial (rating default: \"{DEFAULT_QUESTION}\"; "
                   f"2afc default: \"{AFC_QUESTION}\").")
@click.option("--consent-file", type=click.File("r", encoding="utf-8"),
              help="A text file with the consent text (blank lines separate paragraphs).")
@click.option("--completion-code", default=None, help="Shown at the end; random when omitted.")
@click.option("--redirect-url", default=None,
              help="Where participants go at the end (default: Prolific's completion URL).")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True,
              help="The site's public address, for the printed links (use the host and port "
                   "that `fvlab serve` or your proxy answers on).")
@pass_cli
def study_create(cli: CliContext, job_ids: tuple[int, ...], name: str, task: str,
                 references: tuple[str, ...], k: int, trials: int, catch_every: int,
                 practice: int, question: str | None, consent_file: TextIO | None,
                 completion_code: str | None, redirect_url: str | None, base_url: str) -> None:
    """Create a draft study over finished jobs' renders or directions; prints the study URL."""
    from service.studies.study import (
        StudyError,
        StudyRequest,
        annotator_links,
        create_study,
        get_study,
    )

    engine = cli.engine()
    request = StudyRequest(
        job_ids=list(job_ids), name=name, ratings_per_item=k, trials_per_session=trials,
        catch_every=catch_every, practice_count=practice, question=question, task=task,
        reference_kinds=list(references),
        consent_text=consent_file.read() if consent_file else "",
        completion_code=completion_code, redirect_url=redirect_url,
    )
    try:
        study_id = create_study(engine, request)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    created = get_study(engine, study_id)
    links = annotator_links(base_url, created.slug)
    click.echo(links["direct"])
    click.echo(f"study {study_id} created as a draft; completion code {created.completion_code}",
               err=True)
    click.echo(f"Prolific link: {links['prolific']}", err=True)
    click.echo(f"open it for annotators with: fvlab study open {study_id}", err=True)


def _set_status(cli: CliContext, study_id: int, action: str) -> None:
    from service.studies.study import StudyError, close_study, open_study

    change = open_study if action == "open" else close_study
    try:
        change(cli.engine(), study_id)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"study {study_id} is {'open' if action == 'open' else 'closed'}")


@study.command("open")
@click.argument("study_id", type=int)
@pass_cli
def study_open(cli: CliContext, study_id: int) -> None:
    """Let annotators in (a draft or closed study)."""
    _set_status(cli, study_id, "open")


@study.command("close")
@click.argument("study_id", type=int)
@pass_cli
def study_close(cli: CliContext, study_id: int) -> None:
    """Stop new sessions; sessions already started may still finish."""
    _set_status(cli, study_id, "close")


@study.command("list")
@pass_cli
def study_list(cli: CliContext) -> None:
    """Every study with its status and ratings collected of needed."""
    from service.studies.progress import list_studies

    studies = list_studies(cli.engine())
    if not studies:
        click.echo("no studies yet")
        return
    click.echo(f"{'id':>4}  {'status':<7} {'task':<6} {'ratings':>15}  {'slug':<12}  name")
    for item in studies:
        progress = f"{item.ratings}/{item.needed}"
        click.echo(f"{item.id:>4}  {item.status:<7} {item.task:<6} {progress:>15}  "
                   f"{item.slug:<12}  {item.name}")
