"""On real EfficientNet-Lite0 renders at the demo's 128 px: a study's catch items have the
stimuli's size and PNG byte lengths inside the stimuli's range, though as drawn most of them lie
outside it (photos far shorter, uniform noise longer)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from service.store.db import unit_of_work
from service.store.images import encode_png
from service.studies.catch import (
    NEGATIVE_SOURCES,
    POSITIVE_SOURCES,
    SOURCE_PREFIX,
    study_byte_range,
    study_catch_items,
)
from service.studies.study import StudyRequest, create_study
from tests.studies.test_catch_fit import job_over, undrawn_lengths

SIDE = 128  # the demo job's image size
STEPS = 16  # few steps: the renders already carry the dense detail of the demo's 256


@pytest.fixture(scope="module")
def renders() -> list[np.ndarray]:
    """Two basis and two random directions of blocks.10, rendered as a job would render them."""
    from service.featurevis import RenderRequest, RenderSettings, load_model, render
    from service.featurevis.directions import sample_directions

    model = load_model("efficientnet_lite0")
    channels = model.channels("blocks.10")
    vectors = [*sample_directions(channels, "blocks.10", "basis", 2, 0).vectors,
               *sample_directions(channels, "blocks.10", "random", 2, 0).vectors]
    requests = [RenderRequest("blocks.10", vector, seed=i) for i, vector in enumerate(vectors)]
    results = render(model, requests, RenderSettings(image_size=SIDE, steps=STEPS), seed=0)
    return [result.image for result in results]


@pytest.mark.slow
def test_catch_items_of_a_study_over_real_renders_lie_in_the_stimuli_range(
        engine: Engine, renders: list[np.ndarray]) -> None:
    lengths = sorted(len(encode_png(pixels).png) for pixels in renders)
    before = undrawn_lengths(SIDE)
    outside = [name for name, n in before.items() if not lengths[0] <= n <= lengths[-1]]
    assert len(outside) >= len(before) - 2  # as drawn, nearly every one would give itself away
    job_id, _ = job_over(engine, renders)
    study_id = create_study(engine, StudyRequest(job_ids=[job_id], name="Pictures"))
    with unit_of_work(engine) as db:
        stimuli = study_byte_range(db, study_id, SIDE)
        items = study_catch_items(db, study_id, SIDE)
        drawn = {item.source.removeprefix(SOURCE_PREFIX): (len(item.image.png), item.image.width,
                                                           item.image.height) for item in items}
    assert stimuli is not None and (stimuli.low, stimuli.high) == (lengths[0], lengths[-1])
    assert sorted(drawn) == sorted(POSITIVE_SOURCES + NEGATIVE_SOURCES)
    for name, (length, width, height) in drawn.items():
        assert (width, height) == (SIDE, SIDE), name
        assert stimuli.low <= length <= stimuli.high, (name, length, stimuli)
