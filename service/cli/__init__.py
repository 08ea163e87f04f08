"""The `fvlab` command line: one click group, one module per verb group.

The group callback reads the settings once into `ctx.obj` (a `CliContext`); verbs never read
the environment or build an engine themselves. Heavy imports (torch, pandas, Flask) happen
inside each command so that `fvlab --help` is fast.
"""

from __future__ import annotations

import sys

import click

from service.cli.admin import admin
from service.cli.analysis import analyze, power, simulate
from service.cli.context import CliContext
from service.cli.database import db
from service.cli.demo import demo
from service.cli.export import export
from service.cli.images import images
from service.cli.jobs import generate, jobs, worker
from service.cli.machine import machine
from service.cli.models import models
from service.cli.serve import serve
from service.cli.study import study
from service.config import ConfigError, read_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fvlab")
@click.pass_context
def fvlab(ctx: click.Context) -> None:
    """fvlab: are a network's neurons more interpretable than random directions?"""
    ctx.obj = CliContext(read_settings())


for _command in (db, admin, serve, generate, worker, jobs, study, export, analyze, simulate,
                 power, models, demo, machine):
    fvlab.add_command(_command)
fvlab.add_command(images)


def main() -> None:
    try:
        fvlab(prog_name="fvlab")
    except ConfigError as exc:  # a setting first read deep inside a command
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
