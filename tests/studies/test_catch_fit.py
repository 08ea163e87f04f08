"""Catch items' PNG byte lengths land inside the range of their study's stimuli, whether their
pictures had to gain bytes or lose them, at the stimuli's size; a range no picture can reach
refuses the study and writes nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from service.store.db import unit_of_work
from service.store.images import encode_png, store
from service.store.models import CatchItem, Direction, Image, Job, Stimulus, Study, StudyStimulus
from service.store.tokens import new_token
from service.studies.catch import (
    NEGATIVE_SOURCES,
    POSITIVE_SOURCES,
    SOURCE_PREFIX,
    catch_pool_complete,
    ensure_study_catch_items,
    negative_pixels,
    positive_pixels,
    study_byte_range,
    study_catch_items,
)
from service.studies.catch_fit import ByteRange, stimulus_window, targets
from service.studies.errors import StudyError
from service.studies.study import StudyRequest, create_study

SIDE = 64
_jobs = itertools.count()


def noise_stimuli(side: int, window: ByteRange, count: int = 3) -> list[np.ndarray]:
    """Stand-ins for renders whose PNGs span most of `window`: grey fields with uniform noise of
    growing amplitude (the PNG grows with it), the first `count` that land inside."""
    rng = np.random.default_rng(0)
    found = []
    for amplitude in np.linspace(1, 127, 2000):
        pixels = np.rint(128 + amplitude * rng.uniform(-1, 1, (side, side, 3))).astype(np.uint8)
        length = len(encode_png(pixels).png)
        if length in window:
            found.append(pixels)
        elif length > window.high + 200:  # past it for good: the length grows with amplitude
            break
    assert len(found) >= count, f"no {count} stimuli in {window}"
    return [found[round(i * (len(found) - 1) / (count - 1))] for i in range(count)]


def job_over(engine: Engine, pixels: list[np.ndarray]) -> tuple[int, int]:
    """A finished job with one basis direction per picture, its max render that picture, and a
    draft study over them (written straight with the ORM); returns (job id, study id)."""
    number = next(_jobs)
    with unit_of_work(engine) as db:
        job = Job(name=f"fit{number}", model="efficientnet_lite0", layers=["blocks.10"],
                  n_basis=len(pixels), n_random=0, image_size=pixels[0].shape[0], steps=8,
                  seed=number, status="done")
        db.add(job)
        db.flush()
        study = Study(name=f"Fit {number}", slug=f"fit-{number}", status="draft", question="?",
                      ratings_per_item=1, trials_per_session=4, catch_every=2, practice_count=0,
                      completion_code="FIT0")
        db.add(study)
        db.flush()
        for index, picture in enumerate(pixels):
            direction = Direction(job_id=job.id, layer="blocks.10", kind="basis", index=index,
                                  channel=index, vector=b"\0" * 8, seed=index)
            db.add(direction)
            db.flush()
            stimulus = Stimulus(direction_id=direction.id, token=new_token(),
                                image_sha256=store(db, picture).sha256, objective=1.0,
                                render_seconds=0.1)
            db.add(stimulus)
            db.flush()
            db.add(StudyStimulus(study_id=study.id, stimulus_id=stimulus.id))
        return job.id, study.id


def undrawn_lengths(side: int) -> dict[str, int]:
    """Each source's PNG length as drawn, before any fitting."""
    lengths = {name: len(encode_png(positive_pixels(name, side)).png) for name in POSITIVE_SOURCES}
    lengths |= {name: len(encode_png(negative_pixels(name, side)).png)
                for name in NEGATIVE_SOURCES}
    return lengths


def test_targets_are_stimulus_lengths_spread_like_them() -> None:
    assert targets([10, 20, 30, 40], 4) == [10, 20, 30, 40]
    assert targets([40, 10, 30, 20], 2) == [20, 40]
    assert targets([7], 3) == [7, 7, 7]


# 64 px, 10–11 KB: every photo must gain bytes, uniform noise must lose them. 64 px, 7.5–8.3 KB:
# the detailed photos and all noise must lose bytes, the flat textures and simple photos gain
# them. 32 px, 1.60–1.65 KB (renders of 2 steps are this smooth): nearly everything must lose.
@pytest.mark.parametrize(("side", "window", "photos_shrink"), [
    (SIDE, ByteRange(10_000, 11_000), False),
    (SIDE, ByteRange(7_500, 8_300), True),
    (32, ByteRange(1_600, 1_650), True),
])
def test_catch_lengths_land_inside_the_stimuli_range_from_below_and_above(
        engine: Engine, side: int, window: ByteRange, photos_shrink: bool) -> None:
    _, study_id = job_over(engine, noise_stimuli(side, window))
    before = undrawn_lengths(side)
    assert min(before.values()) < window.low and max(before.values()) > window.high
    with unit_of_work(engine) as db:
        stimuli = study_byte_range(db, study_id, side)
        assert stimuli is not None and stimuli.low in window and stimuli.high in window
        items = ensure_study_catch_items(db, study_id, side)
        drawn = {item.source.removeprefix(SOURCE_PREFIX): (item.kind, len(item.image.png),
                                                           item.image.width, item.image.height)
                 for item in items}
        ids = sorted(item.id for item in items)
    assert sorted(drawn) == sorted(POSITIVE_SOURCES + NEGATIVE_SOURCES)
    for name, (_, length, width, height) in drawn.items():
        assert (width, height) == (side, side), name
        assert stimuli.low <= length <= stimuli.high, (name, length, stimuli)
    grew = [name for name in drawn if before[name] < stimuli.low]
    shrank = [name for name in drawn if before[name] > stimuli.high]
    assert "uniform-noise-1" in shrank and "horse" in grew
    assert ("astronaut" in shrank) == photos_shrink
    # made once: the same study gets the same items, read or ensured again
    with unit_of_work(engine) as db:
        assert sorted(item.id for item in ensure_study_catch_items(db, study_id, side)) == ids
        pool = study_catch_items(db, study_id, side)
        assert sorted(item.id for item in pool) == ids and catch_pool_complete(pool)


def test_an_unreachable_range_refuses_the_study_and_writes_nothing(engine: Engine) -> None:
    """Uniform noise is incompressible: every PNG has the same length (3,172 bytes, a window of
    1 % about it), which no recognisable photo reaches. A catch item of another length would
    give itself away, so no study."""
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 256, (32, 32, 3)).astype(np.uint8) for _ in range(3)]
    assert len({len(encode_png(p).png) for p in pictures}) == 1
    job_id, _ = job_over(engine, pictures)
    with unit_of_work(engine) as db:
        studies = db.scalar(select(func.count(Study.id)))
    with pytest.raises(StudyError, match=r"catch items: skimage:\w+ can be drawn at .* but the "
                                         r"stimuli's PNGs are 3,157–3,188 bytes at 32×32 px"):
        create_study(engine, StudyRequest(job_ids=[job_id], name="Noise"))
    with unit_of_work(engine) as db:
        assert db.scalar(select(func.count(Study.id))) == studies
        assert db.scalar(select(func.count(CatchItem.id))) == 0
    # without catch and practice trials no catch item is needed, so the study can be made
    create_study(engine, StudyRequest(job_ids=[job_id], name="Noise", catch_every=0,
                                      practice_count=0))
    with unit_of_work(engine) as db:
        assert db.scalar(select(func.count(CatchItem.id))) == 0
        assert db.scalar(select(func.count(Image.sha256))) == 3


def test_a_range_of_one_length_is_widened_to_one_percent_about_it() -> None:
    """No drawing hits one exact length; a wide range is left as it is."""
    assert stimulus_window([2589]) == ByteRange(2577, 2602)
    assert stimulus_window([2589, 2589, 2590]) == ByteRange(2577, 2602)
    assert stimulus_window([36475, 40079, 38000]) == ByteRange(36475, 40079)
    window = stimulus_window([1000, 1004])
    assert window.high - window.low == 10 and window.low <= 1000 and window.high >= 1004
