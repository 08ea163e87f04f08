"""The load benchmark still runs end to end and keeps its last line's format.

Checks outside the repo read `bench/web_load.py`'s last line, so a tiny run (a few clients for a
second, against a throwaway database on the test PostgreSQL server) must end with
`RESULT throughput_ratio=<x> rating_p99_ms=<x> errors=<n> lost=<n>`, with no errors and every
acknowledged answer stored. The paced mode skips the minimal app and says so with `nan`. The
2-AFC task's run ends with the same line (its answer POST's p99 under the same key).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parent.parent
RESULT = re.compile(r"^RESULT throughput_ratio=(\S+) rating_p99_ms=(\S+) errors=(\d+) lost=(\d+)$")


def _run(*options: str) -> re.Match[str]:
    server = make_url(POSTGRES_URL).set(database="postgres").render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "bench/web_load.py", "--clients", "3", "--seconds", "2",
         "--workers", "1", "--threads", "2", "--stimuli", "20", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "FVLAB_BENCH_POSTGRES_URL": server},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    match = RESULT.match(last)
    assert match, last
    assert "stored" in done.stdout and "NOT EQUAL" not in done.stdout
    return match


@pytest.mark.usefixtures("postgres_available")
def test_capacity_run_ends_with_the_result_line() -> None:
    ratio, p99, errors, lost = _run().groups()
    assert float(ratio) > 0 and float(p99) > 0
    assert (errors, lost) == ("0", "0")


@pytest.mark.usefixtures("postgres_available")
def test_2afc_run_ends_with_the_same_result_line() -> None:
    ratio, p99, errors, lost = _run("--task", "2afc").groups()
    assert float(ratio) > 0 and float(p99) > 0
    assert (errors, lost) == ("0", "0")


@pytest.mark.usefixtures("postgres_available")
def test_paced_run_measures_latency_and_no_ratio() -> None:
    ratio, p99, errors, lost = _run("--think-ms", "50").groups()
    assert ratio == "nan" and float(p99) > 0
    assert (errors, lost) == ("0", "0")
