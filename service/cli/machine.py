"""`fvlab machine score`: the machine annotator's answer to 2-AFC trials, before people see them.

torch and pandas are imported inside the command, so attaching this group keeps `fvlab --help`
fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.context import CliContext, pass_cli

EMBEDDINGS_FOLDER = "embeddings"  # under the data dir: each image is embedded once, ever


@click.group("machine")
def machine() -> None:
    """The machine annotator: how well an image embedding answers 2-AFC trials (MIS)."""


@machine.command("score")
@click.option("--trials", "trials_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder of trial_N/references/{max,min}_K.png and "
                   "trial_N/queries/{max,min}.png.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV, or Parquet when the name ends in .parquet.")
@click.option("--embedding", default="efficientnet_lite2", show_default=True,
              help="Embedding network (torchvision ones read local weights; dreamsim needs its "
                   "package and weights).")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Slope α of P = σ(αΔ) (default: uncalibrated, 1/median |Δ| of these trials).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@pass_cli
def score(
    cli: CliContext, trials_dir: Path, output: Path, embedding: str, alpha: float | None,
    batch_size: int,
) -> None:
    """One row per trial: Δ (evidence for the max query) and the machine's P(correct)."""
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
