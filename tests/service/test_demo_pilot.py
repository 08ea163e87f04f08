"""`make run`'s whole path at tiny size: the demo job with natural exemplars and references is
rendered by the demo's worker, a rating and a 2-AFC study open over it, machine annotators
answer the 2-AFC study, their answers are analysed, and the machine's accuracy, verdict and
report are printed beside the annotator links; a second start reprints them at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.cli import demo_pilot
from service.generation import jobs
from service.generation.jobs import DEMO_NAME, JobRequest, submit_demo_if_empty
from service.store.db import make_engine, unit_of_work
from service.store.migrate import upgrade
from service.store.models import AnnotationSession, Annotator, Study
from tests.service.test_demo import _free_port
from tests.service.test_worker_signals import ROOT, wait_for_line

LAST_LINE = "annotator link (2-AFC): "
RATE = r"(\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\]"


def _tiny_demo() -> JobRequest:
    """The demo job's shape (two conditions, references, the built-in photos) on the tiny
    model at 32 px and a few steps."""
    return JobRequest(model="tiny", layers=["conv2"], n_basis=4, n_random=4, image_size=32,
                      steps=4, seed=0, name=DEMO_NAME, image_set="photos",
                      references=jobs.DEMO_REFERENCES, diversity=jobs.DEMO_DIVERSITY)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "demo", "--port", str(_free_port())],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_make_run_pilots_the_2afc_study_and_prints_the_machine_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "var"
    url = f"sqlite:///{data_dir / 'fvlab.db'}"
    engine = make_engine(url)
    upgrade(url)
    monkeypatch.setattr(jobs, "demo_request", _tiny_demo)
    job_id = submit_demo_if_empty(engine)  # the demo start finds it and queues no other
    assert job_id is not None
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FVLAB_")},
           "FVLAB_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}

    first = tmp_path / "first.log"
    proc = _start(env, first)
    try:
        wait_for_line(first, LAST_LINE, proc, timeout=600)
    finally:
        _stop(proc)
    out = first.read_text()
    assert "exemplar pass 1/1 layers" in out  # progress shown while it renders
    assert "$ fvlab machine rate --study" in out and "machine sessions" in out
    assert "$ fvlab analyze --study" in out and "--machine" in out
    header = re.search(r"machine pilot of the 2-AFC study \((\d+) machine annotators"
                       r"(?:, (\d+) excluded by the study's rules)?, (\d+) answers analysed, "
                       r"uncalibrated α; chance 0\.50\):", out)
    assert header is not None, out
    synthetic = re.search(rf"synthetic references: basis {RATE} · random {RATE}", out)
    assert synthetic is not None, out
    for p, low, high in (synthetic.groups()[:3], synthetic.groups()[3:]):
        assert float(low) <= float(p) <= float(high)
    assert "natural references (control): basis" in out
    assert re.search(r"basis − random \(synthetic\): [+-]\d\.\d\d \[", out)
    assert "machine verdict (uncalibrated α): " in out
    report = data_dir / demo_pilot.REPORT_FOLDER / "report.html"
    assert f"machine report: {report}" in out and report.is_file()
    results = json.loads((report.parent / "results.json").read_text())
    assert (results["task"], results["annotators"], results["chance"]) == ("2afc", "machine", 0.5)
    machines = int(header[1])  # fewer than asked when every item has its k machine answers
    assert 1 < machines <= demo_pilot.MACHINE_ANNOTATORS
    excluded = len(results["excluded_annotators"])  # catch trials of 4-step renders can fail
    assert excluded == int(header[2] or 0) and results["n_annotators"] + excluded == machines
    assert results["n_ratings"] == int(header[3])
    assert "annotator link (yes/no ratings): http://" in out

    with unit_of_work(engine) as s:
        studies = {study.name: study for study in s.scalars(select(Study))}
        assert studies[demo_pilot.AFC_STUDY_NAME].task == "2afc"
        assert studies[demo_pilot.AFC_STUDY_NAME].status == "open"
        machine_sessions = s.scalar(
            select(func.count(AnnotationSession.id)).join(Annotator)
            .where(Annotator.source == "machine"))
    assert machine_sessions == machines, out

    second = tmp_path / "second.log"
    proc = _start(env, second)
    try:
        wait_for_line(second, LAST_LINE, proc, timeout=120)
    finally:
        _stop(proc)
    again = second.read_text()
    assert "$ fvlab" not in again  # nothing rated or analysed again
    assert synthetic[0] in again and "machine verdict" in again
