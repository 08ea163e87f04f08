"""Every fixed value set has one home, and what the database allows is built from it."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, Engine

from service.featurevis.kinds import DirectionKind, Objective, RandomKind
from service.store import models
from service.studies.export import ratings_frame, sessions_frame
from service.studies.progress import study_progress
from service.studies.ratings_file import (
    CATCH_CONDITIONS,
    CONDITIONS,
    MACHINE_SOURCE,
    REFERENCES,
    STIMULUS_CONDITIONS,
    TASKS,
    Condition,
    catch_condition,
    expected_answer,
)
from tests.service.test_export import _build

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
# (table, column) → the enum whose values its check constraint allows
ENUM_COLUMNS: dict[tuple[str, str], type[StrEnum]] = {
    ("jobs", "status"): models.JobStatus,
    ("jobs", "random_kind"): RandomKind,
    ("jobs", "objective"): Objective,
    ("shards", "status"): models.ShardStatus,
    ("directions", "kind"): DirectionKind,
    ("catch_items", "kind"): models.CatchKind,
    ("studies", "status"): models.StudyStatus,
    ("annotators", "source"): models.AnnotatorSource,
    ("sessions", "status"): models.SessionStatus,
    ("trials", "kind"): models.TrialKind,
}


def _in_constraints() -> dict[tuple[str, str], CheckConstraint]:
    found = {}
    for table in models.Base.metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                match = re.fullmatch(r"(\w+) IN \(.*\)", str(constraint.sqltext))
                if match:
                    found[(table.name, match.group(1))] = constraint
    return found


def test_each_enum_column_allows_exactly_its_enum() -> None:
    constraints = _in_constraints()
    for (table, column), values in ENUM_COLUMNS.items():
        constraint = constraints[(table, column)]
        allowed = re.findall(r"'([^']*)'", str(constraint.sqltext))
        assert allowed == [member.value for member in values], (table, column)
        assert constraint.name == f"ck_{table}_{column}"


def test_every_enum_constraint_is_one_a_migration_wrote() -> None:
    """A value added to an enum changes the model's constraint; without a migration that writes
    the same constraint this fails (alembic check does not compare check constraints)."""
    written = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.py")))
    for (table, column), constraint in _in_constraints().items():
        assert f'"{constraint.sqltext}"' in written, (table, column, str(constraint.sqltext))


def test_the_engine_owns_its_enums_and_the_store_stores_them() -> None:
    assert models.DirectionKind is DirectionKind and models.Objective is Objective
    assert models.RandomKind is RandomKind
    assert set(models.OPEN_SHARD_STATES) == {"queued", "running"}
    assert set(models.OPEN_JOB_STATES) | set(models.FINAL_JOB_STATES) == set(models.JobStatus)


def test_conditions_are_the_direction_kinds_and_the_catch_kinds() -> None:
    assert [c.value for c in STIMULUS_CONDITIONS] == [k.value for k in DirectionKind]
    assert {catch_condition(kind) for kind in models.CatchKind} == set(CATCH_CONDITIONS)
    assert CONDITIONS == tuple(c.value for c in Condition)
    assert set(CONDITIONS) == set(STIMULUS_CONDITIONS) | set(CATCH_CONDITIONS)


def test_the_ratings_file_names_the_study_tasks_and_reference_kinds() -> None:
    assert TASKS == tuple(t.value for t in models.StudyTask)
    assert REFERENCES == tuple(r.value for r in models.ReferenceKind)
    assert MACHINE_SOURCE == models.AnnotatorSource.MACHINE


def test_expected_answer_is_yes_to_a_photo_and_no_to_noise() -> None:
    assert expected_answer(models.CatchKind.POSITIVE) is True
    assert expected_answer(models.CatchKind.NEGATIVE) is False
    assert expected_answer("catch_positive") is True
    assert expected_answer(Condition.CATCH_NEGATIVE) is False
    for wrong in ("basis", "random", "maybe"):
        with pytest.raises(ValueError, match="is not a catch kind"):
            expected_answer(wrong)


def test_the_export_the_progress_page_and_the_exclusions_score_catch_trials_alike(
    engine: Engine,
) -> None:
    """One rule, three places: yes to the photo is right, yes to the noise is wrong."""
    from analysis.exclusions import ExclusionRule, find_exclusions
    from analysis.load import validate

    ids = _build(engine)  # one positive catch answered yes, one negative answered yes
    [session] = sessions_frame(engine, ids["study"]).to_dict("records")
    assert (session["n_catch"], session["catch_score"]) == (2, 0.5)
    [progress] = [a for a in study_progress(engine, ids["study"]).annotators
                  if a.session_id == ids["session"]]
    assert (progress.catch_answered, progress.catch_failed) == (2, 1)
    ratings = validate(ratings_frame(engine, ids["study"]))
    rule = ExclusionRule(max_catch_fail=0.49, min_catch_trials=2)  # 1 wrong of 2 breaks it
    assert find_exclusions(ratings, rule).annotators == [ids["annotator"]]
    assert find_exclusions(ratings, ExclusionRule(max_catch_fail=0.5,
                                                  min_catch_trials=2)).annotators == []
