"""`make run` prepares the embedded default once and reuses it on every later start."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.cli.demo import ADMIN_NAME, _prepare
from service.config import load_settings
from service.store.accounts import authenticate
from service.store.db import unit_of_work
from service.store.models import Job


def test_second_start_reuses_key_login_and_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FVLAB_DATA_DIR", str(tmp_path / "var"))
    engine, env, password, job_id = _prepare(load_settings())
    assert password and job_id is not None
    assert authenticate(engine, ADMIN_NAME, password) is not None
    key_file = tmp_path / "var" / "secret-key.txt"
    assert env["FVLAB_SECRET_KEY"] == key_file.read_text().strip()
    for private in (key_file, tmp_path / "var" / "admin-password.txt"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600

    engine2, env2, password2, job_id2 = _prepare(load_settings())
    assert (password2, job_id2) == (password, job_id)
    assert env2["FVLAB_SECRET_KEY"] == env["FVLAB_SECRET_KEY"]
    with unit_of_work(engine2) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        job = session.get_one(Job, job_id)
        assert job.model == "efficientnet_lite0" and len(job.layers) == 2
        assert job.n_basis > 0 and job.n_random > 0


def test_demo_study_opens_once_over_the_rendered_demo_job(engine) -> None:  # type: ignore[no-untyped-def]
    """The study make run opens must pass the study checks (its name may not echo the job's)."""
    from service.cli.demo import _demo_study_slug
    from service.generation.jobs import DEMO_NAME
    from service.store.models import Study
    from tests.service.test_studies import make_job

    job_id = make_job(engine, size=32)
    with unit_of_work(engine) as session:
        session.get_one(Job, job_id).name = DEMO_NAME
    slug = _demo_study_slug(engine, job_id)
    assert _demo_study_slug(engine, job_id) == slug
    with unit_of_work(engine) as session:
        study = session.scalars(select(Study)).one()
        assert (study.slug, study.status, len(study.stimuli)) == (slug, "open", 6)
