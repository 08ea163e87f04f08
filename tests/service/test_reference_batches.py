"""Reference renders batch many directions and signs together; an image must not depend on the
batch it lands in, nor on the worker's batch size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import Engine, select

from service.generation.jobs import get_job, submit
from service.generation.worker import run
from service.store.db import unit_of_work
from service.store.image_sets import add_folder
from service.store.models import Direction, Image, Stimulus
from tests.service.test_exemplar_pass import K, _folder, tiny, worker


def _renders(engine: Engine, job_id: int) -> dict[tuple[int, str, int], tuple[np.ndarray, float]]:
    """(direction position, sign, replicate) → (pixels, objective) of a job's references."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Direction.id, Stimulus.sign, Stimulus.replicate, Image.png, Stimulus.objective)
            .join(Stimulus, Stimulus.direction_id == Direction.id)
            .join(Image, Image.sha256 == Stimulus.image_sha256)
            .where(Direction.job_id == job_id)
        ).all()
    first = min(row[0] for row in rows)
    return {
        (direction - first, sign, replicate): (
            np.asarray(PILImage.open(io.BytesIO(png)), dtype=np.int16), float(objective))
        for direction, sign, replicate, png, objective in rows
    }


def test_batch_size_changes_no_reference_image(engine: Engine, tmp_path: Path) -> None:
    add_folder(engine, "small", _folder(tmp_path / "small", 40))
    request = tiny(diversity=1.0, steps=4)
    one_group = submit(engine, request)
    run(worker(engine, batch_size=K))  # a batch per direction and sign
    together = submit(engine, request)
    run(worker(engine, batch_size=64))  # every direction and sign of the shard at once
    assert get_job(engine, one_group).status == get_job(engine, together).status == "done"
    small, large = _renders(engine, one_group), _renders(engine, together)
    assert len(small) == 4 * 2 * K and small.keys() == large.keys()
    for key, (pixels, objective) in small.items():
        other_pixels, other_objective = large[key]
        assert np.abs(pixels - other_pixels).max() <= 2, key
        assert np.isclose(objective, other_objective, rtol=1e-3, atol=1e-4), key
    distinct = {small[key][0].tobytes() for key in small}
    assert len(distinct) == len(small)  # and the images differ from each other
