"""`fvlab machine score`: the machine annotator's answer to 2-AFC trials, before people see them;
`fvlab machine rate` and `calibrate`: the machine annotator inside a 2-AFC study.

torch and pandas are imported inside the commands, so attaching this group keeps `fvlab --help`
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


# `fvlab machine rate` and `fvlab machine calibrate`: the machine annotator inside a 2-AFC study
# (their shared helpers in `service.cli.machine_study`).


@machine.command("rate")
@click.option("--study", "study_id", type=int, required=True, help="A 2-AFC study, draft or open.")
@click.option("--annotators", type=int, default=5, show_default=True,
              help="Machine annotators to make, one session each (fewer when every item "
                   "reaches k machine answers first).")
@click.option("--embedding", default="efficientnet_lite2", show_default=True,
              help="Embedding network the machine sees the images with.")
@click.option("--alpha", type=float, default=None,
              help="Slope α of P = σ(αΔ) (default: the study's calibrated α, else uncalibrated "
                   "1/median |Δ| over the study's tasks).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the trial plans and the drawn answers.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@pass_cli
def rate(cli: CliContext, study_id: int, annotators: int, embedding: str, alpha: float | None,
         seed: int, batch_size: int) -> None:
    """Machine annotators answer the study's trials (never counted towards people's k)."""
    from annotate.assign import StartRefused, start_machine_session
    from service.cli.machine_study import progress_printer, study_cache
    from service.featurevis.embeddings import EmbeddingError
    from service.studies.errors import StudyError
    from service.studies.machine.rate import check_rate_request, rate_study
    from service.studies.machine.score import ScoreError

    engine = cli.engine()
    try:
        check_rate_request(engine, study_id, annotators, alpha)  # before the network loads
        summary = rate_study(engine, study_id, annotators=annotators,
                             cache=study_cache(cli, embedding, batch_size),
                             start_session=start_machine_session, alpha=alpha, seed=seed,
                             progress=progress_printer())
    except (StudyError, EmbeddingError, ScoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    except StartRefused as exc:
        raise click.ClickException(f"study {study_id}: a machine session was refused "
                                   f"({exc.reason})") from exc
    click.echo(
        f"study {study_id}: {summary.sessions} machine sessions, {summary.answers} answers, "
        f"{summary.correct} correct ({summary.accuracy:.3f}), mean P(correct) "
        f"{summary.mean_p:.3f}; α = {summary.alpha:.4g}, λ = {summary.lapse:.3g} "
        f"({summary.alpha_note}); embedding {summary.embedding}, seed {seed}")
    if summary.stopped_early:
        click.echo(f"stopped after {summary.sessions} of {summary.requested} sessions: every "
                   "item has k machine answers (people's k is counted apart)")


@machine.command("calibrate")
@click.option("--study", "study_id", type=int, required=True,
              help="A 2-AFC study with answers from people.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for calibration.png and calibration.json "
                   "(default: <data dir>/machine/study-<ID>).")
@click.option("--embedding", default="efficientnet_lite2", show_default=True,
              help="Embedding network (α is on its scale; rate with the same one).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="Resamples of directions for the correlation's interval.")
@click.option("--seed", type=int, default=0, show_default=True, help="The bootstrap's seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@pass_cli
def calibrate(cli: CliContext, study_id: int, output: Path | None, embedding: str, n_boot: int,
              seed: int, batch_size: int) -> None:
    """Fit the machine's α and lapse to people's answers; show how well it predicts them."""
    import json
    from dataclasses import asdict

    from analysis.machine_calibration import (
        calibration_report,
        correlation_text,
        plot_calibration,
    )
    from service.cli.machine_study import (
        CALIBRATION_FIGURE,
        CALIBRATION_NUMBERS,
        calibration_folder,
        study_cache,
    )
    from service.featurevis.embeddings import EmbeddingError
    from service.studies.errors import StudyError
    from service.studies.machine.calibrate import calibrate_study, check_calibration_request
    from service.studies.machine.score import ScoreError

    engine = cli.engine()
    folder = output or calibration_folder(cli, study_id)
    try:
        check_calibration_request(engine, study_id)  # before the network loads
        found = calibrate_study(engine, study_id, study_cache(cli, embedding, batch_size))
    except (StudyError, EmbeddingError, ScoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    fit = found.fit
    report = calibration_report(found.p, found.answers.correct, found.answers.stimulus_id,
                                bootstrap=n_boot, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    figure = plot_calibration(report, folder / CALIBRATION_FIGURE,
                              f"study {study_id}, {found.embedding}: α = {fit.alpha:.4g}, "
                              f"λ = {fit.lapse:.3g}, n = {fit.n}")
    numbers = {"study_id": study_id, "embedding": found.embedding, **asdict(fit),
               "correlation": report.correlation, "ci": report.ci, "bootstrap": n_boot,
               "seed": seed, "n_directions": len(report.directions.direction),
               "bins": [asdict(b) for b in report.bins]}
    (folder / CALIBRATION_NUMBERS).write_text(json.dumps(numbers, indent=2) + "\n")
    click.echo(f"study {study_id}: α = {fit.alpha:.4g}, λ = {fit.lapse:.3g}, n = {fit.n} answers "
               f"from people ({found.embedding}); stored, later machine rate runs use it")
    click.echo(f"people's accuracy vs MIS per direction: {correlation_text(report)}")
    curve = ", ".join(f"{b.predicted:.2f}→{b.observed:.2f} ({b.n})" for b in report.bins)
    click.echo(f"calibration (predicted → observed, answers): {curve}")
    click.echo(f"wrote {figure} and {folder / CALIBRATION_NUMBERS}")
