"""The engine on a CUDA GPU, in bf16 autocast as the worker runs it there (skipped without CUDA).

`bench/gpu_check.sh` runs these on a GPU machine; elsewhere they skip.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from service.featurevis.directions import sample_directions
from service.featurevis.quality import natural_max
from service.featurevis.render import RenderRequest, RenderSettings, render
from service.featurevis.zoo import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
CPU = torch.device("cpu")
LAYER = "blocks.10"
SETTINGS = RenderSettings(image_size=64, steps=48)


def bf16() -> contextlib.AbstractContextManager[object]:
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def requests(count: int) -> list[RenderRequest]:
    directions = sample_directions(112, LAYER, "random", count, seed=3)
    return [RenderRequest(LAYER, v) for v in directions.vectors]


def test_bf16_renders_on_cuda_raise_every_objective() -> None:
    model = load_model("efficientnet_lite0")
    batch = requests(16)
    first = render(model, batch, replace(SETTINGS, steps=1), seed=0, device=CUDA, autocast=bf16)
    last = render(model, batch, SETTINGS, seed=0, device=CUDA, autocast=bf16)
    assert model.device.type == "cuda"
    assert all(b.objective > a.objective for a, b in zip(first, last, strict=True))
    for result in last:
        assert result.image.dtype == np.float32 and result.image.shape == (64, 64, 3)
        assert np.isfinite(result.objective) and 0 <= result.image.min() <= result.image.max() <= 1


def test_one_step_on_cuda_gives_the_cpu_image() -> None:
    """Initialization and transforms are drawn on the CPU, so the device changes no image."""
    model = load_model("efficientnet_lite0")
    batch = requests(4)
    settings = replace(SETTINGS, steps=1)
    on_gpu = render(model, batch, settings, seed=5, device=CUDA)
    on_cpu = render(model, batch, settings, seed=5, device=CPU)
    for gpu, cpu in zip(on_gpu, on_cpu, strict=True):
        np.testing.assert_allclose(gpu.image, cpu.image, atol=2e-3)


def test_natural_max_on_cuda_matches_the_cpu() -> None:
    model = load_model("efficientnet_lite0")
    batch = requests(6)
    on_gpu = natural_max(model, batch, SETTINGS, device=CUDA)
    on_cpu = natural_max(model, batch, SETTINGS, device=CPU)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=2e-2, atol=1e-3)
