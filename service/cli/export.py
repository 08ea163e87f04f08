"""`fvlab export ratings|sessions`: the study's data as CSV or Parquet files.

pandas is imported inside `service.studies.export`'s functions, so attaching this group keeps
`fvlab --help` fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.context import CliContext, pass_cli
from service.studies.ratings_file import FORMATS, format_for


@click.group("export")
def export() -> None:
    """Export ratings or sessions (practice trials are never exported)."""


@export.command("ratings")
@click.option("--study", "study_id", type=int, default=None, help="Only this study (default: all).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format (default: from the file name, else csv).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@pass_cli
def export_ratings(cli: CliContext, study_id: int | None, fmt: str | None, output: Path) -> None:
    """One row per rating, in the columns `fvlab analyze --ratings` reads."""
    from service.studies.export import ExportError, ratings_frame, write_frame

    engine = cli.engine()
    try:
        frame = ratings_frame(engine, study_id)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    write_frame(frame, output, format_for(output, fmt))
    click.echo(f"wrote {len(frame)} ratings to {output}")


@export.command("sessions")
@click.option("--study", "study_id", type=int, default=None, help="Only this study (default: all).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format (default: from the file name, else csv).")
@click.option("--include-external-ids", is_flag=True,
              help="Add annotators' Prolific/MTurk ids (personal data; off by default).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@pass_cli
def export_sessions(
    cli: CliContext, study_id: int | None, fmt: str | None, include_external_ids: bool, output: Path
) -> None:
    """One row per session: annotator, start, finish, time on instructions, catch score, status."""
    from service.studies.export import ExportError, sessions_frame, write_frame

    engine = cli.engine()
    try:
        frame = sessions_frame(engine, study_id, include_external_ids=include_external_ids)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    write_frame(frame, output, format_for(output, fmt))
    click.echo(f"wrote {len(frame)} sessions to {output}")
