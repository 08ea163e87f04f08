"""A browser for the fault tests: real HTTP over loopback, with cookies, retrying as the page does.

`rate_until_stored` is the trial page's retry loop (annotate/static/session_client.js) in
Python: the same trial token and body are sent again after a transport error, a 429 or any 5xx,
until the server answers 201 (stored now) or 200 (stored by an earlier attempt whose answer was
lost). `snapshot` is what a refused write must leave untouched: every rating, every trial's served
and answered times, every session, and the number of annotators.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.cookiejar import CookieJar
from typing import Any, NamedTuple

from flask import Flask
from sqlalchemy import Engine, func, select
from werkzeug.serving import make_server

from service.store.models import AnnotationSession, Annotator, Rating, Trial

RATING = {"interpretable": True, "confidence": 4, "label": "a dog", "rt_ms": 1200}
TRANSPORT_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                    TimeoutError)


class Snapshot(NamedTuple):
    ratings: Sequence[Any]
    trials: Sequence[Any]  # id, answered and served times
    sessions: Sequence[Any]
    annotators: int


def snapshot(engine: Engine) -> Snapshot:
    """The rows an annotator's writes touch, to compare before and after a refused request."""
    with engine.connect() as conn:
        return Snapshot(
            conn.execute(select(Rating.__table__)).all(),
            conn.execute(select(Trial.id, Trial.answered_at, Trial.served_at)).all(),
            conn.execute(select(AnnotationSession.__table__)).all(),
            conn.scalar(select(func.count(Annotator.id))) or 0,
        )


class Browser:
    """Cookies and redirects like a browser; every answer is (status, body), never raised."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, bytes]:
        data, headers = None, {"Accept": "application/json"}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def enter(self, slug: str) -> None:
        """Consent and read the instructions, as a person would."""
        for method, path, form in (("GET", f"/study/{slug}", None),
                                   ("POST", f"/study/{slug}/start", {"consent": "yes"}),
                                   ("POST", f"/study/{slug}/instructions", {})):
            status, page = self.request(method, path, form=form)
            assert status == 200, (path, status, page[:300])

    def next_trial(self) -> dict[str, Any] | None:
        status, data = self.request("GET", "/api/v1/trials?limit=1")
        assert status == 200, (status, data)
        trials = json.loads(data)["trials"]
        return trials[0] if trials else None

    def rate_until_stored(self, url: str, body: dict[str, Any] = RATING,
                          give_up_after: float = 60.0) -> list[int | str]:
        """POST the rating until it is stored; returns what each attempt got."""
        seen: list[int | str] = []
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                status, data = self.request("POST", url, body=body, timeout=10)
            except TRANSPORT_ERRORS as exc:
                seen.append(type(exc).__name__)
            else:
                seen.append(status)
                if status in (200, 201):
                    assert json.loads(data)["rating"]["label"] == body["label"]
                    return seen
                assert status == 429 or status >= 500, (status, data)
            time.sleep(0.2)
        raise AssertionError(f"rating never stored; attempts got {seen}")

    def rate_all(self) -> int:
        """Rate every remaining trial (with retries); returns how many."""
        count = 0
        while (trial := self.next_trial()) is not None:
            assert self.rate_until_stored(trial["rating"])[-1] == 201
            count += 1
        return count


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """The app on a free loopback port, served from a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
