"""Jobs with an image set on SQLite and PostgreSQL: the exemplar pass as shards, min and max
references, and what a bad request leaves behind (nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select

from service.cli import fvlab
from service.featurevis import load_model
from service.generation import exemplar_pass, shards
from service.generation.jobs import JobError, JobRequest, get_job, job_shards, submit
from service.generation.reference_renders import AUTO_DIVERSITY_WEIGHTS
from service.generation.worker import WorkerConfig, run
from service.store.db import unit_of_work
from service.store.image_sets import add_folder
from service.store.models import (
    Direction,
    Exemplar,
    Image,
    ImageSet,
    ImageSetStatus,
    Job,
    Shard,
    Stimulus,
)

K, TASKS = 3, 10


def _folder(root: Path, n: int) -> Path:
    """`n` small photos of flat noisy colours, each its own source."""
    root.mkdir()
    rng = np.random.default_rng(4)
    for i in range(n):
        colour = rng.integers(0, 256, 3)
        pixels = np.clip(colour + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(root / f"p{i:03d}.png")
    return root


@pytest.fixture
def small_set(engine: Engine, tmp_path: Path) -> str:
    add_folder(engine, "small", _folder(tmp_path / "small", 40))
    return "small"


def tiny(**changes: object) -> JobRequest:
    base = dict(model="tiny", layers=["conv2"], n_basis=2, n_random=2, image_size=32, steps=6,
                seed=3, image_set="small", references=K, diversity="auto")
    return JobRequest(**{**base, **changes})  # type: ignore[arg-type]


def worker(engine: Engine, **changes: object) -> WorkerConfig:
    return WorkerConfig(database_url=engine.url.render_as_string(hide_password=False),
                        accelerator="cpu", once=True, lease_seconds=30, **changes)  # type: ignore[arg-type]


def counts(engine: Engine) -> tuple[int, ...]:
    with unit_of_work(engine) as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0
                     for t in (Job, Shard, Direction, Exemplar, Stimulus, Image))


def test_the_whole_path_from_images_add_to_references_in_the_store(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", engine.url.render_as_string(hide_password=False))

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(fvlab, list(args))
        assert result.exit_code == 0, result.output
        return result

    invoke("images", "add", "photos")
    job_id = int(invoke(
        "generate", "--model", "tiny", "--layer", "conv2", "--basis", "2", "--random", "2",
        "--size", "32", "--steps", "8", "--seed", "1", "--image-set", "photos",
        "--references", str(K), "--diversity", "auto").output)
    assert "exemplar pass: 0/1 layers done" in invoke("jobs", str(job_id)).output
    invoke("worker", "--once", "--accelerator", "cpu")

    job = get_job(engine, job_id)
    assert (job.status, job.progress, job.total) == ("done", 4 * K * 2, 4 * K * 2)
    with unit_of_work(engine) as s:
        directions = s.scalars(select(Direction).where(Direction.job_id == job_id)).all()
        assert sorted(d.kind for d in directions) == ["basis", "basis", "random", "random"]
        for d in directions:
            assert d.activation_sd is not None and d.activation_sd > 0
            assert d.tasks_available is not None and d.tasks_available >= 1
            renders = s.scalars(select(Stimulus).where(Stimulus.direction_id == d.id)).all()
            assert sorted((r.sign, r.replicate) for r in renders) == sorted(
                (sign, r) for sign in ("max", "min") for r in range(K))
            for sign in ("max", "min"):
                mine = [r for r in renders if r.sign == sign]
                assert len({r.image_sha256 for r in mine}) == K  # K different images
                assert len({r.natural_max for r in mine}) == 1 and mine[0].natural_max is not None
                assert len({r.diversity for r in mine}) == 1
                assert mine[0].diversity in AUTO_DIVERSITY_WEIGHTS
            extremes = s.scalars(select(Exemplar).where(Exemplar.direction_id == d.id)).all()
            refs = {sign: sorted((e for e in extremes if e.sign == sign and e.role == "reference"),
                                 key=lambda e: e.rank) for sign in ("max", "min")}
            queries = {sign: [e for e in extremes if e.sign == sign and e.role == "query"]
                       for sign in ("max", "min")}
            assert [e.rank for e in refs["max"]] == [e.rank for e in refs["min"]] == list(range(K))
            assert len(queries["max"]) == len(queries["min"]) == min(TASKS, d.tasks_available)
            # the natural extremes: every max reference above every query, min below
            assert min(e.activation for e in refs["max"]) >= max(
                e.activation for e in queries["max"])
            assert max(e.activation for e in refs["min"]) <= min(
                e.activation for e in queries["min"])
            assert all(s.get(Image, e.image_sha256) is not None for e in extremes)
    detail = invoke("jobs", str(job_id)).output
    assert "image set photos: 3 references per sign, diversity auto" in detail
    assert "exemplar pass: 1/1 layers done" in detail
    assert "references: " in detail and f"/{4 * K * 2} beat their best natural exemplar" in detail
    assert "exemplars of conv2, 1 attempts" in detail


def test_renders_wait_for_the_exemplar_pass_which_is_written_once(
    engine: Engine, small_set: str
) -> None:
    submit(engine, tiny(diversity=0.5), shard_size=4)
    first = shards.claim(engine, "a", 60, 3)
    assert first is not None and (first.kind, first.layer) == ("exemplars", "conv2")
    assert len(first.directions) == 4 and first.references == K
    assert shards.claim(engine, "b", 60, 3) is None  # the renders wait for the exemplars
    scored = exemplar_pass.score_layer(engine, first, load_model("tiny"), batch_size=7)
    assert len(scored) == 40
    rows = sum(len(d.picks) for d in scored.directions)
    assert exemplar_pass.write_exemplars(engine, first.id, scored) == rows
    assert exemplar_pass.write_exemplars(engine, first.id, scored) is None  # settled: nothing
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Exemplar)) == rows
    second = shards.claim(engine, "b", 60, 3)
    assert second is not None and second.kind == "render" and second.diversity == 0.5


def test_an_exemplar_pass_that_fails_for_good_fails_its_renders_and_the_job(
    engine: Engine, small_set: str
) -> None:
    job_id = submit(engine, tiny(), shard_size=2)
    for _attempt in range(2):
        claimed = shards.claim(engine, "a", 60, 2)
        assert claimed is not None and claimed.kind == "exemplars"
        shards.fail_attempt(engine, claimed.id, "a", "RuntimeError: boom", 2)
    assert shards.claim(engine, "a", 60, 2) is None
    job = get_job(engine, job_id)
    assert job.status == "failed" and "boom" in (job.error or "")
    states = [(s.kind, s.status) for s in job_shards(engine, job_id)]
    assert states == [("exemplars", "failed"), ("render", "failed"), ("render", "failed")]


def test_jobs_without_an_image_set_are_unchanged(engine: Engine) -> None:
    job_id = submit(engine, tiny(image_set=None, references=None, diversity=None))
    with unit_of_work(engine) as s:
        job = s.get_one(Job, job_id)
        assert (job.image_set_id, job.n_references, job.replicates, job.total) == (None, None,
                                                                                   1, 4)
    assert [s.kind for s in job_shards(engine, job_id)] == ["render"]
    run(worker(engine))
    with unit_of_work(engine) as s:
        assert sorted(s.scalars(select(Stimulus.sign))) == ["max"] * 4
        assert s.scalar(select(func.count()).select_from(Exemplar)) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"image_set": "nope"}, "no image set named 'nope'"),
    ({"references": 21}, "21 references per side need at least 42 images; the set has 40"),
    ({"references": 0}, "references must be between 1 and 64"),
    ({"query_percentile": 50}, "query percentile must be between 50 and 100 (exclusive)"),
    ({"query_percentile": 100.0}, "query percentile must be between 50 and 100 (exclusive)"),
    ({"diversity": -0.1}, "diversity must be 'auto' or a weight between 0"),
    ({"diversity": "more"}, "diversity must be a number"),
    ({"image_set": None}, "--references, --diversity need an image set"),
    ({"image_set": None, "references": None, "diversity": None, "query_percentile": 90},
     "--query-percentile needs an image set"),
])
def test_bad_requests_write_nothing(engine: Engine, small_set: str, changes: dict,
                                    message: str) -> None:
    before = counts(engine)
    with pytest.raises(JobError, match=message.replace("(", r"\(").replace(")", r"\)")):
        submit(engine, tiny(**changes))
    assert counts(engine) == before


def test_a_set_still_importing_is_refused(engine: Engine, small_set: str) -> None:
    with unit_of_work(engine) as s:
        s.add(ImageSet(name="half", source="x", status=ImageSetStatus.IMPORTING))
    before = counts(engine)
    with pytest.raises(JobError, match="image set 'half' is still importing"):
        submit(engine, tiny(image_set="half"))
    assert counts(engine) == before
