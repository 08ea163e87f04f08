"""Load benchmark of the annotation site: gunicorn + PostgreSQL, simulated annotators, loopback.

    python bench/web_load.py [--task rating|2afc] [--clients 200] [--seconds 60]
                             [--workers 4] [--threads 4] [--worker-connections 64]
                             [--think-ms 0]

It creates a throwaway database on the local PostgreSQL server, migrates it, writes a study of
the task straight into the store (`bench/web_studies.py`: pictures as PNGs through the ORM, no
rendering, k large enough that no item runs out), serves the site with gunicorn (the site's
own settings, `annotate/gunicorn_conf.py`, unless the options say otherwise), and lets the
clients enter, consent, read the instructions and answer trials (practice first) as the trial
page does (`bench/web_clients.py`) until the time is up. The same clients then hammer a minimal
Flask app (one INSERT per POST, same gunicorn settings), and the site's request throughput is
printed as a ratio of it. Afterwards the database is asked how many answers it holds, which must
equal the number of answers the clients saw acknowledged. The database is dropped at the end.
Everything listens on 127.0.0.1 only. The last line's `rating_p99_ms` is the answer POST's p99:
`/rating` for the rating task, `/answer` for 2afc.

The per-session answer rate limit and the per-address start limit are raised for the run
(`RATING_RATE_LIMIT`, `START_RATE_LIMIT`): the simulated annotators answer without a person's
think time and all come from one address, and both checks still run on every request.

`--think-ms T` instead paces the annotators (each looks at an image for 0.5-1.5 × T before
answering) to measure latency at a realistic pace; such a run is not a capacity test, so it
skips the minimal app and prints `throughput_ratio=nan`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from web_baseline import baseline_ratings, metadata
from web_clients import Tally, run_load
from web_studies import SETUP, SLUG

from annotate import gunicorn_conf
from service.store.db import make_engine
from service.store.migrate import upgrade
from service.store.models import Rating, StudyTask

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("FVLAB_BENCH_POSTGRES_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SITE_APP = ("annotate:create_app({'RATING_RATE_LIMIT': (1000000, 1.0), "
            "'START_RATE_LIMIT': (1000000, 1.0)})")
BASELINE_APP = "web_baseline:create_app()"
ANSWER_ROUTE = {StudyTask.RATING: "api rating", StudyTask.TWO_AFC: "api answer"}
TITLE = {StudyTask.RATING: "fvlab site, rating (enter, consent, instructions; image, rating)",
         StudyTask.TWO_AFC: "fvlab site, 2afc (enter, consent, instructions; pictures, answer)"}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=StudyTask, choices=list(StudyTask),
                        default=StudyTask.RATING, help="the study's task (default rating)")
    parser.add_argument("--clients", type=int, default=200, help="simulated annotators (1-1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="per app (1-600)")
    parser.add_argument("--workers", type=int, default=gunicorn_conf.workers,
                        help=f"gunicorn worker processes (default {gunicorn_conf.workers})")
    parser.add_argument("--threads", type=int, default=gunicorn_conf.threads,
                        help=f"threads per gunicorn worker (default {gunicorn_conf.threads})")
    parser.add_argument("--worker-connections", type=int,
                        default=gunicorn_conf.worker_connections,
                        help="connections one gunicorn worker holds at most (default "
                             f"{gunicorn_conf.worker_connections}, the site's setting; "
                             "gunicorn's own is 1000, under which the clients' kept-alive "
                             "connections pile up on the workers that accept the first burst)")
    parser.add_argument("--stimuli", type=int, default=200,
                        help="stimuli in the study (2afc: directions)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean time each annotator looks at an image before answering "
                             "(0-60000; default 0: a capacity test). A paced run measures "
                             "latency at a realistic pace and skips the minimal app, so its "
                             "throughput_ratio is nan")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be 1-1000 and --seconds 1-600")
    if not 0 <= args.think_ms <= 60_000:
        parser.error("--think-ms must be 0-60000")
    if args.clients > args.workers * args.worker_connections:
        parser.error("--clients must be at most --workers x --worker-connections: the rest "
                     "would wait for a connection a kept-alive client never gives up")
    if args.worker_connections <= args.threads:
        parser.error("--worker-connections must be more than --threads (kept-alive ones beside)")
    if make_url(SERVER_URL).host not in ("127.0.0.1", "localhost"):
        parser.error("the benchmark runs against a PostgreSQL server on 127.0.0.1 only")
    return args


def _create_database() -> tuple[str, str]:
    """(name, URL) of a fresh database on the server."""
    name = f"fvlab_bench_{secrets.token_hex(4)}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)


def _drop_database(name: str) -> None:
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(app: str, url: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """Start gunicorn on a free loopback port and wait until it answers HTTP."""
    port = _free_port()
    env = {**os.environ, "FVLAB_DATABASE_URL": url, "FVLAB_SECRET_KEY": secrets.token_hex(32)}
    command = [sys.executable, "-m", "gunicorn", "--config=python:annotate.gunicorn_conf",
               f"--workers={args.workers}",
               f"--threads={args.threads}", f"--bind=127.0.0.1:{port}",
               "--backlog=2048", f"--worker-connections={args.worker_connections}",
               "--log-level=warning", f"--pythonpath={ROOT / 'bench'}", app]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).close()
            return server, base
        except urllib.error.HTTPError:  # an answer, if not a 200: the server is up
            return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"gunicorn did not answer at {base}")


def _stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)


def _count(url: str, query) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    with engine.connect() as conn:
        count = int(conn.scalar(query) or 0)
    engine.dispose()
    return count


def _report(title: str, tally: Tally, wall: float) -> float:
    """Print the per-route table; return requests per second."""
    throughput = tally.requests / wall
    print(f"\n{title}: {tally.requests} requests in {wall:.1f} s = {throughput:.1f} req/s, "
          f"{tally.acknowledged} writes acknowledged ({tally.acknowledged / wall:.1f}/s)")
    print(f"  {'route':<20}{'count':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for route, (count, p50, p95, p99) in tally.percentiles().items():
        print(f"  {route:<20}{count:>8}{p50:>10.1f}{p95:>10.1f}{p99:>10.1f}")
    for error, count in sorted(tally.errors.items()):
        print(f"  error {error}: {count}")
    if tally.reconnects:
        print(f"  resent on a new connection after an idle keep-alive close: {tally.reconnects}")
    return throughput


def _run_baseline(url: str, args: argparse.Namespace) -> tuple[Tally, float, int]:
    server, base = _serve(BASELINE_APP, url, args)
    try:
        baseline, wall = run_load("baseline", base, args.clients, args.seconds)
    finally:
        _stop(server)
    return baseline, wall, _count(url, select(func.count()).select_from(baseline_ratings))


def main() -> None:
    args = _args()
    paced = args.think_ms > 0
    name, url = _create_database()
    try:
        upgrade(url)
        metadata.create_all(make_engine(url), tables=[baseline_ratings])
        SETUP[args.task](url, args.stimuli)
        pace = f"; annotators think {args.think_ms:.0f} ms per trial on average" if paced else ""
        print(f"{args.task} task; {args.clients} clients x {args.seconds:.0f} s per app; "
              f"gunicorn {args.workers} workers x {args.threads} threads; "
              f"PostgreSQL database {name}{pace}")

        server, base = _serve(SITE_APP, url, args)
        try:
            site, site_wall = run_load("site", base, args.clients, args.seconds, SLUG,
                                       args.task, think_s=args.think_ms / 1000)
        finally:
            _stop(server)
        stored = _count(url, select(func.count(Rating.id)))
        baseline = None if paced else _run_baseline(url, args)
    finally:
        _drop_database(name)

    ours = _report(TITLE[args.task], site, site_wall)
    lost = site.acknowledged - stored
    print(f"\nanswers acknowledged {site.acknowledged}, stored {stored} "
          f"({'equal' if lost == 0 else 'NOT EQUAL'})")
    errors = sum(site.errors.values())
    ratio = float("nan")  # a paced run is not a capacity test: no minimal app to compare with
    if baseline is not None:
        tally, wall, baseline_stored = baseline
        ratio = ours / _report("minimal Flask app (POST, one INSERT)", tally, wall)
        print(f"baseline acknowledged {tally.acknowledged}, stored {baseline_stored}")
        errors += sum(tally.errors.values())
    rating_p99 = site.percentiles().get(ANSWER_ROUTE[args.task], (0, 0.0, 0.0, float("nan")))[3]
    print(f"RESULT throughput_ratio={ratio:.2f} rating_p99_ms={rating_p99:.1f} "
          f"errors={errors} lost={abs(lost)}")


if __name__ == "__main__":
    main()
