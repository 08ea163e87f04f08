"""Thousands of generated requests against every JSON route of the site, on SQLite and PostgreSQL.

    python bench/fuzz.py [--cases 2500] [--backend sqlite --backend postgresql]

The requests and the rules are those of tests/fuzz/site_fuzz.py (the test runs a few hundred):
every JSON route, plus the console's requests that read numbers and redirect targets from their
input, with crafted shapes among the values (digits `int` refuses such as ² or ①, ids beyond
any database integer, CR/LF); never a 5xx (a redirect whose header carries a line break counts
as one), never a row changed by a refused request, JSON errors under /api/. Here every
case runs to the end and each broken rule is counted instead of stopping at the first. The
PostgreSQL run uses a fresh schema on FVLAB_TEST_POSTGRES_URL's server, dropped afterwards.
Last line: `RESULT cases=<n> server_errors=<n> rows_changed_by_refusals=<n> non_json_errors=<n>`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fuzz.site_fuzz import build_site, check, requests  # noqa: E402

POSTGRES_URL = os.environ.get("FVLAB_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KINDS = {"server error": "server_errors", "refused with": "rows_changed_by_refusals",
         "under /api/": "non_json_errors"}


def fuzz(db_url: str, cases: int, problems: Counter[str]) -> Counter[int]:
    """Run `cases` generated requests; count problems by kind; return the status counts."""
    site = build_site(db_url)

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(requests(site))
    def run(request: dict) -> None:
        for problem in check(site, request):
            kind = next(name for key, name in KINDS.items() if key in problem)
            if problems[kind] < 3:
                print(f"  {problem}\n    request: {request}")
            problems[kind] += 1

    run()
    site.app.extensions["fvlab_engine"].dispose()
    site.engine.dispose()
    return site.statuses


def _postgres_schema() -> tuple[str, str]:
    schema = f"fuzz_{secrets.token_hex(4)}"
    with create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return schema, f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2500, help="per backend")
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    problems: Counter[str] = Counter({name: 0 for name in KINDS.values()})
    total = 0
    folder = tempfile.mkdtemp(prefix="fvlab-fuzz-")
    os.environ["FVLAB_DATA_DIR"] = folder  # nothing of the run lands in ./var
    for backend in args.backend or ["sqlite", "postgresql"]:
        started = time.perf_counter()
        if backend == "sqlite":
            statuses = fuzz(f"sqlite:///{folder}/fuzz.db", args.cases, problems)
        else:
            schema, url = _postgres_schema()
            try:
                statuses = fuzz(url, args.cases, problems)
            finally:
                with create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT").connect() as c:
                    c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        count = sum(statuses.values())
        total += count
        print(f"{backend}: {count} requests in {time.perf_counter() - started:.0f} s; "
              f"statuses {dict(sorted(statuses.items()))}")
    shutil.rmtree(folder)
    print("RESULT cases={} {}".format(total, " ".join(f"{k}={v}" for k, v in problems.items())))


if __name__ == "__main__":
    main()
