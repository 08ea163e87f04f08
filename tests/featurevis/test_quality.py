"""Quality measure: the natural-photo maximum of each request's own objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from service.featurevis import objectives
from service.featurevis.quality import natural_max, natural_photos
from service.featurevis.render import RenderRequest, RenderSettings
from service.featurevis.zoo import load_model


def test_bundled_photos_five_crops_each() -> None:
    photos = natural_photos(32)
    assert photos.shape == (75, 32, 32, 3) and photos.dtype == np.float32
    assert 0 <= photos.min() and photos.max() <= 1


def test_photo_folder(tmp_path) -> None:
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    photos = natural_photos(16, folder=tmp_path)
    assert photos.shape == (5, 16, 16, 3)
    np.testing.assert_allclose(photos, 200 / 255, atol=1e-5)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        natural_photos(16, folder=empty)


@pytest.mark.parametrize("objective", ["dot", "cossim"])
def test_natural_max_is_the_max_of_the_same_objective(objective: str) -> None:
    model = load_model("tiny")
    settings = RenderSettings(image_size=16, objective=objective)
    rng = np.random.default_rng(0)
    photos = rng.random((7, 16, 16, 3), dtype=np.float32)
    vectors = [np.eye(32, dtype=np.float32)[3], np.eye(16, dtype=np.float32)[5]]
    requests = [RenderRequest("conv3", vectors[0]), RenderRequest("conv2", vectors[1])]
    best = natural_max(model, requests, settings, photos=photos)
    images = torch.from_numpy(photos).permute(0, 3, 1, 2)
    for value, req in zip(best, requests, strict=True):
        acts = model.activations(images, [req.layer])[req.layer]
        vec = torch.from_numpy(req.vector).expand(7, -1)
        expected = objectives.evaluate(objective, acts, vec).max()
        assert value == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="N×H×W×3"):
        natural_max(model, requests, settings, photos=photos[..., :2])
