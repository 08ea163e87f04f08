"""The `fvlab` command line: one click group, every verb of DESIGN.md.

Heavy imports (torch, pandas, Flask) happen inside each command so that `fvlab --help` is fast.
Commands that grow large live in `service/cli_*.py` and are attached here.
"""

from __future__ import annotations

import sys

import click

from service.cli_analysis import analyze, power, simulate
from service.cli_export import export
from service.cli_jobs import generate, jobs, worker
from service.cli_models import models
from service.cli_study import study
from service.config import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    """Load settings; a bad setting ends the command with one line, not a traceback."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fvlab")
def fvlab() -> None:
    """fvlab: are a network's neurons more interpretable than random directions?"""


@fvlab.group()
def db() -> None:
    """Database schema: create and upgrade."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Create or upgrade the database schema to the latest version."""
    from sqlalchemy.exc import OperationalError

    from service.db import make_engine
    from service.migrate import upgrade

    settings = settings_or_exit()
    make_engine(settings.database_url).dispose()  # creates the SQLite folder when needed
    try:
        upgrade(settings.database_url, revision)
    except OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.orig}") from exc
    click.echo(f"database at revision {revision}")


@fvlab.group()
def admin() -> None:
    """Researcher accounts."""


@admin.command("create-user")
@click.argument("name")
@click.password_option(help="Password (asked twice when not given).")
def admin_create_user(name: str, password: str) -> None:
    """Create a researcher account NAME for the /admin console."""
    from service.accounts import AccountError, create_user
    from service.db import make_engine

    settings = settings_or_exit()
    try:
        create_user(make_engine(settings.database_url), name, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created researcher {name!r}")


@fvlab.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Run the annotation site (for production use gunicorn 'annotate:create_app()')."""
    from annotate import create_app

    settings_or_exit()
    create_app().run(host=host, port=port, threaded=True, use_reloader=False)


fvlab.add_command(export)
for _command in (analyze, simulate, power):
    fvlab.add_command(_command)
fvlab.add_command(generate)
fvlab.add_command(worker)
fvlab.add_command(jobs)
fvlab.add_command(study)
fvlab.add_command(models)


def main() -> None:
    try:
        fvlab(prog_name="fvlab")
    except ConfigError as exc:  # raised from code paths outside settings_or_exit
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
