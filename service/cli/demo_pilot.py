"""The 2-AFC half of `fvlab demo`: a 2-AFC study over the demo job, piloted by the machine.

Once the demo job has rendered, the demo opens a 2-AFC study over it (synthetic references, and
natural ones as the positive control), lets machine annotators answer it and analyses their
answers, as a researcher would before paying people:

    fvlab machine rate --study ID --annotators N --seed 0
    fvlab analyze --study ID --machine -o DATA_DIR/demo-machine

Both run as child commands, so the demo shows exactly what those commands print. The pilot is
done once: a later start finds the analysis' results.json and only prints its summary again.
A start cut off while machine annotators were answering goes on to the analysis of the answers
already stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work
from service.store.models import (
    AnnotationSession,
    Annotator,
    ReferenceKind,
    Study,
    StudyTask,
)
from service.studies.population import of_population

AFC_STUDY_NAME = "Picture pairs"
AFC_REFERENCES = (ReferenceKind.SYNTHETIC, ReferenceKind.NATURAL)
AFC_ANSWERS_PER_ITEM = 5  # k: people's; the machine's own k is counted apart
AFC_TRIALS_PER_SESSION = 16
AFC_CATCH_EVERY = 8
AFC_PRACTICE = 2
MACHINE_ANNOTATORS = 10  # 16 directions × 2 reference kinds × k 5 = 160 answers of 16 trials
MACHINE_SEED = 0
REPORT_FOLDER = "demo-machine"  # under the data dir


def afc_study(engine: Engine, job_id: int) -> tuple[int, str]:
    """The demo's 2-AFC study (id, slug), created over the job and opened when absent."""
    from service.studies.study import StudyRequest, create_study, open_study

    with unit_of_work(engine) as session:
        found = session.execute(
            select(Study.id, Study.slug).where(Study.name == AFC_STUDY_NAME)
        ).first()
    if found is not None:
        return found[0], found[1]
    study_id = create_study(engine, StudyRequest(
        job_ids=[job_id], name=AFC_STUDY_NAME, task=StudyTask.TWO_AFC,
        reference_kinds=list(AFC_REFERENCES), ratings_per_item=AFC_ANSWERS_PER_ITEM,
        trials_per_session=AFC_TRIALS_PER_SESSION, catch_every=AFC_CATCH_EVERY,
        practice_count=AFC_PRACTICE,
    ))
    open_study(engine, study_id)
    kinds = " and ".join(AFC_REFERENCES)
    print(f"2-AFC study opened over the demo job's directions ({kinds} references)", flush=True)
    with unit_of_work(engine) as session:
        return study_id, session.get_one(Study, study_id).slug


def _machine_sessions(engine: Engine, study_id: int) -> int:
    with unit_of_work(engine) as session:
        return session.scalar(
            select(func.count(AnnotationSession.id))
            .join(Annotator, AnnotationSession.annotator_id == Annotator.id)
            .where(AnnotationSession.study_id == study_id, of_population(machine=True))
        ) or 0


def _fvlab(args: list[str], env: dict[str, str]) -> None:
    """Run `fvlab ARGS` as a child, its output shown as it comes; a failure stops the pilot."""
    print(f"$ fvlab {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"fvlab {args[0]} {args[1]} failed (exit {done.returncode}); "
                           "see the messages above")


def pilot(engine: Engine, study_id: int, data_dir: Path, env: dict[str, str]) -> Path:
    """Machine annotators answer the study and their answers are analysed, unless that was done;
    returns the analysis folder (results.json, report.html)."""
    folder = data_dir / REPORT_FOLDER
    if (folder / "results.json").is_file():
        return folder
    if _machine_sessions(engine, study_id) == 0:
        _fvlab(["machine", "rate", "--study", str(study_id), "--annotators",
                str(MACHINE_ANNOTATORS), "--seed", str(MACHINE_SEED)], env)
    _fvlab(["analyze", "--study", str(study_id), "--machine", "-o", str(folder)], env)
    return folder


def _rate(rate: dict[str, Any]) -> str:
    if rate.get("p") is None:
        return "–"
    low, high = rate["ci"]
    return f"{rate['p']:.2f} [{low:.2f}, {high:.2f}]"


def summary(folder: Path, calibrated: bool) -> list[str]:
    """What the machine found, from the analysis' results.json: accuracy of basis and random
    directions per reference kind with 95 % intervals, basis − random, and the verdict."""
    results = json.loads((folder / "results.json").read_text())
    alpha = "calibrated α" if calibrated else "uncalibrated α"
    excluded = len(results["excluded_annotators"])
    dropped = f", {excluded} excluded by the study's rules" if excluded else ""
    lines = [f"machine pilot of the 2-AFC study ({results['n_annotators'] + excluded} machine "
             f"annotators{dropped}, {results['n_ratings']} answers analysed, {alpha}; chance "
             f"{results['chance']:.2f}):"]
    for kind, rates in results["per_reference"].items():
        control = "" if kind == ReferenceKind.SYNTHETIC else " (control)"
        lines.append(f"  {kind} references{control}: basis {_rate(rates.get('basis', {}))} · "
                     f"random {_rate(rates.get('random', {}))}")
    difference = results["difference"]
    if difference.get("estimate") is not None:
        low, high = difference["ci"]
        p_value = difference.get("p_value")
        tail = "" if p_value is None else f", p = {p_value:.3g}"
        lines.append(f"  basis − random (synthetic): {difference['estimate']:+.2f} "
                     f"[{low:+.2f}, {high:+.2f}]{tail}")
    lines.append(f"machine verdict ({alpha}): {results['verdict']['explanation']}")
    lines.append(f"machine report: {folder / 'report.html'}")
    return lines


def is_calibrated(engine: Engine, study_id: int) -> bool:
    with unit_of_work(engine) as session:
        return session.get_one(Study, study_id).machine_alpha is not None
