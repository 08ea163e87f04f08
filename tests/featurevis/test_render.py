"""Batched render: it optimizes, images are independent, seeds decide pixels, bad input fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from service.featurevis.directions import sample_directions
from service.featurevis.param import FourierImage
from service.featurevis.render import (
    RenderRequest,
    RenderSettings,
    image_seeds,
    render,
    request_objectives,
)
from service.featurevis.zoo import ModelError, load_model

FAST = RenderSettings(image_size=24, steps=25, pad=4, jitter=2, jitter_after=2)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def requests_for(kind: str, count: int, layer: str = "conv3", channels: int = 32):
    d = sample_directions(channels, layer, kind, count, seed=11)
    return [RenderRequest(layer, v) for v in d.vectors]


def test_objective_rises_for_basis_and_random(tiny) -> None:
    requests = requests_for("basis", 3) + requests_for("random", 3)
    start = render(tiny, requests, RenderSettings(**{**FAST.to_dict(), "steps": 1}), seed=4)
    end = render(tiny, requests, FAST, seed=4)
    for before, after in zip(start, end, strict=True):
        assert after.objective > before.objective
        assert after.image.shape == (24, 24, 3) and after.image.dtype == np.float32
        assert 0 <= after.image.min() and after.image.max() <= 1


def test_only_the_vector_distinguishes_basis_from_random(tiny) -> None:
    basis = sample_directions(32, "conv3", "basis", 1, seed=2)
    as_random = RenderRequest("conv3", basis.vectors[0].copy(), seed=77)
    as_basis = RenderRequest("conv3", basis.vectors[0], seed=77)
    a, b = render(tiny, [as_basis, as_random], FAST, seed=0)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.objective == b.objective


def test_gradients_of_one_image_never_touch_another(tiny) -> None:
    requests = requests_for("random", 3)
    image = FourierImage(image_seeds(requests, 0), 24)
    vectors = {"conv3": torch.from_numpy(np.stack([r.vector for r in requests]))}
    values = request_objectives(tiny, image.image(), requests, vectors, FAST)
    values[1].backward()
    grad = image.spectrum.grad
    assert grad[1].abs().sum() > 0
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_an_image_does_not_depend_on_its_batch_mates(tiny) -> None:
    mine = RenderRequest("conv3", requests_for("random", 1)[0].vector, seed=5)
    others = requests_for("basis", 3) + [RenderRequest("conv2", np.eye(16, dtype=np.float32)[4])]
    alone = render(tiny, [mine], FAST, seed=1)[0]
    crowded = render(tiny, [others[0], mine, *others[1:]], FAST, seed=99)[1]
    np.testing.assert_allclose(alone.image, crowded.image, atol=1e-5)
    assert crowded.objective == pytest.approx(alone.objective, rel=1e-4)


def test_same_seed_same_pixels_other_seed_other_pixels(tiny) -> None:
    requests = requests_for("basis", 2) + requests_for("random", 2)
    a = render(tiny, requests, FAST, seed=8)
    b = render(tiny, requests, FAST, seed=8)
    c = render(tiny, requests, FAST, seed=9)
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        assert not np.array_equal(x.image, z.image)


def test_several_layers_in_one_batch_and_progress(tiny) -> None:
    calls: list[tuple[int, int]] = []
    requests = requests_for("basis", 1) + requests_for("random", 1, "conv1", 8)
    results = render(tiny, requests, FAST, seed=0, progress=lambda s, n: calls.append((s, n)))
    assert calls == [(s, 25) for s in range(1, 26)]
    assert len(results) == 2 and all(r.seconds > 0 for r in results)
    assert render(tiny, [], FAST, seed=0) == []


def test_cossim_objective_renders(tiny) -> None:
    settings = RenderSettings(**{**FAST.to_dict(), "objective": "cossim", "cossim_power": 2.0})
    first = render(
        tiny,
        requests_for("random", 2),
        RenderSettings(**{**settings.to_dict(), "steps": 1}),
        seed=3,
    )
    last = render(tiny, requests_for("random", 2), settings, seed=3)
    assert all(b.objective > a.objective for a, b in zip(first, last, strict=True))


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (
            RenderRequest("conv3", np.ones(31, np.float32) / np.sqrt(31)),
            ValueError,
            "needs \\(32,\\)",
        ),
        (RenderRequest("conv3", np.ones(32, np.float32)), ValueError, "unit norm"),
        (RenderRequest("conv3", np.full(32, np.nan, np.float32)), ValueError, "non-finite"),
        (RenderRequest("conv7", np.eye(32, dtype=np.float32)[0]), ModelError, "unknown layer"),
    ],
)
def test_bad_requests_fail_before_any_work(tiny, request_, error, message) -> None:
    with pytest.raises(error, match=message):
        render(tiny, [request_], FAST, seed=0)


def bf16_autocast() -> contextlib.AbstractContextManager[object]:
    return torch.autocast(device_type="cpu", dtype=torch.bfloat16)


def test_bf16_mixed_precision_optimizes_with_float32_objectives(tiny) -> None:
    requests = requests_for("random", 2)
    first = render(tiny, requests, RenderSettings(**{**FAST.to_dict(), "steps": 1}), seed=2,
                   autocast=bf16_autocast)  # fmt: skip
    last = render(tiny, requests, FAST, seed=2, autocast=bf16_autocast)
    assert all(b.objective > a.objective for a, b in zip(first, last, strict=True))
    assert last[0].image.dtype == np.float32


def test_every_step_runs_in_the_callers_autocast_and_the_final_objective_outside(tiny) -> None:
    entered: list[bool] = []  # per forward through the network: inside the caller's context?
    inside = [False]

    @contextlib.contextmanager
    def counting() -> Iterator[None]:
        inside[0] = True
        try:
            yield
        finally:
            inside[0] = False

    real = tiny.activations
    tiny.activations = lambda *args: entered.append(inside[0]) or real(*args)
    try:
        render(tiny, requests_for("basis", 2), FAST, seed=0, autocast=counting)
    finally:
        del tiny.activations
    assert entered == [True] * FAST.steps + [False]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": -5}, "image_size"),
        ({"steps": 0}, "steps"),
        ({"steps": -1}, "steps"),
        ({"lr": 0}, "lr"),
        ({"objective": "channel"}, "unknown objective"),
        ({"scale_min": 1.2}, "scale_min"),
        ({"jitter": -1}, "jitter"),
    ],
)
def test_settings_are_validated(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RenderSettings(**change)


def test_settings_round_trip_and_reject_unknown_keys() -> None:
    settings = RenderSettings(steps=64, objective="cossim")
    assert RenderSettings.from_dict(settings.to_dict()) == settings
    assert RenderSettings().to_dict()["steps"] == 512
    with pytest.raises(ValueError, match="unknown render settings: colour"):
        RenderSettings.from_dict({"colour": 1})


@pytest.mark.slow
def test_real_model_few_steps_mixed_layers() -> None:
    model = load_model("efficientnet_lite0")
    settings = RenderSettings(image_size=48, steps=12)
    requests = [
        RenderRequest("blocks.10", sample_directions(112, "blocks.10", "basis", 1, 0).vectors[0]),
        RenderRequest("blocks.4", sample_directions(40, "blocks.4", "random", 1, 0).vectors[0]),
    ]
    first = render(model, requests, RenderSettings(image_size=48, steps=1), seed=0)
    last = render(model, requests, settings, seed=0)
    assert all(b.objective > a.objective for a, b in zip(first, last, strict=True))
