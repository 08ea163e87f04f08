"""The Lite family: Lite0 unchanged by the shared architecture, Lite2 built to its wheel's sizes."""

from __future__ import annotations

import pytest
import torch

from service.featurevis.efficientnet_lite import (
    STAGES,
    EfficientNetLite0,
    EfficientNetLite2,
    round_channels,
    scaled_stages,
)

# Read off the Lite2 wheel's state dict: each block's output channels, in order.
LITE2_BLOCK_CHANNELS = [16] + [24] * 3 + [48] * 3 + [88] * 4 + [120] * 4 + [208] * 5 + [352]


def block_channels(net: torch.nn.Module) -> list[int]:
    return [block._project_conv.weight.shape[0] for block in net._blocks]


def test_lite0_keeps_the_b0_stages_and_its_layer_names() -> None:
    assert scaled_stages(1.0, 1.0) == STAGES
    net = EfficientNetLite0()
    assert net.layer_names() == ("stem", *(f"blocks.{i}" for i in range(16)), "head")
    assert block_channels(net)[10] == 112


def test_lite2_scales_width_by_1_1_and_depth_by_1_2() -> None:
    net = EfficientNetLite2()
    assert len(net._blocks) == 21
    assert block_channels(net) == LITE2_BLOCK_CHANNELS
    assert net._conv_stem.weight.shape[0] == 32  # the stem and head widths stay fixed
    assert net._conv_head.weight.shape == (1280, 352, 1, 1)
    assert net.layer_names()[-2:] == ("blocks.20", "head")


@pytest.mark.parametrize(("channels", "expected"), [(16, 16), (40, 48), (112, 120), (192, 208)])
def test_round_channels_follows_the_release(channels: int, expected: int) -> None:
    assert round_channels(channels, 1.1) == expected


@pytest.mark.slow
def test_lite2_loads_its_wheel_strictly_and_classifies_a_cat() -> None:
    import skimage.data
    import torch.nn.functional as F

    from service.featurevis.efficientnet_lite import load_pretrained, wheel_weights

    state = torch.load(wheel_weights("efficientnet_lite2"), map_location="cpu", weights_only=True)
    EfficientNetLite2().load_state_dict(state, strict=True)  # raises on any mismatch
    net = load_pretrained("efficientnet_lite2")
    assert len(net._blocks) == 21
    cat = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    cat = F.interpolate(cat, size=(260, 260), mode="bilinear", antialias=True)
    with torch.no_grad():
        top = net(net.normalize(cat)).argmax().item()
    assert 281 <= top <= 285  # ImageNet's domestic cats
