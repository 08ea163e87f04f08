"""Simulated annotators for bench/web_load.py: closed-loop HTTP clients over loopback.

Each client is one browser (its own cookie jar and connection) that makes the requests the
trial page makes (`annotate/static/trial.js`, `choice.js`): the session's state and first
trials once, then per trial only its answer and the next trial's pictures, since every answer's
response carries the next trials. Without think time it answers as fast as the server lets it,
so the run measures the server's capacity. Every request is timed per route; anything but the
expected status (or a transport error) counts as an error. A client stops starting new requests
when the deadline passes and finishes the one in flight, so every acknowledged answer is known
before the database is counted.
"""

from __future__ import annotations

import asyncio
import errno
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from service.store.models import StudyTask

REQUEST_TIMEOUT_S = 30.0
ERROR_PAUSE_S = 0.1  # after a failed request, as the page's own retry loop waits
RETRIES = 5  # sends of one answer before the client gives its session up
RATING = {"interpretable": True, "confidence": 3, "label": None, "rt_ms": 900}
CHOICE = {"choice": 0, "confidence": 2, "rt_ms": 900}
AHEAD = 2  # the trials the page asks for when it opens: the one due and the next


@dataclass
class Tally:
    """Latencies (ms) per route, errors by kind, and acknowledged writes."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acknowledged: int = 0
    reconnects: int = 0  # requests resent once after the server closed an idle connection

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    def percentiles(self) -> dict[str, tuple[int, float, float, float]]:
        """{route: (count, p50, p95, p99)} in milliseconds."""
        table = {}
        for route, values in sorted(self.latencies.items()):
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            table[route] = (len(values), float(p50), float(p95), float(p99))
        return table


def _stale_connection(exc: Exception) -> bool:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    return (not isinstance(exc, aiohttp.ClientConnectorError)
            and getattr(exc, "errno", None) in (errno.ECONNRESET, errno.EPIPE))


class Client:
    """One browser; `call` times a request and checks its status."""

    def __init__(self, base: str, tally: Tally) -> None:
        self.base, self.tally = base, tally
        self.http = aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # 127.0.0.1 is an IP address
        )

    async def call(self, route: str, method: str, path: str, expect: tuple[int, ...],
                   **kwargs: object) -> tuple[int, bytes] | None:
        started = time.perf_counter()
        for attempt in range(2):
            try:
                async with self.http.request(method, path, allow_redirects=False,
                                             **kwargs) as response:  # type: ignore[arg-type]
                    body = await response.read()
                    status = response.status
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # The server closed a kept-alive connection just as the request went out on
                # it (seen as a disconnect or a reset); browsers resend such a request once on a
                # new connection, and so do we. A connection that cannot be made is an error.
                if attempt == 0 and _stale_connection(exc):
                    self.tally.reconnects += 1
                    continue
                self.tally.errors[f"{route}: {type(exc).__name__}"] += 1
                return None
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.tally.errors[f"{route}: {type(exc).__name__}"] += 1
                return None
        self.tally.latencies[route].append((time.perf_counter() - started) * 1000)
        if status not in expect:
            self.tally.errors[f"{route}: HTTP {status}"] += 1
            return None
        return status, body


async def annotator(base: str, slug: str, task: StudyTask, deadline: float, tally: Tally,
                    think: random.Random | None = None, think_s: float = 0.0) -> None:
    """Enter, consent, read the instructions, then answer trials (practice first) until the
    deadline; a finished session's browser starts afresh as the next annotator. An answer that
    was not acknowledged is sent again, as the page's script does. With `think_s`, the annotator
    looks at each trial for 0.5-1.5 × think_s seconds before answering, as a person would."""
    client = Client(base, tally)
    try:
        while time.monotonic() < deadline:
            client.http.cookie_jar.clear()
            if not await _enter(client, slug):
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            await _trials_page(client, slug, task, deadline, think, think_s)
    finally:
        await client.http.close()


async def _trials_page(client: Client, slug: str, task: StudyTask, deadline: float,
                       think: random.Random | None, think_s: float) -> None:
    """One session's trials page: its state and first trials, then per trial the next trial's
    pictures (preloaded while this one is on screen) and the answer, whose reply lists the
    trials after it. A rating page reports its first trial on screen (`shown`); later ones
    appear the moment the previous answer is stored, so it reports them no more."""
    opened = (await client.call("api session", "GET", "/api/v1/session", (200,))
              and await client.call("api trials", "GET", f"/api/v1/trials?limit={AHEAD}", (200,)))
    if not opened:
        await asyncio.sleep(ERROR_PAUSE_S)
        return
    upcoming = json.loads(opened[1])["trials"]
    first = True
    while upcoming and time.monotonic() < deadline:
        trial = upcoming[0]
        for shown in upcoming[:AHEAD] if first else upcoming[1:AHEAD]:  # the rest is loaded
            await _pictures(client, shown)
        if first and task == StudyTask.RATING:
            await client.call("api shown", "POST", trial["shown"], (204,))
        first = False
        if think is not None and think_s > 0:
            await asyncio.sleep(think.uniform(0.5, 1.5) * think_s)
        reply = await _answer(client, task, trial)
        if reply is None:
            return
        upcoming = reply["upcoming"]
    if not upcoming:
        await client.call("page done", "GET", f"/study/{slug}/done", (200,))


async def _pictures(client: Client, trial: dict) -> None:
    for key in ("image", "references", "queries"):
        if trial.get(key):
            await client.call("image", "GET", trial[key], (200,))


async def _answer(client: Client, task: StudyTask, trial: dict) -> dict | None:
    """POST the trial's answer until it is acknowledged (at most RETRIES times); its reply."""
    route, url, body = (("api rating", trial["rating"], RATING) if task == StudyTask.RATING
                        else ("api answer", trial["answer"], CHOICE))
    for _ in range(RETRIES):
        done = await client.call(route, "POST", url, (200, 201), json=body)
        if done:
            client.tally.acknowledged += 1
            return json.loads(done[1])
        await asyncio.sleep(ERROR_PAUSE_S)
    return None


async def _enter(client: Client, slug: str) -> bool:
    steps = (("page consent", "GET", f"/study/{slug}", (200,), {}),
             ("page start", "POST", f"/study/{slug}/start", (302,), {"data": {"consent": "yes"}}),
             ("page instructions", "GET", f"/study/{slug}/instructions", (200,), {}),
             ("page instructions", "POST", f"/study/{slug}/instructions", (302,), {}),
             ("page trials", "GET", f"/study/{slug}/trials", (200,), {}))
    for route, method, path, expect, kwargs in steps:
        if await client.call(route, method, path, expect, **kwargs) is None:
            return False
    return True


async def inserter(base: str, deadline: float, tally: Tally) -> None:
    """The baseline's client: POST one rating after another to the minimal app."""
    client = Client(base, tally)
    try:
        while time.monotonic() < deadline:
            if await client.call("baseline insert", "POST", "/rate", (201,), json=RATING):
                tally.acknowledged += 1
            else:
                await asyncio.sleep(ERROR_PAUSE_S)
    finally:
        await client.http.close()


async def _run_all(make, clients: int) -> None:  # type: ignore[no-untyped-def]
    await asyncio.gather(*(make() for _ in range(clients)))


def run_load(kind: str, base: str, clients: int, seconds: float, slug: str | None = None,
             task: StudyTask = StudyTask.RATING, think_s: float = 0.0) -> tuple[Tally, float]:
    """Run `clients` simulated annotators (kind "site", each thinking `think_s` seconds per
    trial on average) or inserters ("baseline") for `seconds`; returns the tally and the wall
    time including the requests in flight."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    seeds = iter(range(clients))

    def make():  # type: ignore[no-untyped-def]
        if kind == "site":
            assert slug is not None
            return annotator(base, slug, task, deadline, tally, random.Random(next(seeds)),
                             think_s)
        return inserter(base, deadline, tally)

    asyncio.run(_run_all(make, clients))
    return tally, time.monotonic() - started
