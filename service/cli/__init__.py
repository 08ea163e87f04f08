"""The `fvlab` command line: one click group, one module per verb group.

The group callback reads the settings once into `ctx.obj` (a `CliContext`); verbs never read
the environment or build an engine themselves. Heavy imports (torch, pandas, Flask) happen
inside each command so that `fvlab --help` is fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from service.cli.context import CliContext, teardown_skipped
from service.config import ConfigError, read_settings

# verb → "module:command" under service.cli. A verb's module is imported only when the verb runs
# (or when help lists it), so that `fvlab analyze --ratings FILE` loads neither the ORM nor
# torch, and a slow import in one verb's module slows no other verb.
VERBS = {
    "db": "database:db",
    "admin": "admin:admin",
    "serve": "serve:serve",
    "generate": "jobs:generate",
    "worker": "jobs:worker",
    "jobs": "jobs:jobs",
    "study": "study:study",
    "export": "export:export",
    "analyze": "analysis:analyze",
    "simulate": "analysis:simulate",
    "power": "analysis:power",
    "models": "models:models",
    "demo": "demo:demo",
    "machine": "machine:machine",
    "images": "images:images",
}


class _Verbs(click.Group):
    """A click group whose verbs are imported from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(VERBS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in VERBS:
            module, name = VERBS[cmd_name].split(":")
            command = getattr(importlib.import_module(f"service.cli.{module}"), name)
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_Verbs, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fvlab")
@click.pass_context
def fvlab(ctx: click.Context) -> None:
    """fvlab: are a network's neurons more interpretable than random directions?"""
    ctx.obj = CliContext(read_settings())


def main() -> None:
    try:
        fvlab(prog_name="fvlab")
    except ConfigError as exc:  # a setting first read deep inside a command
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except SystemExit as exc:
        if not teardown_skipped():
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
