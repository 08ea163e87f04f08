"""What `fvlab machine rate` and `fvlab machine calibrate` share: the embedding cache under the
data dir, progress lines, and where calibration writes by default.

Imported inside those commands only, so `fvlab --help` never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from service.cli.context import CliContext
from service.cli.machine import EMBEDDINGS_FOLDER
from service.featurevis.embeddings import EmbeddingCache, load_embedder

CALIBRATION_FOLDER = "machine"  # under the data dir: machine/study-<ID>/, calibrate's default -o
CALIBRATION_FIGURE = "calibration.png"
CALIBRATION_NUMBERS = "calibration.json"
PROGRESS_STEPS = 10  # progress lines a rate run prints at most


def study_cache(cli: CliContext, embedding: str, batch_size: int) -> EmbeddingCache:
    """The embedding network by name, behind the data dir's on-disk embedding cache."""
    embedder = load_embedder(embedding, weights_dir=cli.weights_dir)
    return EmbeddingCache(embedder, data_dir(cli) / EMBEDDINGS_FOLDER, batch_size)


def data_dir(cli: CliContext) -> Path:
    return Path(str(cli.setting("data_dir")))


def calibration_folder(cli: CliContext, study_id: int) -> Path:
    return data_dir(cli) / CALIBRATION_FOLDER / f"study-{study_id}"


def progress_printer() -> Callable[[int, int], None]:
    """A `rate_study` progress callback printing to stderr at most PROGRESS_STEPS + 1 times."""
    shown: set[int] = set()

    def report(done: int, total: int) -> None:
        step = done * PROGRESS_STEPS // total if total else PROGRESS_STEPS
        if step not in shown:
            shown.add(step)
            click.echo(f"answered {done}/{total} trials", err=True)

    return report
