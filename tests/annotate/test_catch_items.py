from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work
from service.store.images import decode_image, store
from service.store.models import CatchItem, Image, Trial
from service.store.tokens import new_token
from service.studies.catch import (
    NEGATIVE_SOURCES,
    POSITIVE_SOURCES,
    SOURCE_PREFIX,
    ensure_catch_items,
    instruction_examples,
    negative_pixels,
    positive_pixels,
    study_byte_range,
)
from tests.annotate.conftest import answer_all, make_study, start

DENSE_48 = [5_800, 6_100, 6_400]  # PNG lengths of dense 48 px renders: every photo must gain


def test_catch_items_match_the_stimuli_and_are_made_once(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        items = ensure_catch_items(db, 48, DENSE_48)
    with unit_of_work(engine) as db:
        again = ensure_catch_items(db, 48, [5_500, 6_800])  # a range the items lie in
        other_size = ensure_catch_items(db, 64, [10_000, 11_000])
    assert sorted(i.id for i in again) == sorted(i.id for i in items)
    assert len(other_size) == len(items) == len(POSITIVE_SOURCES) + len(NEGATIVE_SOURCES)
    with unit_of_work(engine) as db:
        rows = db.execute(select(CatchItem.kind, Image.width, Image.height, Image.png)
                          .join(Image, CatchItem.image_sha256 == Image.sha256)).all()
        assert db.scalar(select(func.count(CatchItem.id))) == 2 * len(items)
    assert {(w, h) for _, w, h, _ in rows} == {(48, 48), (64, 64)}
    assert sorted(kind for kind, width, _, _ in rows if width == 48) == sorted(
        ["positive"] * len(POSITIVE_SOURCES) + ["negative"] * len(NEGATIVE_SOURCES)
    )
    assert all(5_800 <= len(png) <= 6_400 for _, width, _, png in rows if width == 48)
    for *_, png in rows:
        assert b"tEXt" not in png and b"iTXt" not in png and b"tIME" not in png


def test_positives_have_structure_and_negatives_do_not(engine: Engine) -> None:
    """A crude check that the answers stay obvious after fitting, whether a picture gained bytes
    (grain) or lost them (blur, less contrast): photos are smooth at small scale and vary at
    large scale; noise is the opposite, flat fields are neither."""
    for lengths in ([10_000, 11_000], [7_500, 8_000]):
        with unit_of_work(engine) as db:
            items = ensure_catch_items(db, 64, lengths)
            pixels = {item.source: (item.kind, decode_image(item.image.png).astype(float).mean(-1))
                      for item in items}
        for source, (kind, gray) in pixels.items():
            neighbour = np.abs(np.diff(gray, axis=1)).mean()
            spread = gray.std()
            if kind == "positive":
                assert neighbour < 0.6 * spread, (source, lengths)
            else:
                assert neighbour > 0.6 * spread or spread < 10, (source, lengths)


def test_bad_size_or_no_stimuli_is_refused(engine: Engine) -> None:
    with unit_of_work(engine) as db, pytest.raises(ValueError, match="16…4096"):
        ensure_catch_items(db, 8, [100])
    with unit_of_work(engine) as db, pytest.raises(ValueError, match="got none"):
        ensure_catch_items(db, 32, [])


def test_instruction_examples_are_not_catch_items(engine: Engine) -> None:
    examples = instruction_examples(64)
    assert [answer for answer, _, _ in examples] == ["Yes", "Yes", "No"]
    example_hashes = {
        hashlib.sha256(base64.b64decode(uri.split(",", 1)[1])).hexdigest()
        for _, _, uri in instruction_examples(64)
    }
    with unit_of_work(engine) as db:
        catch_hashes = {item.image_sha256 for item in ensure_catch_items(db, 64, [8_800, 9_200])}
    assert example_hashes.isdisjoint(catch_hashes)


def test_a_study_made_before_gets_fitting_items_and_keeps_its_old_ones(
        client: FlaskClient, engine: Engine) -> None:
    """A study whose pool was drawn before catch items were fitted to lengths: its next session
    takes new items inside its stimuli's range; the old items (and trials naming them) stay."""
    info = make_study(engine, n_basis=4, n_random=4, trials=8, catch_every=2, practice=1)
    with unit_of_work(engine) as db:
        old = []
        for kind, names, make in (("positive", POSITIVE_SOURCES, positive_pixels),
                                  ("negative", NEGATIVE_SOURCES, negative_pixels)):
            for name in names:
                item = CatchItem(kind=kind, token=new_token(), source=f"{SOURCE_PREFIX}{name}",
                                 image_sha256=store(db, make(name, 32)).sha256)
                db.add(item)
                old.append(item)
        db.flush()
        old_ids = {item.id for item in old}
        window = study_byte_range(db, info.id, 32)
        assert window is not None
        assert any(len(item.image.png) not in window for item in old)
    start(client, info.slug)
    answer_all(client)
    with unit_of_work(engine) as db:
        shown = db.execute(select(Trial.kind, Image.png, Image.width)
                           .join(CatchItem, Trial.catch_item_id == CatchItem.id)
                           .join(Image, CatchItem.image_sha256 == Image.sha256)).all()
        assert {item_id for item_id in db.scalars(select(CatchItem.id))} >= old_ids
    assert {kind for kind, _, _ in shown} == {"catch", "practice"}
    for _, png, width in shown:
        assert width == 32 and len(png) in window
