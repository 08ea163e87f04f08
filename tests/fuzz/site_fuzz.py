"""Fuzzing every JSON route of the site: generated paths, methods, queries, headers and bodies.

`JsonSite` builds the site on a database with a study, an annotator mid-session (plus a second
one, whose trial tokens are "someone else's") and a signed-in researcher. `requests()` draws a
request for one of the app's JSON routes, as listed by its own URL map (/api/…, *.json,
/healthz), or for a random path under /api/, sent by one of the three browsers; or one of the
console's requests that read numbers and redirect targets from their input (a study's page, the
study form's job ids, the sign-in's `next`), with the shapes that once gave server errors among
the values: digits that `str.isdigit` accepts and `int` refuses (², ①), ids beyond any database
integer, and text with CR/LF. `check()` sends it and reports any break of the rules: never a
5xx, a rejected request (4xx) changes no row of any table, and errors under /api/ are JSON. The
test runs a few hundred cases; bench/fuzz.py runs thousands with the same code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from annotate import create_app
from service.store.db import make_engine
from service.store.models import Base, Job, ResearcherLogin
from tests.annotate.admin_support import PASSWORD, RESEARCHER, csrf, sign_in
from tests.annotate.conftest import SECRET, make_study, start
from tests.conftest import create_schema

PLACEHOLDER = re.compile(r"<(?:([^:>]+):)?(\w+)(?:\([^)]*\))?>")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HEADER_NAMES = ("Content-Type", "Accept", "Accept-Encoding", "Content-Encoding", "Cookie",
                "Origin", "Referer", "X-CSRF-Token", "X-Forwarded-For", "X-Forwarded-Proto",
                "X-Forwarded-Host", "X-Requested-With", "User-Agent")
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
# Any text, but "?" and "#" percent-encoded, as a browser sends them inside a path.
url_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).map(
    lambda s: s.replace("?", "%3F").replace("#", "%23"))
# Numbers as crafted input writes them: digits `int` refuses, ids beyond any integer column,
# signs, blanks and line breaks around real numbers.
odd_numbers = (st.sampled_from(["²", "¹", "①", "٣", "𝟙", "1²", "9" * 23, "-1", "+5", " 5",
                                "5\r\n", "0x10", "1e3", ""])
               | st.integers(0, 10**25).map(str))
line_breaking = st.text(st.sampled_from("\r\n\x00\x7f\t /:?#@adminjobs"), max_size=20)
redirect_targets = (odd_numbers | url_text | line_breaking
                    | st.tuples(st.sampled_from(["/admin", "/admin/jobs", "//", "/"]),
                                line_breaking).map("".join))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner,
                                                                max_size=5),
    max_leaves=10,
)
valid_rating = st.fixed_dictionaries(
    {"interpretable": st.booleans(), "confidence": st.integers(1, 5),
     "rt_ms": st.integers(1, 3_600_000)}, optional={"label": st.none() | st.text(max_size=200)})
rating_like = valid_rating | st.fixed_dictionaries(  # valid, or fields off, or junk
    {"interpretable": st.booleans() | json_values,
     "confidence": st.integers(-1, 6) | json_values,
     "rt_ms": st.integers(-5, 4_000_000) | json_values},
    optional={"label": st.none() | st.text(max_size=220) | json_values, "extra": json_values},
)


@dataclass
class JsonSite:
    app: Flask
    engine: Engine
    clients: dict[str, FlaskClient]  # "newcomer" is a fresh browser for every request
    values: dict[str, list[str]]  # real values for each URL variable
    rules: list[tuple[str, tuple[str, ...]]]  # (rule, methods) of every JSON route
    statuses: Counter[int] = field(default_factory=Counter)


def json_rules(app: Flask) -> list[tuple[str, tuple[str, ...]]]:
    rules = [(rule.rule, tuple(sorted(rule.methods or ())))
             for rule in app.url_map.iter_rules()
             if rule.rule.startswith("/api/") or rule.rule.endswith(".json")
             or rule.endpoint == "health.healthz"]
    return sorted(rules)


def build_site(db_url: str) -> JsonSite:
    """A study with one annotator mid-session, another one, and a signed-in researcher."""
    engine = make_engine(db_url)
    create_schema(engine)
    info = make_study(engine, trials=12, practice=2)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    annotator, other, researcher = app.test_client(), app.test_client(), app.test_client()
    start(annotator, info.slug)
    start(other, info.slug)
    sign_in(researcher, engine)
    tokens = [t["token"] for c in (annotator, other)
              for t in c.get("/api/v1/trials?limit=50").get_json()["trials"]]
    with engine.connect() as conn:
        job_ids = [str(job_id) for job_id in conn.scalars(select(Job.id))]
    values = {"token": tokens, "study_id": [str(info.id)], "job_id": job_ids}
    return JsonSite(app, engine, {"anonymous": app.test_client(), "annotator": annotator,
                                  "researcher": researcher}, values, json_rules(app))


@st.composite
def console_requests(draw: st.DrawFn, site: JsonSite) -> dict[str, Any]:
    """A console request whose numbers or redirect target are drawn from crafted shapes."""
    study_id = draw(odd_numbers | st.sampled_from(site.values["study_id"]))
    shape = draw(st.sampled_from(["study page", "study form", "sign in", "signed-in next"]))
    base = {"kind": "researcher", "method": "GET", "query": {}, "headers": {}, "body": None}
    if shape == "study page":
        suffix = draw(st.sampled_from(["", "/progress.json", "/stimuli", "/export/ratings.csv"]))
        return {**base, "path": f"/admin/studies/{study_id}{suffix}"}
    if shape == "study form":
        form = {"job": draw(st.lists(odd_numbers | st.sampled_from(site.values["job_id"]),
                                     min_size=1, max_size=3)),
                "name": "Pictures", "question": "Is it a thing?",
                **{name: draw(st.sampled_from(["1", "5"]) | odd_numbers)
                   for name in ("ratings_per_item", "trials_per_session", "catch_every",
                                "practice_count")}}
        return {**base, "method": "POST", "path": "/admin/studies", "form": form, "csrf": True}
    target = draw(redirect_targets)
    if shape == "signed-in next":
        return {**base, "path": "/admin/login", "query": {"next": target}}
    return {**base, "kind": "newcomer", "method": "POST", "path": "/admin/login", "csrf": True,
            "form": {"name": RESEARCHER, "password": PASSWORD, "next": target}}


@st.composite
def requests(draw: st.DrawFn, site: JsonSite) -> dict[str, Any]:
    """One request: who sends it, method, path, query, headers and body. Half of them look
    like the page's own rating POST (a real trial token, a rating-shaped body), so that the
    paths behind the checks (stored, out of order, repeated, bad field) are reached too; one in
    five is a console request with crafted numbers or redirect targets."""
    if draw(st.integers(0, 4)) == 0:
        return draw(console_requests(site))
    if draw(st.booleans()):
        token = draw(st.sampled_from(site.values["token"]))
        return {"kind": draw(st.sampled_from(["annotator", "annotator", "anonymous"])),
                "method": "POST", "path": f"/api/v1/trials/{token}/rating", "query": {},
                "headers": draw(st.dictionaries(st.sampled_from(HEADER_NAMES[1:]), header_text,
                                                max_size=2)),
                "body": draw(rating_like)}
    # Routes that write are drawn more often: there a refused request could change rows.
    writers = [(rule, methods) for rule, methods in site.rules if "POST" in methods]
    rule, methods = draw(st.sampled_from(site.rules) | st.sampled_from(writers))
    if draw(st.integers(0, 9)) == 0:
        rule = "/api/" + draw(url_text).replace("<", "")

    def fill(match: re.Match[str]) -> str:
        real = site.values.get(match[2], ["1"])
        if match[1] == "int":
            return str(draw(st.sampled_from(real) | st.integers(0, 10**25).map(str)))
        return draw(st.sampled_from(real) | st.sampled_from(real)
                    | url_text.filter(lambda s: "/" not in s))

    path = PLACEHOLDER.sub(fill, rule)
    kind = draw(st.sampled_from(["anonymous", "annotator", "annotator", "researcher"]))
    method = draw(st.sampled_from(methods) | st.sampled_from(methods) | st.sampled_from(METHODS))
    query = draw(st.dictionaries(st.sampled_from(["limit", "next", "q"]) | url_text,
                                 st.integers(-3, 60).map(str) | odd_numbers | url_text,
                                 max_size=3))
    headers = draw(st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=4))
    body = draw(st.one_of(st.none(), rating_like, rating_like, json_values,
                          st.binary(max_size=200)))
    return {"kind": kind, "method": method, "path": path, "query": query, "headers": headers,
            "body": body}


# A sign-in's last use is bookkeeping any request of the researcher may touch, refused or not.
BOOKKEEPING = {ResearcherLogin.__table__.c.last_seen_at}


def snapshot(engine: Engine) -> list[list[tuple]]:
    """Every row of every table, in primary-key order (bookkeeping columns left out)."""
    with engine.connect() as conn:
        return [conn.execute(select(*(c for c in table.columns if c not in BOOKKEEPING))
                             .order_by(*table.primary_key.columns)).all()
                for table in Base.metadata.sorted_tables]


def check(site: JsonSite, request: dict[str, Any]) -> list[str]:
    """Send the request; return what went wrong: a 5xx, a refused request that changed a row,
    or an /api/ error that is not JSON (empty when all is well)."""
    before = snapshot(site.engine)
    body, headers = request["body"], dict(request["headers"])
    client = (site.app.test_client() if request["kind"] == "newcomer"
              else site.clients[request["kind"]])
    kwargs: dict[str, Any] = {}
    if "form" in request:  # a console form, with this browser's CSRF token when asked
        page = "/admin/login" if request["kind"] == "newcomer" else "/admin/studies"
        token = {"csrf_token": csrf(client, page)} if request.get("csrf") else {}
        kwargs = {"data": {**request["form"], **token}}
    elif isinstance(body, bytes):
        kwargs = {"data": body}
    elif body is not None:  # JSON, under the drawn Content-Type if there is one
        kwargs = {"data": json.dumps(body),
                  "content_type": headers.pop("Content-Type", "application/json")}
    try:
        response = client.open(
            request["path"], method=request["method"], query_string=request["query"],
            headers=headers, **kwargs)
    except Exception as exc:  # the test app raises what a server would answer with a 500
        site.statuses[500] += 1
        return [f"server error (unhandled {type(exc).__name__}): {exc}"]
    status = response.status_code
    site.statuses[status] += 1
    problems = []
    if status >= 500:
        problems.append(f"server error {status}: {response.text[:200]}")
    if status >= 400 and snapshot(site.engine) != before:
        problems.append(f"refused with {status} but rows changed")
    if request["path"].startswith("/api/") and status >= 400 and not response.is_json:
        problems.append(f"{status} under /api/ is not JSON")
    if any(char in response.headers.get("Location", "") for char in "\r\n"):
        problems.append(f"server error: a redirect header carries a line break ({status})")
    return problems
