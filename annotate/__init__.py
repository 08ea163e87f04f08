"""The annotation site: a Flask app for annotators (blind rating) and researchers (console)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from annotate import (
    admin,
    afc_api,  # noqa: F401  # adds the 2-AFC answer route to api.bp
    api,
    database,
    errors,
    health,
    images,
    rating_api,  # noqa: F401  # adds the rating route to api.bp
    security,
    study,
)
from annotate.whole_numbers import DatabaseId
from service.config import load_settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the site; `test_config` overrides settings (tests pass DATABASE_URL and friends)."""
    app = Flask(__name__)
    settings = load_settings()
    app.config.from_mapping(
        DATABASE_URL=settings.database_url,
        DATA_DIR=str(settings.data_dir),
        SECRET_KEY=settings.secret_key,
        PROXY_HOPS=settings.proxy_hops,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    app.url_map.converters["int"] = DatabaseId  # before any route is added
    security.init_app(app)
    errors.init_app(app)
    database.init_app(app)
    app.register_blueprint(health.bp)
    for annotator_bp in (study.bp, api.bp, images.bp):
        app.register_blueprint(annotator_bp)
    images.init_app(app)
    admin.init_app(app)
    return app
