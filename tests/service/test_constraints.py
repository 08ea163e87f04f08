"""The database itself refuses bad rows, on SQLite and on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from service.store import images
from service.store.db import unit_of_work
from service.store.models import (
    AnnotationSession,
    Annotator,
    CatchItem,
    Rating,
    Study,
    Trial,
)


def _trial(engine: Engine) -> int:
    with unit_of_work(engine) as s:
        image = images.store(s, np.zeros((8, 8, 3), dtype=np.uint8))
        catch = CatchItem(kind="negative", token="c" * 32, image_sha256=image.sha256, source="flat")
        study = Study(name="s", slug="s", question="q?", completion_code="C")
        annotator = Annotator(external_id="a", source="anonymous")
        s.add_all([catch, study, annotator])
        s.flush()
        session = AnnotationSession(study_id=study.id, annotator_id=annotator.id, token="t" * 32)
        s.add(session)
        s.flush()
        trial = Trial(session_id=session.id, position=0, kind="catch",
                      catch_item_id=catch.id, token="r" * 32)
        s.add(trial)
        s.flush()
        return trial.id


def _rating(trial_id: int, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        trial_id=trial_id, interpretable=True, confidence=3, label=None, rt_ms=900
    )
    values.update(overrides)
    return values


def test_second_rating_for_a_trial_is_refused(engine: Engine) -> None:
    trial_id = _trial(engine)
    with unit_of_work(engine) as s:
        s.execute(insert(Rating).values(**_rating(trial_id)))
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.execute(insert(Rating).values(**_rating(trial_id, interpretable=False)))
    with unit_of_work(engine) as s:
        assert s.query(Rating).count() == 1


@pytest.mark.parametrize("confidence", [0, 6, 7, -1])
def test_confidence_outside_1_to_5_is_refused(engine: Engine, confidence: int) -> None:
    trial_id = _trial(engine)
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.execute(insert(Rating).values(**_rating(trial_id, confidence=confidence)))


def test_negative_response_time_is_refused(engine: Engine) -> None:
    trial_id = _trial(engine)
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.execute(insert(Rating).values(**_rating(trial_id, rt_ms=-5)))


def test_dangling_foreign_key_is_refused(engine: Engine) -> None:
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.execute(insert(Rating).values(**_rating(987654)))


def test_unknown_enumeration_value_is_refused(engine: Engine) -> None:
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.add(Study(name="s", slug="x", question="q", completion_code="C", status="paused"))


def test_trial_kind_must_match_its_item(engine: Engine) -> None:
    trial_id = _trial(engine)
    with unit_of_work(engine) as s:
        session_id = s.get_one(Trial, trial_id).session_id
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.add(Trial(session_id=session_id, position=1, kind="stimulus", token="z" * 32))


def test_public_tokens_are_unique(engine: Engine) -> None:
    trial_id = _trial(engine)
    with unit_of_work(engine) as s:
        trial = s.get_one(Trial, trial_id)
        session_id, catch_id = trial.session_id, trial.catch_item_id
    with pytest.raises(IntegrityError), unit_of_work(engine) as s:
        s.add(Trial(session_id=session_id, position=1, kind="catch",
                    catch_item_id=catch_id, token="r" * 32))
