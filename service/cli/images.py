"""`fvlab images`: natural photo sets that directions are scored on (their exemplars)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.cli.context import CliContext, pass_cli

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


@click.group()
def images() -> None:
    """Image sets: natural photos for exemplars and 2-AFC queries."""


@images.command("add")
@click.argument("name")
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--limit", type=int, default=None, help="Import at most N images.")
@click.option("--recursive", is_flag=True, help="Also import images in subfolders.")
@pass_cli
def images_add(
    cli: CliContext, name: str, folder: Path | None, limit: int | None, recursive: bool
) -> None:
    """Import the photos in DIR as image set NAME (short side 256, centre crop 224).

    Unreadable files are skipped and counted. Without DIR, NAME must be `photos`: crops of
    the photos bundled with fvlab's dependencies, for demos and tests, too few for a study.
    """
    from service.store.image_sets import BUILTIN, ImageSetError, add_builtin, add_folder

    if folder is None and name != BUILTIN:
        raise click.UsageError(f"DIR is needed; only the built-in set {BUILTIN!r} has none")
    if folder is not None and name == BUILTIN:
        raise click.UsageError(f"{BUILTIN!r} is the built-in set; give the folder another name")
    if folder is None and (limit is not None or recursive):
        raise click.UsageError("--limit and --recursive apply to a DIR only")
    engine = cli.engine()
    bars: list[ProgressBar[int]] = []

    def progress(done: int, total: int) -> None:
        if not bars:  # opened on the first file, so refused input prints only its error
            bars.append(click.progressbar(length=total, label=f"importing {name}",
                                          show_pos=True, file=sys.stderr))
            bars[0].__enter__()
        bars[0].update(done - bars[0].pos)

    try:
        if folder is None:
            result = add_builtin(engine, progress=progress)
        else:
            result = add_folder(engine, name, folder, limit=limit, recursive=recursive,
                                progress=progress)
    except ImageSetError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    for line in result.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(
        f"image set {name}: {result.count} images, {len(result.skipped)} files skipped, "
        f"{result.duplicates} duplicates left out"
    )


@images.command("list")
@pass_cli
def images_list(cli: CliContext) -> None:
    """List image sets with their status, size and source."""
    from service.store.image_sets import list_sets

    sets = list_sets(cli.engine())
    if not sets:
        click.echo("no image sets (fvlab images add photos makes the built-in one)")
        return
    click.echo(f"{'name':<20}{'status':<11}{'images':>8}{'MB':>9}{'KB/image':>10}  source")
    for s in sets:
        per_image = s.bytes / s.count / 1024 if s.count else 0.0
        click.echo(f"{s.name:<20}{s.status:<11}{s.count:>8}{s.bytes / 1e6:>9.1f}"
                   f"{per_image:>10.1f}  {s.source}")


@images.command("remove")
@click.argument("name")
@pass_cli
def images_remove(cli: CliContext, name: str) -> None:
    """Delete image set NAME (refused while a job's exemplars come from it)."""
    from service.store.image_sets import ImageSetError, remove_set

    try:
        remove_set(cli.engine(), name)
    except ImageSetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed image set {name}")
