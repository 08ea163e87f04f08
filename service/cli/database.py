"""`fvlab db upgrade`: create or upgrade the database schema."""

from __future__ import annotations

import click

from service.cli.context import CliContext, pass_cli


@click.group()
def db() -> None:
    """Database schema: create and upgrade."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def db_upgrade(cli: CliContext, revision: str) -> None:
    """Create or upgrade the database schema to the latest version."""
    from sqlalchemy.exc import DBAPIError

    from service.store.migrate import current_revision, describe, unreachable, upgrade

    engine = cli.engine(check_schema=False)  # creates the SQLite folder when needed
    try:
        upgrade(cli.database_url, revision)
        reached = current_revision(engine)
    except DBAPIError as exc:
        raise click.ClickException(str(unreachable(engine, exc))) from exc
    finally:
        engine.dispose()
    click.echo(f"migrated {describe(engine)}: schema at revision {reached}")
