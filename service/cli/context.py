"""What every verb shares: the settings the group loads once, and the engine they name.

The group callback puts one `CliContext` into `ctx.obj`; verbs take it with `@pass_cli`. The
engine is built and checked here, once (reachable, with this fvlab's schema), so every verb
answers a missing or unreachable database with the same single line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.config import ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

@dataclass
class CliContext:
    settings: Settings
    _engine: Engine | None = field(default=None, init=False, repr=False)

    def setting(self, name: str) -> object:
        """A setting, validated now; a bad value ends the command with one line."""
        try:
            return getattr(self.settings, name)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc

    @property
    def database_url(self) -> str:
        return str(self.setting("database_url"))

    @property
    def weights_dir(self) -> Path | None:
        value = self.setting("weights_dir")
        return value if isinstance(value, Path) else None

    def engine(self, *, check_schema: bool = True) -> Engine:
        """The database, checked to be reachable and at this fvlab's schema revision."""
        if self._engine is None:
            from service.store.db import make_engine
            from service.store.migrate import SchemaError, require_current

            engine = make_engine(self.database_url)
            if check_schema:
                try:
                    require_current(engine)
                except SchemaError as exc:
                    engine.dispose()
                    raise click.ClickException(str(exc)) from exc
            self._engine = engine
        return self._engine


pass_cli = click.make_pass_decorator(CliContext)

_skip_teardown = False


def skip_teardown() -> None:
    """Let `fvlab` end this process without the interpreter's teardown once the verb returns.

    For the worker: everything it did is committed when it returns, and tearing down torch and
    Lightning takes seconds on a busy machine, seconds that Ctrl-C should not have to wait for.
    Only the console entry point acts on it, so a verb run in-process (tests) is unaffected.
    """
    global _skip_teardown
    _skip_teardown = True


def teardown_skipped() -> bool:
    return _skip_teardown

