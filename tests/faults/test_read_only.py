"""A database that refuses writes: 503 with a clear message, and nothing half-written.

SQLite is frozen with `PRAGMA query_only` on every connection of the site (SQLite's own
read-only refusal), PostgreSQL with `default_transaction_read_only` in the connection options
(what a standby or a frozen primary does). The annotator's rating gets a JSON 503, a newcomer's
consent a 503 page; no row of any table changes. Once writes are back, the same rating with the
same trial token is stored once.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url

from annotate import create_app
from service.store.models import Rating
from tests.annotate.conftest import SECRET, make_study, start
from tests.faults.support import RATING, snapshot


def _frozen_app(db_url: str) -> Flask:
    """The site on the same database, which now refuses every write."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        options = f"{url.query.get('options', '')} -cdefault_transaction_read_only=on".strip()
        db_url = url.update_query_dict({"options": options}).render_as_string(
            hide_password=False)
    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": SECRET})
    if url.get_backend_name() == "sqlite":
        event.listen(app.extensions["fvlab_engine"], "connect",
                     lambda dbapi, _record: dbapi.execute("PRAGMA query_only = ON"))
    return app


def test_read_only_database_answers_503_and_writes_nothing(db_url: str, engine: Engine) -> None:
    info = make_study(engine, practice=0)
    writable = create_app({"DATABASE_URL": db_url, "SECRET_KEY": SECRET})
    client = writable.test_client()
    start(client, info.slug)
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    before = snapshot(engine)

    frozen = _frozen_app(db_url)
    annotator = frozen.test_client()
    annotator.set_cookie("session", client.get_cookie("session").value)  # same browser
    refused = annotator.post(trial["rating"], json=RATING)
    assert refused.status_code == 503
    assert refused.is_json and "database" in refused.get_json()["error"]
    assert refused.headers["Content-Security-Policy"]

    newcomer = frozen.test_client()
    assert newcomer.get(f"/study/{info.slug}").status_code == 200  # reading still works
    page = newcomer.post(f"/study/{info.slug}/start", data={"consent": "yes"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "try again" in page.text.lower() and "nothing was saved" in page.text
    assert page.headers["Retry-After"]
    assert snapshot(engine) == before

    retried = client.post(trial["rating"], json=RATING)
    assert retried.status_code == 201
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(Rating.id))) == 1
    for app in (writable, frozen):
        app.extensions["fvlab_engine"].dispose()
