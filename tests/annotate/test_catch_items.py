from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work
from service.store.images import decode_image
from service.store.models import CatchItem, Image
from service.studies.catch import (
    NEGATIVE_SOURCES,
    POSITIVE_SOURCES,
    ensure_catch_items,
    instruction_examples,
)


def test_catch_items_match_the_stimulus_size_and_are_made_once(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        items = ensure_catch_items(db, 48)
    with unit_of_work(engine) as db:
        again = ensure_catch_items(db, 48)
        other_size = ensure_catch_items(db, 64)
    assert [i.id for i in again] == [i.id for i in items]
    assert len(other_size) == len(items) == len(POSITIVE_SOURCES) + len(NEGATIVE_SOURCES)
    with unit_of_work(engine) as db:
        rows = db.execute(select(CatchItem.kind, Image.width, Image.height, Image.png)
                          .join(Image, CatchItem.image_sha256 == Image.sha256)).all()
        assert db.scalar(select(func.count(CatchItem.id))) == 2 * len(items)
    assert {(w, h) for _, w, h, _ in rows} == {(48, 48), (64, 64)}
    assert sorted(kind for kind, width, _, _ in rows if width == 48) == sorted(
        ["positive"] * len(POSITIVE_SOURCES) + ["negative"] * len(NEGATIVE_SOURCES)
    )
    for *_, png in rows:
        assert b"tEXt" not in png and b"iTXt" not in png and b"tIME" not in png


def test_positives_have_structure_and_negatives_do_not(engine: Engine) -> None:
    """A crude check that the answers are obvious: photos are smooth at small scale and vary at
    large scale; noise is the opposite, flat fields are neither."""
    with unit_of_work(engine) as db:
        items = ensure_catch_items(db, 64)
        pixels = {item.source: (item.kind, decode_image(item.image.png).astype(float).mean(-1))
                  for item in items}
    for source, (kind, gray) in pixels.items():
        neighbour = np.abs(np.diff(gray, axis=1)).mean()
        spread = gray.std()
        if kind == "positive":
            assert neighbour < 0.6 * spread, source
        else:
            assert neighbour > 0.6 * spread or spread < 10, source


def test_bad_size_is_refused(engine: Engine) -> None:
    with unit_of_work(engine) as db, pytest.raises(ValueError, match="16…4096"):
        ensure_catch_items(db, 8)


def test_instruction_examples_are_not_catch_items(engine: Engine) -> None:
    examples = instruction_examples(64)
    assert [answer for answer, _, _ in examples] == ["Yes", "Yes", "No"]
    example_hashes = {
        hashlib.sha256(base64.b64decode(uri.split(",", 1)[1])).hexdigest()
        for _, _, uri in instruction_examples(64)
    }
    with unit_of_work(engine) as db:
        catch_hashes = {item.image_sha256 for item in ensure_catch_items(db, 64)}
    assert example_hashes.isdisjoint(catch_hashes)
