"""`fvlab generate`, `fvlab jobs` and `fvlab jobs cancel` through click, on a real SQLite file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from service.cli import fvlab
from service.generation.worker import WorkerConfig, run
from service.store.db import make_engine, unit_of_work
from service.store.models import Job
from tests.conftest import create_schema

TINY = ["--model", "tiny", "--layer", "conv2", "--basis", "2", "--random", "2", "--size", "32",
        "--steps", "4", "--seed", "5"]


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    monkeypatch.setenv("FVLAB_DATABASE_URL", url)
    return url


def invoke(*args: str) -> Result:
    return CliRunner().invoke(fvlab, list(args))


def jobs_in(url: str) -> int:
    with unit_of_work(make_engine(url)) as s:
        return s.scalar(select(func.count()).select_from(Job)) or 0


def test_generate_list_show_and_cancel(url: str) -> None:
    created = invoke("generate", *TINY, "--name", "first")
    assert created.exit_code == 0, created.output
    assert created.output.strip() == "1"
    table = invoke("jobs").output.splitlines()
    assert table[0].split() == ["id", "name", "model", "layers", "progress", "status", "images/s"]
    assert table[1].split() == ["1", "first", "tiny", "conv2", "0/4", "queued", "-"]
    detail = invoke("jobs", "1")
    assert detail.exit_code == 0
    assert "status queued, 0/4 images" in detail.output
    assert "shard 1: queued, 4 directions, 0 attempts" in detail.output
    assert invoke("jobs", "cancel", "1").output.strip() == "job 1 cancelled"
    again = invoke("jobs", "cancel", "1")
    assert again.exit_code == 1 and "job 1 already finished (cancelled)" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--model", "tiny", "--basis", "2"], "give at least one --layer"),
        (["generate", *TINY[:3], "conv7", *TINY[4:]], "layer 'conv7' does not exist in tiny"),
        (["generate", *TINY, "--size", "4"], "image_size must be between 16 and 1024"),
        (["jobs", "7"], "job 7 does not exist"),
        (["jobs", "cancel"], "usage: fvlab jobs [ID | cancel ID]"),
        (["jobs", "stop", "1"], "usage: fvlab jobs [ID | cancel ID]"),
        (["jobs", "one"], "job id must be a number, got 'one'"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(url: str, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
    assert jobs_in(url) == 0


def test_demo_is_queued_only_into_an_empty_database(url: str) -> None:
    assert invoke("generate", *TINY).exit_code == 0
    result = CliRunner().invoke(fvlab, ["generate", "--demo"])
    assert result.exit_code == 0 and "no demo job queued" in result.output
    assert jobs_in(url) == 1


def test_generate_wait_follows_the_job_until_a_worker_finishes_it(url: str) -> None:
    results: list[Result] = []
    follower = threading.Thread(target=lambda: results.append(invoke("generate", *TINY, "--wait")))
    follower.start()
    deadline = time.monotonic() + 60
    while jobs_in(url) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    run(WorkerConfig(database_url=url, accelerator="cpu", once=True))  # in the main thread
    follower.join(timeout=60)
    [result] = results
    assert result.exit_code == 0, result.output
    assert "job 1 done: 4/4 images" in result.output
