"""Min renders and the diversity term: a min render goes below every natural photo on a planted
direction, and diversity makes one direction's images measurably less alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from service.featurevis.directions import sample_directions
from service.featurevis.objectives import gram_cosines, gram_similarity, mean_pairwise_gram_cosine
from service.featurevis.quality import natural_max, natural_photos
from service.featurevis.render import RenderRequest, RenderSettings, render, request_objectives
from service.featurevis.zoo import LoadedModel, load_model

FAST = RenderSettings(image_size=32, steps=40, pad=4, jitter=2, jitter_after=2)
PLANTED = RenderSettings(image_size=32, steps=60, lr=0.3, pad=4, jitter=2, jitter_after=2)
RED_MINUS_GREEN = np.array([0, 0, 0, 1], np.float32)


class ColourTrunk(nn.Module):
    """One planted layer `colour`: per pixel R, G, B and R − G of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = nn.Conv2d(3, 4, 1, bias=False)
        weights = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0]]
        with torch.no_grad():
            self.colour.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(4, 3, 1, 1))

    def layer_names(self) -> tuple[str, ...]:
        return ("colour",)

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        return images

    def features(self, x: torch.Tensor, last: str):  # type: ignore[no-untyped-def]
        yield "colour", self.colour(x)


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return load_model("tiny")


def _images(results) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.from_numpy(np.stack([r.image for r in results])).permute(0, 3, 1, 2)


def test_min_renders_go_below_every_natural_photo_and_max_renders_above() -> None:
    model = LoadedModel("colour", ColourTrunk())  # type: ignore[arg-type]
    photos = natural_photos(PLANTED.image_size)
    requests = [RenderRequest("colour", RED_MINUS_GREEN, seed=i, sign=sign)
                for sign in (1, -1) for i in range(3)]
    results = render(model, requests, PLANTED, seed=0)
    vectors = {"colour": torch.from_numpy(np.stack([RED_MINUS_GREEN] * 6))}
    # the objective of +v, whatever sign the image was rendered for
    plus_v = request_objectives(model, _images(results), [RenderRequest("colour", RED_MINUS_GREEN)]
                                * 6, vectors, PLANTED).numpy()
    natural = torch.from_numpy(photos).permute(0, 3, 1, 2)
    natural_values = request_objectives(
        model, natural, [RenderRequest("colour", RED_MINUS_GREEN)] * len(photos),
        {"colour": torch.from_numpy(np.stack([RED_MINUS_GREEN] * len(photos)))}, PLANTED).numpy()
    assert plus_v[3:].max() < natural_values.min()  # min renders: below every photo
    assert plus_v[:3].min() > natural_values.max()  # max renders: above every photo
    # a min render's own objective is that of −v, and natural_max of −v is −(the lowest photo)
    for result, value in zip(results[3:], plus_v[3:], strict=True):
        assert result.objective == pytest.approx(-value, abs=1e-5)
    best_min = natural_max(model, requests[3:4], PLANTED, photos=photos)[0]
    assert best_min == pytest.approx(-natural_values.min(), abs=1e-5)
    assert min(r.objective for r in results[3:]) > best_min


def test_diversity_lowers_the_mean_pairwise_gram_similarity_of_a_directions_images(tiny) -> None:
    vector = sample_directions(32, "conv3", "random", 1, seed=5).vectors[0]

    def similarity(weight: float) -> float:
        requests = [RenderRequest("conv3", vector, seed=10 + i, group="d", diversity=weight)
                    for i in range(4)]
        images = _images(render(tiny, requests, FAST, seed=0))
        with torch.no_grad():
            acts = tiny.activations(images, ["conv3"])
        return mean_pairwise_gram_cosine(acts["conv3"])

    plain, diverse = similarity(0.0), similarity(10.0)
    assert diverse < plain - 0.01, (plain, diverse)


def test_groups_are_diversified_apart_and_the_term_leaves_other_images_alone(tiny) -> None:
    vector = sample_directions(32, "conv3", "random", 1, seed=5).vectors[0]
    alone = render(tiny, [RenderRequest("conv3", vector, seed=3)], FAST, seed=0)[0]
    mixed = render(tiny, [RenderRequest("conv3", vector, seed=3)] + [
        RenderRequest("conv3", vector, seed=20 + i, group="g", diversity=10.0) for i in range(3)
    ], FAST, seed=0)[0]
    np.testing.assert_allclose(alone.image, mixed.image, atol=1e-5)


def test_gram_similarity_of_equal_images_and_its_bounds() -> None:
    acts = torch.rand(1, 5, 6, 6).repeat(3, 1, 1, 1)
    assert float(gram_similarity(acts)) == pytest.approx(2.0, rel=1e-5)  # Σ_{i≠j} 1 / 3
    assert mean_pairwise_gram_cosine(acts) == pytest.approx(1.0, rel=1e-5)
    assert float(gram_similarity(acts[:1])) == 0.0
    cosines = gram_cosines(torch.randn(4, 5, 6, 6))
    assert torch.allclose(cosines.diagonal(), torch.ones(4)) and cosines.abs().max() <= 1 + 1e-5


@pytest.mark.parametrize(("request_", "message"), [
    (RenderRequest("conv3", np.eye(32, dtype=np.float32)[0], sign=0), "sign must be 1 or -1"),
    (RenderRequest("conv3", np.eye(32, dtype=np.float32)[0], diversity=-1, group=1),
     "diversity must be >= 0"),
    (RenderRequest("conv3", np.eye(32, dtype=np.float32)[0], diversity=1),
     "diversity needs a group"),
])
def test_bad_signs_and_weights_fail_before_any_work(tiny, request_, message) -> None:
    with pytest.raises(ValueError, match=message):
        render(tiny, [request_], FAST, seed=0)


def test_a_group_may_not_mix_weights(tiny) -> None:
    v = np.eye(32, dtype=np.float32)[0]
    with pytest.raises(ValueError, match="group 'g' mixes layers or diversity weights"):
        render(tiny, [RenderRequest("conv3", v, group="g", diversity=1.0),
                      RenderRequest("conv3", v, group="g", diversity=2.0)], FAST, seed=0)
