"""The static layer table equals what every zoo network reports, so it cannot drift from them."""

from __future__ import annotations

import pytest

from service.featurevis.layer_table import LAYERS, MODEL_NAMES, layer_channels
from service.featurevis.zoo import load_model

BUILT_IN_SECONDS = ("tiny", "efficientnet_lite0")  # the torchvision networks take seconds each


@pytest.mark.parametrize(
    "name",
    [n if n in BUILT_IN_SECONDS else pytest.param(n, marks=pytest.mark.slow) for n in MODEL_NAMES],
)
def test_the_table_is_what_the_network_reports(name: str) -> None:
    model = load_model(name, weights="random")
    assert [(layer, model.channels(layer)) for layer in model.layers] == list(LAYERS[name])


def test_unknown_model_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="unknown model 'lenet'; models: efficientnet_lite0, "):
        layer_channels("lenet")
    assert layer_channels("tiny") == {"conv1": 8, "conv2": 16, "conv3": 32}
