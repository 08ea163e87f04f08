"""What a trial page asks the server for, as Chromium sees it: at most three requests a trial.

`Requests` records every request the page makes (a picture served from the browser's memory
cache is not one). `check_budget` then holds the trials page to its budget: the session's state
and its first trials once when the page opens, and afterwards nothing but each trial's own
requests (its pictures, its answer, and for a rating trial possibly its `shown` report) — at
most three per trial, exactly one answer each.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

BUDGET = 3
START = [("GET", "/api/v1/session"), ("GET", "/api/v1/trials?limit=2")]


class Requests:
    """Every request a page makes, as (method, path with query), in order."""

    def __init__(self, page: Any) -> None:
        self.seen: list[tuple[str, str]] = []
        page.on("request", self._record)

    def _record(self, request: Any) -> None:
        parts = urlsplit(request.url)
        self.seen.append((request.method, parts.path + ("?" + parts.query if parts.query else "")))

    def since(self, path_end: str) -> list[tuple[str, str]]:
        """The requests after the last page load whose path ends with `path_end`."""
        at = max(i for i, (method, path) in enumerate(self.seen)
                 if method == "GET" and path.endswith(path_end))
        return self.seen[at + 1:]


def check_budget(requests: Requests, tokens: list[str], answer_route: str) -> None:
    """The trials page's requests once it loaded: its start, then only the trials' own requests
    (at most BUDGET each, one answer POST each), then the end page."""
    after = [r for r in requests.since("/trials") if "/static/" not in r[1]]
    api = [r for r in after if r[1].startswith("/api/v1/") and "/api/v1/trials/" not in r[1]]
    assert api == START, api  # no state or next-trial request per trial
    per_trial = Counter()
    answers = Counter()
    for method, path in after:
        owner = [t for t in tokens if t in path]
        if owner:
            per_trial[owner[0]] += 1
            answers[owner[0]] += method == "POST" and path.endswith("/" + answer_route)
    assert set(per_trial) == set(tokens)
    assert max(per_trial.values()) <= BUDGET, per_trial
    assert all(answers[t] == 1 for t in tokens), answers
    unexplained = [r for r in after if r not in START and not any(t in r[1] for t in tokens)
                   and not r[1].endswith("/done")]
    assert unexplained == [], unexplained
