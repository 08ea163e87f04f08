"""docs/reference.md stays true: every verb, option, setting, column, results key and route.

The reference is what users rely on instead of the code, so each table is checked against the
code in both directions where the order matters (export columns, results keys) and for
completeness everywhere else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from service.cli import fvlab
from service.studies.ratings_file import EXTERNAL_ID_COLUMNS, RATINGS_COLUMNS, SESSIONS_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "reference.md").read_text()
README = (ROOT / "README.md").read_text()


def _section(heading: str) -> str:
    """The text under a `## heading` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", DOC, flags=re.S | re.M)
    assert match, f"docs/reference.md has no '## {heading}' section"
    return match.group(1)


def _table_keys(text: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                          click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # fvlab imports each verb's module on first use
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


@pytest.mark.parametrize(("path", "command"), _commands(fvlab),
                         ids=lambda value: " ".join(value) if isinstance(value, tuple) else "")
def test_every_verb_and_option_is_described(path: tuple[str, ...], command: click.Command) -> None:
    verb = "fvlab " + " ".join(path)
    assert verb in DOC, f"{verb} is missing from docs/reference.md"
    section = re.search(rf"^### `fvlab {re.escape(path[0])}\b.*?(?=^##|\Z)", DOC,
                        flags=re.S | re.M)
    assert section, f"docs/reference.md has no section for fvlab {path[0]}"
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            named = any(re.search(rf"`{re.escape(opt)}[` ]", section.group(0))
                        for opt in param.opts)
            assert named, f"{verb} {max(param.opts, key=len)} is not described"


def test_every_setting_is_described() -> None:
    source = (ROOT / "service" / "config.py").read_text()
    names = set(re.findall(r'"(FVLAB_[A-Z_]+)"', source))
    assert names, "service/config.py reads no FVLAB_ variable"
    assert set(_table_keys(_section("Settings"))) == names


def test_export_columns_are_described_in_order() -> None:
    assert _table_keys(_section("Ratings export")) == list(RATINGS_COLUMNS)
    assert _table_keys(_section("Sessions export")) == [*SESSIONS_COLUMNS, *EXTERNAL_ID_COLUMNS]


def test_every_results_key_is_described(tmp_path: Path) -> None:
    runner = CliRunner()
    ratings = tmp_path / "r.csv"
    assert runner.invoke(fvlab, ["simulate", "-o", str(ratings), "--stimuli", "40",
                                 "--annotators", "8"]).exit_code == 0
    out = tmp_path / "out"
    result = runner.invoke(fvlab, ["analyze", "--ratings", str(ratings), "-o", str(out),
                                   "--bootstrap", "100", "--permutations", "100"])
    assert result.exit_code == 0, result.output
    keys = list(json.loads((out / "results.json").read_text()))
    assert _table_keys(_section("results.json")) == keys


def _documented_form(rule: str) -> str:
    rule = re.sub(r"<any\(([^)]*)\):\w+>",
                  lambda m: "<" + " or ".join(p.strip() for p in m.group(1).split(",")) + ">",
                  rule)
    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)


def test_every_route_is_described(monkeypatch: pytest.MonkeyPatch) -> None:
    from annotate import create_app

    monkeypatch.setenv("FVLAB_SECRET_KEY", "s" * 32)
    app = create_app()
    rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"]
    routes = _section("HTTP routes")
    for rule in rules:
        shown = _documented_form(rule)
        assert shown in routes or shown.rstrip("/") in routes, f"{rule} is not described"


def test_the_readme_links_the_reference() -> None:
    assert "docs/reference.md" in README
    assert "DESIGN.md" not in README
