"""Settings read once from the environment.

Every part of fvlab (CLI, worker, site, analysis loader) reads the same four variables, so a
deployment is configured in one place. A bad value stops the program at start with one line,
because a worker that starts against the wrong database silently renders into nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line meant for the user."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    secret_key: str | None
    weights_dir: Path | None

    @property
    def backend(self) -> str:
        return make_url(self.database_url).get_backend_name()


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raises ConfigError with a one-line message."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("FVLAB_DATA_DIR") or "var")
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"FVLAB_DATA_DIR {str(data_dir)!r} exists and is not a directory")

    raw_url = env.get("FVLAB_DATABASE_URL") or f"sqlite:///{data_dir / 'fvlab.db'}"
    url = _parse_database_url(raw_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        parent = Path(url.database).parent
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"the SQLite file's folder {str(parent)!r} is not a directory")

    secret_key = env.get("FVLAB_SECRET_KEY") or None
    if secret_key is not None and len(secret_key) < 16:
        raise ConfigError("FVLAB_SECRET_KEY must be at least 16 characters long")

    weights_raw = env.get("FVLAB_WEIGHTS_DIR") or None
    weights_dir = Path(weights_raw) if weights_raw else None
    if weights_dir is not None and not weights_dir.is_dir():
        raise ConfigError(f"FVLAB_WEIGHTS_DIR {weights_raw!r} is not an existing directory")

    return Settings(
        database_url=raw_url,
        data_dir=data_dir,
        secret_key=secret_key,
        weights_dir=weights_dir,
    )
