"""The server times every answer itself (`server_rt_ms`), beside the page's own `rt_ms`, so a
script that answers in milliseconds while claiming slow answers is still seen as fast. Ratings
are never refused for it: the times go into the export for the analysis to judge.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import Engine, select

from service.store.models import Rating
from service.studies.export import ratings_frame
from tests.annotate.conftest import make_study, start


def _rate(client, trial: dict, rt_ms: int) -> None:  # type: ignore[no-untyped-def]
    stored = client.post(trial["rating"], json={"interpretable": True, "confidence": 3,
                                                "label": None, "rt_ms": rt_ms})
    assert stored.status_code == 201, stored.text


def _times(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Rating.rt_ms, Rating.server_rt_ms).order_by(Rating.id)).all()
    return [(int(rt), int(server)) for rt, server in rows]


def test_the_server_times_answers_whatever_the_page_claims(app: Flask, engine: Engine) -> None:
    info = make_study(engine, practice=0, trials=6, catch_every=0)
    client = app.test_client()
    start(client, info.slug)
    trials = client.get("/api/v1/trials?limit=5").get_json()["trials"]
    for trial in trials[:3]:  # a script: instant answers, each claiming a minute
        _rate(client, trial, 60_000)
    time.sleep(0.3)  # a person: looks, then answers
    _rate(client, trials[3], 280)
    time.sleep(0.3)  # the page reports the next image on screen only now
    assert client.post(trials[4]["shown"]).status_code == 204
    _rate(client, trials[4], 20)

    times = _times(engine)
    assert [rt for rt, _ in times] == [60_000, 60_000, 60_000, 280, 20]
    assert all(server < 1_000 for _, server in times[1:3])  # fast, whatever rt_ms said
    assert 300 <= times[3][1] < 5_000  # measured from the previous answer
    assert times[4][1] < 300  # measured from the report that the image is on screen

    frame = ratings_frame(engine, info.id)
    assert list(frame.columns).index("server_rt_ms") > list(frame.columns).index("rt_ms")
    assert [int(v) for v in frame["server_rt_ms"]] == [server for _, server in times]
