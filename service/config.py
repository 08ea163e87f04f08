"""Settings read from the environment.

Every part of fvlab (CLI, worker, site, analysis loader) reads the same variables, so a
deployment is configured in one place. A bad value stops the program with one line, because a
worker that starts against the wrong database silently renders into nowhere. Each setting is
checked when it is first used, so a verb is never refused over a setting it does not read (a
bad weights folder does not stop `fvlab jobs`); `load_settings` checks them all at once for the
long-running processes (the site) that use every one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
DEFAULT_DATA_DIR = "var"
MIN_SECRET_KEY_LENGTH = 16
MAX_PROXY_HOPS = 5


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line meant for the user."""


def _parse_database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"FVLAB_DATABASE_URL is not a database URL: {raw!r}") from exc
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"FVLAB_DATABASE_URL uses {url.get_backend_name()!r}; "
            f"fvlab supports {', '.join(SUPPORTED_BACKENDS)}"
        )
    if url.get_backend_name() == "postgresql" and url.get_driver_name() not in ("psycopg",):
        raise ConfigError(
            "FVLAB_DATABASE_URL for PostgreSQL must use the psycopg driver: "
            "postgresql+psycopg://user@host/db"
        )
    return url


@dataclass(frozen=True)
class Settings:
    """The `FVLAB_*` variables of one environment, each validated on first access."""

    env: Mapping[str, str] = field(repr=False)

    @cached_property
    def data_dir(self) -> Path:
        data_dir = Path(self.env.get("FVLAB_DATA_DIR") or DEFAULT_DATA_DIR)
        if data_dir.exists() and not data_dir.is_dir():
            raise ConfigError(f"FVLAB_DATA_DIR {str(data_dir)!r} exists and is not a directory")
        return data_dir

    @cached_property
    def database_url(self) -> str:
        raw_url = self.env.get("FVLAB_DATABASE_URL") or f"sqlite:///{self.data_dir / 'fvlab.db'}"
        url = _parse_database_url(raw_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            parent = Path(url.database).parent
            if parent.exists() and not parent.is_dir():
                raise ConfigError(f"the SQLite file's folder {str(parent)!r} is not a directory")
        return raw_url

    @cached_property
    def secret_key(self) -> str | None:
        secret_key = self.env.get("FVLAB_SECRET_KEY") or None
        if secret_key is not None and len(secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"FVLAB_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long"
            )
        return secret_key

    @cached_property
    def weights_dir(self) -> Path | None:
        weights_raw = self.env.get("FVLAB_WEIGHTS_DIR") or None
        weights_dir = Path(weights_raw) if weights_raw else None
        if weights_dir is not None and not weights_dir.is_dir():
            raise ConfigError(f"FVLAB_WEIGHTS_DIR {weights_raw!r} is not an existing directory")
        return weights_dir

    @cached_property
    def proxy_hops(self) -> int:
        """How many proxies in front of the site set X-Forwarded-* headers that the site may
        trust; 0 (the default) ignores those headers, which any client can send."""
        raw = (self.env.get("FVLAB_PROXY_HOPS") or "0").strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_PROXY_HOPS:
            raise ConfigError(
                f"FVLAB_PROXY_HOPS must be a whole number from 0 to {MAX_PROXY_HOPS} (the "
                f"proxies in front of the site), got {raw!r}"
            )
        return int(raw)

    @property
    def backend(self) -> str:
        return make_url(self.database_url).get_backend_name()

    def check_all(self) -> Settings:
        """Validate every setting now; for processes that will use them all."""
        for name in ("data_dir", "database_url", "secret_key", "weights_dir", "proxy_hops"):
            getattr(self, name)
        return self


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of `env` (default: the process environment), checked as each is used."""
    return Settings(dict(os.environ if env is None else env))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises ConfigError with a one-line message."""
    return read_settings(env).check_all()
