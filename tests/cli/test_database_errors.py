"""Every verb that needs the database answers a missing, empty or outdated one in one line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import fvlab
from service.store.migrate import downgrade, head_revision, upgrade

VERBS = [
    ["jobs"],
    ["jobs", "1"],
    ["study", "list"],
    ["study", "open", "1"],
    ["generate", "--layer", "blocks.10", "--basis", "1"],
    ["export", "ratings", "-o", "ratings.csv"],
    ["export", "sessions", "-o", "sessions.csv"],
    ["analyze", "--study", "1", "-o", "out"],
    ["worker", "--once"],
    ["serve", "--port", "8765"],
    ["admin", "create-user", "bob", "--password", "a long enough password"],
]


def _run(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FVLAB_SECRET_KEY", "s" * 32)
    result = CliRunner().invoke(fvlab, args)
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("args", VERBS, ids=lambda a: " ".join(a[:2]))
def test_a_database_without_schema(args: list[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = _run(args, tmp_path, monkeypatch)
    assert code == 1
    line = _one_line_error(output)
    assert line.endswith("has no schema: run `fvlab db upgrade`"), line
    assert "fvlab.db" in line


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("args", [["jobs"], ["worker", "--once"], ["db", "upgrade"],
                                  ["serve", "--port", "8765"]], ids=lambda a: a[0])
def test_an_unreachable_postgres(args: list[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv("FVLAB_DATABASE_URL",
                       f"postgresql+psycopg://fvlab:secret@127.0.0.1:{port}/fvlab")
    code, output = _run(args, tmp_path, monkeypatch)
    assert code == 1
    line = _one_line_error(output)
    assert line == (f"Error: cannot reach the database at "
                    f"postgresql+psycopg://fvlab:***@127.0.0.1:{port}/fvlab: Connection refused")


def test_an_outdated_schema_names_both_revisions(db_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(db_url)
    downgrade(db_url, "0001")
    monkeypatch.setenv("FVLAB_DATABASE_URL", db_url)
    code, output = _run(["jobs"], tmp_path, monkeypatch)
    assert code == 1
    line = _one_line_error(output)
    assert f"is at revision 0001, this fvlab needs {head_revision()}: run `fvlab db upgrade`" \
        in line
    code, output = _run(["db", "upgrade"], tmp_path, monkeypatch)
    assert code == 0, output
    assert f"schema at revision {head_revision()}" in output
    code, output = _run(["jobs"], tmp_path, monkeypatch)
    assert code == 0, output


def test_verbs_that_need_no_database_ignore_a_bad_one(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_DATABASE_URL", "mysql://root@localhost/x")
    code, output = _run(["simulate", "-o", "sim.csv", "--annotators", "6", "--stimuli", "8"],
                        tmp_path, monkeypatch)
    assert code == 0, output
    code, output = _run(["jobs"], tmp_path, monkeypatch)
    assert code == 1
    assert "fvlab supports sqlite, postgresql" in _one_line_error(output)


def test_each_verb_checks_only_the_settings_it_uses(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVLAB_WEIGHTS_DIR", str(tmp_path / "no-such-folder"))
    assert _run(["db", "upgrade"], tmp_path, monkeypatch)[0] == 0
    code, output = _run(["jobs"], tmp_path, monkeypatch)
    assert code == 0, output
