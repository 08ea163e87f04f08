"""A process reuses a study's items for a while, but never items that were still to be made."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, select

from annotate.study_items import read_items
from service.store.db import unit_of_work
from service.store.models import Study
from tests.annotate.conftest import make_study


def _statements_of_reads(engine: Engine, slug: str, reads: int) -> list[int]:
    """How many statements each of `reads` reads of the study's items ran."""
    counts: list[int] = []

    def count(*_args: Any) -> None:
        counts[-1] += 1

    with unit_of_work(engine) as db:
        study = db.scalars(select(Study).where(Study.slug == slug)).one()
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(reads):
            with unit_of_work(engine) as db:
                counts.append(0)
                items = read_items(db, study)
                assert len(items.stimuli) == 8
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts


def test_items_read_once_are_reused(engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, catch_every=0, practice=0)
    first, second = _statements_of_reads(engine, info.slug, 2)
    assert first > 0 and second == 0


def test_items_with_catch_items_still_to_make_are_read_again(engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, catch_every=3, practice=0)
    first, second = _statements_of_reads(engine, info.slug, 2)
    assert first > 0 and second > 0
