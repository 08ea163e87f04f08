"""Networks seen as trunks: named layers in forward order and a forward that stops early.

Every model the zoo serves is wrapped as a ``Trunk``: ``normalize`` maps images in [0, 1] to the
network's own input scaling and ``features(x, last)`` yields ``(layer, activation)`` in forward
order, stopping after ``last``. Stopping early is the truncated forward: a visualization of
``blocks.10`` never pays for ``blocks.11`` onwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from service.featurevis.layer_table import layer_channels

Features = Iterator[tuple[str, torch.Tensor]]


class Trunk(Protocol):
    """What the zoo needs from a network (an ``nn.Module`` in practice)."""

    def layer_names(self) -> tuple[str, ...]: ...
    def normalize(self, images01: torch.Tensor) -> torch.Tensor: ...
    def features(self, x: torch.Tensor, last: str) -> Features: ...


class TinyCNN(nn.Module):
    """Three GELU convolutions (8, 16, 32 channels): a test model that loads in milliseconds.

    GELU rather than ReLU so that no random-init channel is dead: every direction has a gradient.
    """

    CHANNELS = {"conv1": 8, "conv2": 16, "conv3": 32}

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 32, 3, stride=2, padding=1)

    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.CHANNELS)

    @staticmethod
    def normalize(images01: torch.Tensor) -> torch.Tensor:
        return images01 * 2.0 - 1.0

    def features(self, x: torch.Tensor, last: str) -> Features:
        for name in self.CHANNELS:
            x = F.gelu(getattr(self, name)(x))
            yield name, x
            if name == last:
                return


class _StopForward(Exception):
    """Raised by a forward hook once the deepest requested layer has been computed."""


class HookTrunk(nn.Module):
    """A torchvision classifier truncated through forward hooks on its own module paths.

    Hooks record the outputs of the listed modules and abort the forward right after ``last``,
    so the layers (and the classifier) beyond it never run.
    """

    def __init__(
        self,
        net: nn.Module,
        layers: tuple[str, ...],
        normalize: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.net = net
        self._layers = layers
        self._normalize = normalize

    def layer_names(self) -> tuple[str, ...]:
        return self._layers

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        return self._normalize(images01)

    def features(self, x: torch.Tensor, last: str) -> Features:
        wanted = self._layers[: self._layers.index(last) + 1]
        outputs: dict[str, torch.Tensor] = {}

        def recorder(name: str):
            def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
                outputs[name] = output
                if name == last:
                    raise _StopForward

            return hook

        handles = [self.net.get_submodule(n).register_forward_hook(recorder(n)) for n in wanted]
        try:
            self.net(x)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        for name in wanted:
            yield name, outputs[name]


def imagenet_normalize(images01: torch.Tensor) -> torch.Tensor:
    """torchvision's ImageNet mean/std scaling."""
    mean = images01.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = images01.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (images01 - mean) / std


def half_normalize(images01: torch.Tensor) -> torch.Tensor:
    """(x - 0.5) / 0.5: what torchvision's GoogLeNet weights expect once ``transform_input`` is
    folded in (the wrapper builds the net with ``transform_input=False``)."""
    return (images01 - 0.5) / 0.5


def forward_order(net: nn.Module, layers: tuple[str, ...]) -> tuple[str, ...]:
    """``layers`` sorted by the order in which their modules finish during a forward pass."""
    finished: list[str] = []
    handles = [
        net.get_submodule(n).register_forward_hook(lambda *_a, n=n: finished.append(n))
        for n in layers
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, 224, 224))
    finally:
        for handle in handles:
            handle.remove()
    return tuple(dict.fromkeys(finished))


def torchvision_trunk(name: str, net: nn.Module) -> HookTrunk:
    """Wrap a torchvision classifier by its zoo name."""
    normalize = half_normalize if name == "googlenet" else imagenet_normalize
    layers = tuple(layer_channels(name))  # the module paths fvlab names, from the one table
    return HookTrunk(net, forward_order(net, layers), normalize)
