"""MIS of a whole job without a study: its tasks read from the store, `fvlab machine score --job`
(table, printed comparison, figure) and its one-line refusals, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select, update

from service.cli import fvlab
from service.featurevis import embeddings
from service.featurevis.embeddings import EmbeddingCache
from service.store.db import unit_of_work
from service.store.images import store
from service.store.models import Direction, Exemplar, Job, Stimulus
from service.studies.machine.job_tasks import COLUMNS, JobTasksError, job_tasks, score_job
from service.studies.machine.score import DEFAULT_ALPHA_RULE
from tests.annotate.afc_support import AfcJob, make_afc_job
from tests.studies.test_machine_trials import BLUE, RED, MeanColour

PAIRS, REFERENCES = 3, 4


def colour_pixels(rgb: tuple[int, int, int], seed: int, size: int = 16) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-15, 16, (size, size, 3))
    return np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)


def plant(engine: Engine, job: AfcJob) -> None:
    """Every basis direction's max side (renders, photos and queries) red, its min side blue;
    random directions keep their unrelated patterns."""
    seed = 0
    with unit_of_work(engine) as db:
        for direction in job.directions["basis"]:
            for sign, rgb in (("max", RED), ("min", BLUE)):
                for replicate in range(REFERENCES):
                    seed += 1
                    sha = store(db, colour_pixels(rgb, seed)).sha256
                    db.execute(update(Stimulus).where(
                        Stimulus.direction_id == direction, Stimulus.sign == sign,
                        Stimulus.replicate == replicate).values(image_sha256=sha))
                for rank in range(REFERENCES + PAIRS):
                    seed += 1
                    sha = store(db, colour_pixels(rgb, seed)).sha256
                    db.execute(update(Exemplar).where(
                        Exemplar.direction_id == direction, Exemplar.sign == sign,
                        Exemplar.rank == rank).values(image_sha256=sha))


@pytest.fixture
def planted(engine: Engine) -> AfcJob:
    # more random than basis tasks: the uncalibrated α's median |Δ| is then a random task's,
    # so the basis tasks' far larger evidence gives P near 1
    job = make_afc_job(engine, n_basis=4, n_random=6, references=REFERENCES, pairs=PAIRS)
    plant(engine, job)
    return job


def invoke(db_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    monkeypatch.setattr(embeddings, "load_embedder", lambda *_a, **_k: MeanColour())
    return CliRunner().invoke(fvlab, ["machine", "score", *args])


def test_tasks_are_every_query_pair_with_the_chosen_references(engine: Engine) -> None:
    job = make_afc_job(engine, n_basis=2, n_random=1, references=3, pairs=2)
    for kind in ("synthetic", "natural"):
        tasks = job_tasks(engine, job.job_id, kind)
        assert [d.condition for d in tasks.directions] == ["basis", "basis", "random"]
        assert [d.channel for d in tasks.directions] == [0, 7, None]
        ids = job.directions["basis"] + job.directions["random"]
        assert list(tasks.task_direction) == [d for d in ids for _ in range(2)]
        for t, did in enumerate(tasks.task_direction):
            shown = job.images[did]
            name = [tasks.images[i] for i in tasks.refs_max[t]], [
                tasks.images[i] for i in tasks.refs_min[t]]
            assert name == (shown[f"{kind}_max"], shown[f"{kind}_min"])
            pair = t % 2
            assert tasks.images[tasks.query_max[t]] == shown["query_max"][pair]
            assert tasks.images[tasks.query_min[t]] == shown["query_min"][pair]
        assert len(set(tasks.images)) == len(tasks.images)  # each image embedded once


def test_a_planted_job_scores_basis_near_one_and_random_near_chance(
        engine: Engine, planted: AfcJob) -> None:
    rows = score_job(engine, job_tasks(engine, planted.job_id), EmbeddingCache(MeanColour()))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    basis, random = (frame[frame["condition"] == c] for c in ("basis", "random"))
    assert (basis["mis"] > 0.95).all()
    assert abs(random["mis"].mean() - 0.5) < 0.15
    assert set(frame["n_tasks"]) == {PAIRS}
    assert set(frame["alpha_note"]) == {DEFAULT_ALPHA_RULE}
    given = score_job(engine, job_tasks(engine, planted.job_id, "natural"),
                      EmbeddingCache(MeanColour()), alpha=4.0)
    assert {r["alpha"] for r in given} == {4.0} and {r["reference"] for r in given} == {"natural"}
    assert min(r["mis"] for r in given if r["condition"] == "basis") > 0.7


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_the_table_prints_the_comparison_and_draws_the_figure(
        engine: Engine, db_url: str, planted: AfcJob, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    out = tmp_path / f"mis{suffix}"
    result = invoke(db_url, monkeypatch, "--job", str(planted.job_id), "-o", str(out),
                    "--bootstrap", "500", "--seed", "3")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["direction_id"]) == planted.directions["basis"] + planted.directions[
        "random"]
    assert frame.loc[frame["condition"] == "random", "channel"].isna().all()
    assert list(frame.loc[frame["condition"] == "basis", "channel"]) == [0, 7, 14, 21]
    assert set(frame["layer"]) == {"blocks.10"} and set(frame["job_id"]) == {planted.job_id}
    lines = result.output.splitlines()
    assert "uncalibrated α" in lines[0] and f"{10 * PAIRS} tasks of 10 directions" in lines[0]
    [summary] = [line for line in lines if line.startswith("all layers:")]
    basis, random = (frame.loc[frame["condition"] == c, "mis"].mean() for c in ("basis", "random"))
    assert f"basis MIS {basis:.3f}" in summary and f"random MIS {random:.3f}" in summary
    assert f"basis − random {basis - random:+.3f} (95% CI +" in summary
    assert (tmp_path / "mis.png").read_bytes().startswith(b"\x89PNG")
    again = invoke(db_url, monkeypatch, "--job", str(planted.job_id), "-o", str(out),
                   "--bootstrap", "500", "--seed", "3")
    assert again.output == result.output  # seeded: the same intervals


def test_cli_job_with_a_given_alpha_and_natural_references(
        engine: Engine, db_url: str, planted: AfcJob, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "mis.csv"
    result = invoke(db_url, monkeypatch, "--job", str(planted.job_id), "-o", str(out),
                    "--reference", "natural", "--alpha", "5")
    assert result.exit_code == 0, result.output
    assert "natural references" in result.output and "uncalibrated" not in result.output
    assert "α = 5 (α given, not fitted by fvlab)" in result.output
    assert set(pd.read_csv(out)["reference"]) == {"natural"}


def _not_done(engine: Engine, job: AfcJob) -> None:
    with unit_of_work(engine) as db:
        db.execute(update(Job).where(Job.id == job.job_id).values(status="running"))


@pytest.mark.parametrize(("build", "args", "message"), [
    (lambda e: make_afc_job(e, n_basis=1, n_random=1), ["--job", "999"],
     "job 999 does not exist"),
    (lambda e: (_not_done(e, job := make_afc_job(e, n_basis=1, n_random=1)), job)[1], [],
     "is not done (status running): score it once it is (fvlab jobs"),
    (lambda e: make_afc_job(e, n_basis=1, n_random=1, natural=False), [],
     "2 of 2 directions of job {job} have no query pairs, which its 2-AFC tasks need "
     "(score it on an image set: fvlab generate … --image-set NAME)"),
    (lambda e: make_afc_job(e, n_basis=1, n_random=1, min_renders=False), [],
     "2 of 2 directions of job {job} have no renders of both signs"),
    (lambda e: make_afc_job(e, n_basis=1, n_random=1, natural_references=False),
     ["--reference", "natural"], "have no natural references of both signs"),
])
def test_cli_refuses_a_job_it_cannot_score_in_one_line(
        engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        build, args: list[str], message: str) -> None:
    job = build(engine)
    out = tmp_path / "mis.csv"
    result = invoke(db_url, monkeypatch, *(args if "--job" in args else
                                           ["--job", str(job.job_id), *args]), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ")
    assert message.format(job=job.job_id) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "mis.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --trials DIR or --job ID"),
    (["--job", "1", "--trials", "x"], "give exactly one of --trials DIR or --job ID"),
    (["--trials", "x", "--reference", "natural", "--seed", "2"],
     "--reference, --seed only go with --job"),
    (["--job", "1", "-o", "figure.png"], "-o names the table; the figure takes figure.png"),
])
def test_cli_refuses_bad_option_combinations(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                             args: list[str], message: str) -> None:
    output = [] if "-o" in args else ["-o", "scores.csv"]
    result = invoke(db_url, monkeypatch, *args, *output)
    assert result.exit_code == 2 and message in result.output, result.output


def test_an_unknown_reference_kind_is_refused(engine: Engine) -> None:
    job = make_afc_job(engine, n_basis=1, n_random=1)
    with pytest.raises(JobTasksError, match="reference must be one of synthetic, natural"):
        job_tasks(engine, job.job_id, "none")


@pytest.mark.slow
def test_lite2_scores_a_planted_job_basis_above_random(
        engine: Engine, db_url: str, planted: AfcJob, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    out = tmp_path / "mis.csv"
    result = CliRunner().invoke(fvlab, ["machine", "score", "--job", str(planted.job_id),
                                        "-o", str(out), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert (frame.loc[frame["condition"] == "basis", "mis"] > 0.8).all()
    assert "efficientnet_lite2" in result.output and "uncalibrated α" in result.output


def test_a_job_made_by_the_worker_is_scored_on_all_its_query_pairs(
        engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path on the tiny model: images add, generate with an image set, the worker's
    exemplar pass and renders, then every task the pass stored is scored."""
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(fvlab, ["images", "add", "photos"]).exit_code == 0
    made = runner.invoke(fvlab, ["generate", "--model", "tiny", "--layer", "conv2", "--basis",
                                 "2", "--random", "2", "--size", "32", "--steps", "4",
                                 "--seed", "1", "--image-set", "photos", "--references", "2"])
    assert made.exit_code == 0, made.output
    job_id = int(made.output)
    assert runner.invoke(fvlab, ["worker", "--once", "--accelerator", "cpu"]).exit_code == 0
    with unit_of_work(engine) as db:
        available = dict(db.execute(select(Direction.id, Direction.tasks_available)
                                    .where(Direction.job_id == job_id)).all())
        pairs = dict(db.execute(select(Exemplar.direction_id, func.count())
                                .where(Exemplar.role == "query", Exemplar.sign == "max")
                                .group_by(Exemplar.direction_id)).all())
    out = tmp_path / "mis.csv"
    result = invoke(db_url, monkeypatch, "--job", str(job_id), "-o", str(out), "--bootstrap",
                    "200")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert sorted(frame["condition"]) == ["basis", "basis", "random", "random"]
    assert dict(zip(frame["direction_id"], frame["n_tasks"], strict=True)) == pairs
    assert all(1 <= pairs[d] <= available[d] for d in pairs)
    assert frame["mis"].between(0, 1).all()
