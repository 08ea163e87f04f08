"""`fvlab generate`, `fvlab worker` and `fvlab jobs`: launching, rendering and following jobs.

torch and Lightning are imported inside the command bodies (through `service.generation.jobs` and
`service.generation.worker` calls), so attaching these commands keeps `fvlab --help` fast.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

import click

from service.cli.context import CliContext, pass_cli, skip_teardown
from service.featurevis.kinds import Objective, RandomKind

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _follow(engine: Engine, job_id: int) -> None:
    """Show a progress bar until the job has no shard left to render; fail unless it is done."""
    from service.generation.jobs import get_job, watch
    from service.store.models import JobStatus

    job = get_job(engine, job_id)
    shown = 0
    with click.progressbar(length=job.total, label=f"job {job_id}", show_pos=True) as bar:
        for job in watch(engine, job_id):
            bar.update(job.progress - shown)
            shown = job.progress
    rate = f", {job.images_per_second:.3g} images/s" if job.images_per_second else ""
    click.echo(f"job {job_id} {job.status}: {job.progress}/{job.total} images{rate}")
    if job.status != JobStatus.DONE:
        detail = f": {job.error}" if job.error else ""
        raise click.ClickException(f"job {job_id} {job.status}{detail}")


def _diversity(_ctx: click.Context, _param: click.Parameter, value: str | None
               ) -> float | str | None:
    """A weight or "auto"; anything else is a usage error before anything is written."""
    from service.generation.job_requests import AUTO_DIVERSITY

    if value is None or value == AUTO_DIVERSITY:
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"must be a number or {AUTO_DIVERSITY!r}, got {value!r}"
                                 ) from None


@click.command()
@click.option("--model", default="efficientnet_lite0", show_default=True)
@click.option("--layer", "layers", multiple=True, help="Layer to visualize (repeat for several).")
@click.option("--basis", "n_basis", type=int, default=0, show_default=True,
              help="Basis directions (channels sampled without replacement) per layer.")
@click.option("--random", "n_random", type=int, default=0, show_default=True,
              help="Random directions per layer.")
@click.option("--random-kind", type=click.Choice([kind.value for kind in RandomKind]),
              default=RandomKind.GAUSSIAN.value, show_default=True)
@click.option("--objective", type=click.Choice([objective.value for objective in Objective]),
              default=Objective.DOT.value, show_default=True)
@click.option("--size", "image_size", type=int, default=128, show_default=True,
              help="Image side (px).")
@click.option("--steps", type=int, default=512, show_default=True, help="Optimization steps.")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Learning rate.")
@click.option("--seed", type=int, default=None,
              help="Seed for directions and renders (default: random).")
@click.option("--name", default=None, help="Job name (default: model and layers).")
@click.option("--weights", default=None,
              help="'random' (untrained control) or a weights file; default: real weights.")
@click.option("--shard-size", type=int, default=32, show_default=True,
              help="Directions per shard (the unit a worker claims).")
@click.option("--image-set", default=None,
              help="Score this image set on every direction (natural exemplars) and render K "
                   "references of +v and of -v per direction (see `fvlab images list`).")
@click.option("--references", type=int, default=None,
              help="References per sign and direction, natural and synthetic (default with "
                   "--image-set: 9).")
@click.option("--diversity", default=None, callback=_diversity, metavar="W|auto",
              help="Weight of the diversity term across a direction's references of one sign "
                   "(0: off); 'auto' (the default with --image-set) takes the largest weight whose "
                   "weakest image still beats the best natural exemplar.")
@click.option("--query-percentile", type=float, default=None,
              help="Draw 2-AFC queries from this percentile inward, in (50, 100), e.g. 95 for "
                   "harder tasks (default: just past the natural references).")
@click.option("--demo", is_flag=True,
              help="Submit the demo job of `fvlab demo` (EfficientNet-Lite0, 4 basis and 4 random "
                   "directions of blocks.6 and blocks.10 scored on the built-in photos, imported "
                   "if absent; 3 min and 3 max references each, 100 steps at 128 px), unless "
                   "the database already holds a job.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@pass_cli
def generate(
    cli: CliContext, model: str, layers: tuple[str, ...], n_basis: int, n_random: int,
    random_kind: str,
    objective: str, image_size: int, steps: int, lr: float, seed: int | None, name: str | None,
    weights: str | None, shard_size: int, image_set: str | None, references: int | None,
    diversity: float | str | None, query_percentile: float | None, demo: bool, wait: bool,
) -> None:
    """Queue a generation job; prints its id.

    `fvlab worker` renders it; `--wait` follows it with a progress bar. With --image-set, the
    workers first score the set on every direction (natural exemplars), then render K diverse
    references of +v and of -v per direction.
    """
    from service.generation.jobs import JobError, JobRequest, submit, submit_demo_if_empty

    engine = cli.engine()
    try:
        if demo:
            job_id = submit_demo_if_empty(engine)
            if job_id is None:
                click.echo("jobs exist already; no demo job queued", err=True)
                return
        else:
            if not layers:
                raise click.UsageError("give at least one --layer (see `fvlab models`)")
            request = JobRequest(
                model=model, layers=list(layers), n_basis=n_basis, n_random=n_random,
                random_kind=random_kind, objective=objective, image_size=image_size, steps=steps,
                lr=lr, seed=seed, name=name, weights=weights, image_set=image_set,
                references=references, diversity=diversity, query_percentile=query_percentile,
            )
            job_id = submit(engine, request, shard_size=shard_size)
        click.echo(job_id)
        if wait:
            _follow(engine, job_id)
    except JobError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--once", is_flag=True, help="Render until nothing is left to claim, then exit.")
@click.option("--accelerator", type=click.Choice(("auto", "cpu", "gpu")), default="auto",
              show_default=True)
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Devices on this machine; each gets its own rank that claims its own shards.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images optimized together in one batch.")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="A shard whose worker is silent this long is given to another worker.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Attempts before a shard (and its job) is marked failed.")
@click.option("--max-idle-seconds", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Longest pause between polls of an empty queue.")
@pass_cli
def worker(
    cli: CliContext, once: bool, accelerator: str, devices: int, batch_size: int,
    lease_seconds: float,
    max_attempts: int, max_idle_seconds: float,
) -> None:
    """Render queued shards with Lightning Fabric.

    Runs until SIGTERM or Ctrl-C (finishing or releasing its shard) or, with --once, until the
    queue is empty. --accelerator gpu renders in bf16 mixed precision, cpu in 32-bit.
    """
    try:
        from service.generation.worker import WorkerConfig, run

        cli.engine()  # refuse to start on a database without the current schema
        # fvlab's own progress at INFO; the libraries' chatter (torch, Lightning) as warnings.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
        logging.getLogger("fvlab").setLevel(logging.INFO)
        config = WorkerConfig(
            database_url=cli.database_url, accelerator=accelerator, devices=devices,
            batch_size=batch_size, once=once, lease_seconds=lease_seconds,
            max_attempts=max_attempts, max_idle_seconds=max_idle_seconds,
            weights_dir=cli.weights_dir,
        )
        skip_teardown()
        run(config)
    except (ValueError, RuntimeError) as exc:  # e.g. --accelerator gpu on a machine without one
        raise click.ClickException(str(exc)) from exc
    finally:
        # However it ends (done, stopped, Ctrl-C while still importing), all that is left is the
        # interpreter's teardown, whose garbage collections over torch and Lightning take
        # seconds; frozen objects are still torn down, just not searched for cycles first.
        gc.freeze()


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _table(engine: Engine) -> None:
    from service.generation.jobs import list_jobs

    rows = [("id", "name", "model", "layers", "progress", "status", "images/s")]
    rows += [
        (str(j.id), j.name, j.model, ",".join(j.layers), f"{j.progress}/{j.total}", j.status,
         _rate(j.images_per_second))
        for j in list_jobs(engine)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _references(engine: Engine, job_id: int) -> None:
    """The image-set lines of a job: exemplar pass, references beating nature, short tasks."""
    from service.generation.job_sheet import reference_report

    report = reference_report(engine, job_id)
    if report is None:
        return
    diversity = "auto" if report.diversity is None else f"{report.diversity:g}"
    queries = ("just past the references" if report.query_percentile is None
               else f"from the {report.query_percentile:g}th percentile")
    click.echo(f"  image set {report.image_set or '(removed)'}: {report.references} references "
               f"per sign, diversity {diversity}, queries {queries}")
    running = (f", {report.exemplar_layers_running} running"
               if report.exemplar_layers_running else "")
    click.echo(f"  exemplar pass: {report.exemplar_layers_done}/{report.exemplar_layers} layers "
               f"done{running}")
    click.echo(f"  references: {report.references_passing}/{report.references_rendered} beat "
               "their best natural exemplar")
    if report.short:
        listed = ", ".join(
            f"{d.layer} {d.kind}{'' if d.channel is None else f' ch {d.channel}'} "
            f"(direction {d.id}): {d.tasks_available}" for d in report.short)
        click.echo(f"  fewer than {report.tasks_asked} source-disjoint tasks: {listed}")


def _detail(engine: Engine, job_id: int) -> None:
    from service.generation.jobs import get_job, job_shards

    job = get_job(engine, job_id)
    click.echo(f"job {job.id}: {job.name}")
    click.echo(f"  model {job.model}, layers {', '.join(job.layers)}")
    click.echo(f"  status {job.status}, {job.progress}/{job.total} images, "
               f"{_rate(job.images_per_second)} images/s, created {job.created_at:%Y-%m-%d %H:%M}")
    if job.error:
        click.echo(f"  error: {job.error}")
    _references(engine, job_id)
    for shard in job_shards(engine, job_id):
        owner = f", held by {shard.lease_owner}" if shard.lease_owner else ""
        work = (f"exemplars of {shard.layer}" if shard.layer is not None
                else f"{shard.directions} directions")
        click.echo(f"  shard {shard.id}: {shard.status}, {work}, "
                   f"{shard.attempts} attempts{owner}")
        if shard.error:
            click.echo(f"    last error: {shard.error}")


@click.command()
@click.argument("args", nargs=-1, metavar="[ID | cancel ID]")
@pass_cli
def jobs(cli: CliContext, args: tuple[str, ...]) -> None:
    """List jobs, show one (ID) or cancel one.

    `fvlab jobs ID` shows the job with its shards and failures; `fvlab jobs cancel ID` stops it.
    """
    from service.generation.jobs import JobError, cancel

    if len(args) > 2 or (len(args) == 2 and args[0] != "cancel") or args == ("cancel",):
        raise click.UsageError("usage: fvlab jobs [ID | cancel ID]")
    try:
        job_id = int(args[-1]) if args else None
    except ValueError as exc:
        raise click.UsageError(f"job id must be a number, got {args[-1]!r}") from exc
    engine = cli.engine()
    try:
        if job_id is None:
            _table(engine)
        elif args[0] == "cancel":
            cancel(engine, job_id)
            click.echo(f"job {job_id} cancelled")
        else:
            _detail(engine, job_id)
    except JobError as exc:
        raise click.ClickException(str(exc)) from exc
