"""Every zoo model's visualizable layers, in forward order, with their channel counts, as data.

Checking a job request (does the layer exist, does it have enough channels for the basis sample)
must not build a network: the site checks requests inside a web process, which should never
import torch or hold a model. So the zoo's layers are written out here, with no import beyond
the standard library, and the engine's tests compare this table with what every model reports
(random weights), so that it cannot drift from the networks.
"""

from __future__ import annotations

LAYERS: dict[str, tuple[tuple[str, int], ...]] = {
    "efficientnet_lite0": (
        ("stem", 32), ("blocks.0", 16), ("blocks.1", 24), ("blocks.2", 24), ("blocks.3", 40),
        ("blocks.4", 40), ("blocks.5", 80), ("blocks.6", 80), ("blocks.7", 80),
        ("blocks.8", 112), ("blocks.9", 112), ("blocks.10", 112), ("blocks.11", 192),
        ("blocks.12", 192), ("blocks.13", 192), ("blocks.14", 192), ("blocks.15", 320),
        ("head", 1280),
    ),
    "googlenet": (
        ("conv1", 64), ("conv2", 64), ("conv3", 192), ("inception3a", 256),
        ("inception3b", 480), ("inception4a", 512), ("inception4b", 512), ("inception4c", 512),
        ("inception4d", 528), ("inception4e", 832), ("inception5a", 832), ("inception5b", 1024),
    ),
    "resnet50": (
        ("conv1", 64), ("layer1.0", 256), ("layer1.1", 256), ("layer1.2", 256), ("layer1", 256),
        ("layer2.0", 512), ("layer2.1", 512), ("layer2.2", 512), ("layer2.3", 512),
        ("layer2", 512), ("layer3.0", 1024), ("layer3.1", 1024), ("layer3.2", 1024),
        ("layer3.3", 1024), ("layer3.4", 1024), ("layer3.5", 1024), ("layer3", 1024),
        ("layer4.0", 2048), ("layer4.1", 2048), ("layer4.2", 2048), ("layer4", 2048),
    ),
    "vgg16": (
        ("features.1", 64), ("features.3", 64), ("features.6", 128), ("features.8", 128),
        ("features.11", 256), ("features.13", 256), ("features.15", 256), ("features.18", 512),
        ("features.20", 512), ("features.22", 512), ("features.25", 512), ("features.27", 512),
        ("features.29", 512),
    ),
    "alexnet": (
        ("features.1", 64), ("features.4", 192), ("features.7", 384), ("features.9", 256),
        ("features.11", 256),
    ),
    "tiny": (("conv1", 8), ("conv2", 16), ("conv3", 32)),
}
MODEL_NAMES: tuple[str, ...] = tuple(LAYERS)
RANDOM_WEIGHTS = "random"  # weights="random": the seeded random init, the study's negative control


def layer_channels(model: str) -> dict[str, int]:
    """``{layer: channels}`` of a zoo model, in forward order.

    Raises:
        ValueError: ``model`` is not one of ``MODEL_NAMES``.
    """
    if model not in LAYERS:
        raise ValueError(f"unknown model {model!r}; models: {', '.join(MODEL_NAMES)}")
    return dict(LAYERS[model])
