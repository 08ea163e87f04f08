"""`fvlab models`: the zoo's models, their visualizable layers, channel counts and sizes.

Shapes come from the architecture alone (random-init weights), so every model can be listed
whether or not its weight file is present; the weights line says where the real weights are
or where to put them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli.context import CliContext, pass_cli

if TYPE_CHECKING:
    from service.featurevis.zoo import WeightsNotFound


def _missing(exc: WeightsNotFound) -> str:
    """Where to put the file, in this command's own words (it has --weights-dir, not --weights)."""
    folder = exc.folder or "the folder FVLAB_WEIGHTS_DIR or --weights-dir names"
    return (
        f"none found: put {exc.filename} in {folder} or in {exc.hub}; "
        "`fvlab generate --weights random` renders a random-init control without them"
    )


@click.command("models")
@click.option(
    "--size", default=128, show_default=True, type=int, help="Input size for spatial sizes."
)
@click.option(
    "--model", "names", multiple=True, help="Only these models (repeatable; default: all)."
)
@click.option(
    "--weights-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of torchvision weight files (default: FVLAB_WEIGHTS_DIR).",
)
@pass_cli
def models(cli: CliContext, size: int, names: tuple[str, ...], weights_dir: Path | None) -> None:
    """List models, layers, channel counts and spatial size at --size px."""
    from service.featurevis.zoo import (
        MODEL_NAMES,
        ModelError,
        WeightsNotFound,
        find_weights,
        load_model,
    )

    if size < 1:
        raise click.BadParameter(f"must be at least 1 pixel, got {size}", param_hint="--size")
    for name in names:
        if name not in MODEL_NAMES:
            raise click.ClickException(f"unknown model {name!r}; models: {', '.join(MODEL_NAMES)}")
    if weights_dir is None:
        weights_dir = cli.weights_dir  # a bad FVLAB_WEIGHTS_DIR ends the command in one line
    for name in names or MODEL_NAMES:
        try:
            weights = f"weights: {find_weights(name, weights_dir)}"
        except WeightsNotFound as exc:
            weights = f"weights: {_missing(exc)}"
        except ModelError as exc:
            weights = f"weights: {exc}"
        try:
            layers = load_model(name, weights="random").describe(size)
        except ModelError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{name}  ({weights})")
        click.echo(f"  {'layer':<14}{'channels':>9}  size at {size}px")
        for info in layers:
            click.echo(f"  {info.name:<14}{info.channels:>9}  {info.height}×{info.width}")
