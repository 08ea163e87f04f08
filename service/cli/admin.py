"""`fvlab admin create-user`: researcher accounts for the /admin console."""

from __future__ import annotations

import click

from service.cli.context import CliContext, pass_cli


@click.group()
def admin() -> None:
    """Researcher accounts."""


@admin.command("create-user")
@click.argument("name")
@click.password_option(help="Password (asked twice when not given).")
@pass_cli
def admin_create_user(cli: CliContext, name: str, password: str) -> None:
    """Create a researcher account NAME for the /admin console."""
    from service.store.accounts import AccountError, create_user

    try:
        create_user(cli.engine(), name, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created researcher {name!r}")
