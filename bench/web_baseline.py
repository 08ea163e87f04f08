"""The baseline for bench/web_load.py: the least a rating endpoint can do.

One Flask app, one route, `POST /rate`, which stores the JSON body's fields with one INSERT
through the same SQLAlchemy engine setup the site uses (`service.store.db.make_engine`), served by
gunicorn with the same settings. The site's throughput is reported as a fraction of this one's.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table

from service.store.db import make_engine

metadata = MetaData()
baseline_ratings = Table(
    "baseline_ratings", metadata,
    Column("id", Integer, primary_key=True),
    Column("interpretable", Boolean, nullable=False),
    Column("confidence", Integer, nullable=False),
    Column("label", String(200)),
    Column("rt_ms", Integer, nullable=False),
)


def create_app() -> Flask:
    """The minimal app on FVLAB_DATABASE_URL (the table is made by the benchmark)."""
    app = Flask(__name__)
    engine = make_engine(os.environ["FVLAB_DATABASE_URL"])

    @app.post("/rate")
    def rate():  # type: ignore[no-untyped-def]
        body = request.get_json()
        with engine.begin() as conn:
            conn.execute(baseline_ratings.insert().values(
                interpretable=body["interpretable"], confidence=body["confidence"],
                label=body["label"], rt_ms=body["rt_ms"]))
        return jsonify(ok=True), 201

    return app
