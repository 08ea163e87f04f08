"""`fvlab serve`: the annotation site in one process (gunicorn for production)."""

from __future__ import annotations

import click

from service.cli.context import CliContext, pass_cli


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_cli
def serve(cli: CliContext, host: str, port: int) -> None:
    """Run the annotation site (for production: gunicorn -c python:annotate.gunicorn_conf
    'annotate:create_app()')."""
    from annotate import create_app

    cli.setting("secret_key")
    cli.engine().dispose()  # refuse to start on a database without the current schema
    create_app().run(host=host, port=port, threaded=True, use_reloader=False)
