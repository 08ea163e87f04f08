"""PNGs kept in a site process: the bytes served are the stored ones, read from the database once,
and the cache keeps to its byte limit, least recently used first out."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Engine, event, select

from annotate.png_cache import PngCache
from service.store.models import Image, Stimulus, Trial
from tests.annotate.conftest import make_study, start


def test_the_least_recently_used_png_goes_first() -> None:
    cache = PngCache(limit=10)
    made: list[str] = []

    def make(name: str, size: int) -> Any:
        return lambda: made.append(name) or b"x" * size

    assert cache.get(("a",), make("a", 4)) == b"xxxx"
    cache.get(("b",), make("b", 4))
    cache.get(("a",), make("a", 4))  # a kept, and now the most recently used
    cache.get(("c",), make("c", 4))  # 12 bytes: b goes
    cache.get(("a",), make("a", 4))
    cache.get(("b",), make("b", 4))
    assert made == ["a", "b", "c", "b"]


def test_an_image_is_read_from_the_database_once_per_process(app: Flask,
                                                             engine: Engine) -> None:
    info = make_study(engine, practice=0, catch_every=0)
    client = app.test_client()
    start(client, info.slug)
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    with engine.connect() as conn:
        stored = conn.scalar(select(Image.png).join(Stimulus).join(Trial)
                             .where(Trial.token == trial["token"]))
    statements: list[str] = []
    site_engine = app.extensions["fvlab_engine"]

    @event.listens_for(site_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    first = client.get(trial["image"])
    reads_of_bytes = [s for s in statements if "images.png" in s]
    second = client.get(trial["image"])
    event.remove(site_engine, "before_cursor_execute", _count)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data == stored
    assert len(reads_of_bytes) == 1
    assert [s for s in statements if "images.png" in s] == reads_of_bytes
    assert len(statements) == 3  # which image, its bytes; then which image only
