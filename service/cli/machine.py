"""`fvlab machine score`: the machine annotator's answer to 2-AFC trials, before people see them.

torch and pandas are imported inside the command, so attaching this group keeps `fvlab --help`
fast.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from service.cli.context import CliContext, pass_cli

EMBEDDINGS_FOLDER = "embeddings"  # under the data dir: each image is embedded once, ever
FIGURE_SUFFIX = ".png"  # --job: the MIS figure, beside the table
JOB_ONLY = {"reference": "--reference", "n_boot": "--bootstrap", "seed": "--seed"}


@click.group("machine")
def machine() -> None:
    """The machine annotator: how well an image embedding answers 2-AFC trials (MIS)."""


@machine.command("score")
@click.option("--trials", "trials_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of trial_N/references/{max,min}_K.png and "
                   "trial_N/queries/{max,min}.png. Give this or --job.")
@click.option("--job", "job_id", type=int,
              help="Score every 2-AFC task of this job's directions (all their query pairs), "
                   "one row per direction, and compare basis with random. Give this or "
                   "--trials.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV, or Parquet when the name ends in .parquet (--job: the figure is "
                   "written beside it, as .png).")
@click.option("--reference", type=click.Choice(["synthetic", "natural"]), default="synthetic",
              show_default=True, help="--job: the references each task shows.")
@click.option("--embedding", default="efficientnet_lite2", show_default=True,
              help="Embedding network (torchvision ones read local weights; dreamsim needs its "
                   "package and weights).")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Slope α of P = σ(αΔ) (default: uncalibrated, 1/median |Δ| of the tasks "
                   "scored).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="--job: resamples of directions within layer × condition.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="--job: the bootstrap's seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@pass_cli
def score(
    cli: CliContext, trials_dir: Path | None, job_id: int | None, output: Path, reference: str,
    embedding: str, alpha: float | None, n_boot: int, seed: int, batch_size: int,
) -> None:
    """Trials (--trials): one row per trial, Δ (evidence for the max query) and the machine's
    P(correct). A job (--job): one row per direction, its MIS, and basis − random."""
    if (trials_dir is None) == (job_id is None):
        raise click.UsageError("give exactly one of --trials DIR or --job ID")
    if trials_dir is not None:
        context = click.get_current_context()
        given = [flag for name, flag in JOB_ONLY.items()
                 if context.get_parameter_source(name) is not ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} only go with --job")
        _score_trials(cli, trials_dir, output, embedding, alpha, batch_size)
    elif job_id is not None:
        _score_job(cli, job_id, output, reference, embedding, alpha, n_boot, seed, batch_size)


def _score_trials(cli: CliContext, trials_dir: Path, output: Path, embedding: str,
                  alpha: float | None, batch_size: int) -> None:
    import pandas as pd

    from service.featurevis.embeddings import EmbeddingCache, EmbeddingError, load_embedder
    from service.studies.export import write_frame
    from service.studies.machine.score import ScoreError
    from service.studies.machine.trials import (
        COLUMNS,
        TrialFolderError,
        find_trials,
        read_images,
        score_trials,
    )
    from service.studies.ratings_file import format_for

    try:
        trials = find_trials(trials_dir)
        images = read_images(trials)  # every file checked before the network loads
        embedder = load_embedder(embedding, weights_dir=cli.weights_dir)
        folder = Path(str(cli.setting("data_dir"))) / EMBEDDINGS_FOLDER
        rows = score_trials(trials, images, EmbeddingCache(embedder, folder, batch_size), alpha)
    except (TrialFolderError, EmbeddingError, ScoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    write_frame(frame, output, format_for(output))
    click.echo(
        f"scored {len(frame)} trials with {embedding}: mean P(correct) "
        f"{frame['p_correct'].mean():.3f}, α = {frame['alpha'].iloc[0]:.3g} "
        f"({frame['alpha_note'].iloc[0]}); wrote {output}"
    )


def _score_job(cli: CliContext, job_id: int, output: Path, reference: str, embedding: str,
               alpha: float | None, n_boot: int, seed: int, batch_size: int) -> None:
    import pandas as pd

    from analysis.machine_score import compare_mis, describe, mis_figure
    from service.featurevis.embeddings import EmbeddingCache, EmbeddingError, load_embedder
    from service.studies.export import write_frame
    from service.studies.machine.job_tasks import COLUMNS, JobTasksError, job_tasks, score_job
    from service.studies.machine.score import ScoreError
    from service.studies.ratings_file import format_for

    figure = output.with_suffix(FIGURE_SUFFIX)
    if figure == output:
        raise click.UsageError(f"-o names the table; the figure takes {output.name}")
    try:
        tasks = job_tasks(cli.engine(), job_id, reference)  # checked before the network loads
        embedder = load_embedder(embedding, weights_dir=cli.weights_dir)
        folder = Path(str(cli.setting("data_dir"))) / EMBEDDINGS_FOLDER
        cache = EmbeddingCache(embedder, folder, batch_size)
        rows = score_job(cli.engine(), tasks, cache, alpha)
    except (JobTasksError, EmbeddingError, ScoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["channel"] = frame["channel"].astype("Int64")  # empty for random directions
    write_frame(frame, output, format_for(output))
    found = compare_mis(frame, n_boot=n_boot, seed=seed)
    used, note = float(frame["alpha"].iloc[0]), str(frame["alpha_note"].iloc[0])
    how = f"α = {used:.3g} ({note})"
    mis_figure(frame, found, figure,
               title=f"job {job_id}, {reference} references, {cache.embedder.name}; {how}")
    click.echo(f"scored {len(tasks.task_direction)} tasks of {len(frame)} directions of job "
               f"{job_id} ({reference} references) with {cache.embedder.name}; {how}")
    for line in describe(found):
        click.echo(line)
    click.echo(f"stimulus bootstrap: {n_boot} resamples of directions within layer × "
               f"condition, seed {seed}; wrote {output} and {figure}")
