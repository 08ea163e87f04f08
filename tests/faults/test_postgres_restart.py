"""PostgreSQL restarted in the middle of a session: the retried rating is stored exactly once.

The site runs from a thread against a private cluster. After one trial is rated, the server is
stopped; the annotator's next rating meets the outage (503) and is retried with the same trial
token, as the page's script does, while the server comes back. Afterwards every trial of the
session has exactly one rating, the one rated before the restart among them.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from annotate import create_app
from service.store.db import make_engine
from service.store.models import Rating, Trial
from tests.annotate.conftest import SECRET, make_study
from tests.conftest import create_schema
from tests.faults.conftest import PrivateCluster
from tests.faults.support import RATING, Browser, serve


def test_restart_mid_session_loses_and_doubles_nothing(private_postgres: PrivateCluster) -> None:
    engine = make_engine(private_postgres.url)
    create_schema(engine)
    info = make_study(engine, trials=6, catch_every=3, practice=1)
    app = create_app({"DATABASE_URL": private_postgres.url, "SECRET_KEY": SECRET})
    with serve(app) as base:
        browser = Browser(base)
        browser.enter(info.slug)
        first = browser.next_trial()
        assert first is not None
        assert browser.rate_until_stored(first["rating"]) == [201]
        second = browser.next_trial()
        assert second is not None

        private_postgres.stop()
        restarter = threading.Timer(1.0, private_postgres.start)
        restarter.start()
        attempts = browser.rate_until_stored(second["rating"])
        restarter.join()
        assert 503 in attempts and attempts[-1] == 201, attempts
        assert browser.rate_until_stored(second["rating"]) == [200]  # a retry after a lost answer

        rest = browser.rate_all()
    engine.dispose()
    engine = make_engine(private_postgres.url)
    with engine.connect() as conn:
        trials = conn.scalar(select(func.count(Trial.id)))
        ratings = conn.scalar(select(func.count(Rating.id)))
        per_trial = conn.execute(select(Rating.trial_id, func.count()).group_by(Rating.trial_id))
        first_label = conn.scalar(select(Rating.label).join(Trial).where(
            Trial.token == first["token"]))
    assert ratings == trials == 2 + rest
    assert {count for _, count in per_trial} == {1}
    assert first_label == RATING["label"]
    app.extensions["fvlab_engine"].dispose()
    engine.dispose()
