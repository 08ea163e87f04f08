"""A real Chromium (Debian's) against the site served on 127.0.0.1 from a thread.

The browser tests skip when /usr/bin/chromium is missing, unless FVLAB_REQUIRE_BROWSER=1 (set by
CI after installing it) turns that into a failure. The site runs on a temporary SQLite database
with a study made as in tests/annotate, and answers with a strict Content-Security-Policy so that
any inline script or handler would break the page here first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from sqlalchemy import Engine
from werkzeug.serving import make_server

from annotate import create_app
from service.store.db import make_engine
from tests.annotate.conftest import SECRET, StudyInfo, make_study
from tests.conftest import create_schema

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("FVLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FVLAB_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass(frozen=True)
class LiveSite:
    url: str
    engine: Engine
    app: Flask

    def study(self, **options: Any) -> StudyInfo:
        return make_study(self.engine, **options)


def _strict_csp(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", STRICT_CSP)
    return response


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LiveSite]:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    engine = make_engine(url)
    create_schema(engine)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET})
    app.after_request(_strict_csp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveSite(f"http://127.0.0.1:{server.port}", engine, app)
    server.shutdown()
    thread.join(timeout=10)
    app.extensions["fvlab_engine"].dispose()
    engine.dispose()
