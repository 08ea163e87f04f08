from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from werkzeug.security import check_password_hash

from service.cli import fvlab
from service.store.accounts import authenticate
from service.store.db import make_engine, unit_of_work
from service.store.models import User


def test_help_lists_verbs_with_one_line_each() -> None:
    result = CliRunner().invoke(fvlab, ["--help"])
    assert result.exit_code == 0
    for verb in ("db", "admin", "serve"):
        assert f"  {verb} " in result.output


def test_db_upgrade_then_create_user(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    monkeypatch.setenv("FVLAB_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(fvlab, ["db", "upgrade"]).exit_code == 0
    password = "s3cret-pass\ns3cret-pass\n"
    result = runner.invoke(fvlab, ["admin", "create-user", "ada"], input=password)
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with unit_of_work(engine) as s:
        user = s.scalars(select(User)).one()
        assert user.password_hash != "s3cret-pass" and "s3cret-pass" not in user.password_hash
        assert check_password_hash(user.password_hash, "s3cret-pass")
    assert authenticate(engine, "ada", "s3cret-pass") is not None
    assert authenticate(engine, "ada", "wrong-pass") is None
    again = runner.invoke(fvlab, ["admin", "create-user", "ada"], input="another1\nanother1\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(fvlab, ["admin", "create-user", "bob"], input="x\nx\n")
    assert short.exit_code != 0 and "at least 8" in short.output


def test_bad_setting_is_one_line_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade"],
        env={"FVLAB_DATABASE_URL": "mysql://root@localhost/x", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: FVLAB_DATABASE_URL uses 'mysql'; fvlab supports sqlite, postgresql"
    ]
