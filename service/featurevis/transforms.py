"""Lucid's standard transforms, drawn per image and applied as one batched affine resampling.

Lucid applies pad(12, 0.5) → jitter(8) → random_scale(0.90…1.10) → random_rotate(±10°) →
jitter(4) as a chain of crops and resizes. Here the chain is folded into one affine map per
image and one ``grid_sample`` over the whole batch, so transforms cost one resampling instead
of a Python loop per image. The output keeps Lucid's size at scale 1 (S + 2·pad − 8 − 4); a
scale other than 1 magnifies the content rather than changing the tensor size, so the batch
stays one tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EXTRA_ZERO_ANGLES = 5  # Lucid's rotate list is range(-10, 11) + 5 * [0]
SCALE_STEPS = 11  # Lucid's scale list is [1 + (i - 5) / 50 for i in range(11)]


@dataclass(frozen=True)
class TransformSettings:
    """Transform amounts in pixels and degrees; the defaults are Lucid's standard_transforms."""

    pad: int = 12
    pad_value: float = 0.5
    jitter: int = 8
    scale_min: float = 0.90
    scale_max: float = 1.10
    rotate_degrees: int = 10
    jitter_after: int = 4

    def output_size(self, image_size: int) -> int:
        return image_size + 2 * self.pad - self.jitter - self.jitter_after


def draw_transforms(seeds: Sequence[int], steps: int, settings: TransformSettings) -> torch.Tensor:
    """Per image and step: (dx1, dy1, scale, degrees, dx2, dy2), as B×steps×6 float32.

    Each image draws from its own generator, so its transforms do not depend on the batch.
    """
    scales = torch.linspace(settings.scale_min, settings.scale_max, SCALE_STEPS)
    r = settings.rotate_degrees
    angles = torch.cat(
        [torch.arange(-r, r + 1, dtype=torch.float32), torch.zeros(EXTRA_ZERO_ANGLES)]
    )
    draws = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        j1 = torch.randint(0, settings.jitter + 1, (steps, 2), generator=g).float()
        s = scales[torch.randint(0, len(scales), (steps,), generator=g)]
        a = angles[torch.randint(0, len(angles), (steps,), generator=g)]
        j2 = torch.randint(0, settings.jitter_after + 1, (steps, 2), generator=g).float()
        draws.append(torch.cat([j1, s[:, None], a[:, None], j2], dim=1))
    return torch.stack(draws)


def affine_matrices(
    draws: torch.Tensor, image_size: int, settings: TransformSettings
) -> torch.Tensor:
    """B×2×3 matrices for ``affine_grid`` mapping output coordinates into the unpadded image.

    In pixels relative to the image centre, an output point u maps to
    x = R(−θ)(u + c2) / s + c1, where c1 and c2 are the two jitter offsets about the centre.
    """
    out = settings.output_size(image_size)
    c1 = draws[:, 0:2] - settings.jitter / 2
    s = draws[:, 2]
    theta = draws[:, 3] * (math.pi / 180.0)
    c2 = draws[:, 4:6] - settings.jitter_after / 2
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R(−θ)
    linear = rot * (out / image_size / s)[:, None, None]
    shift = (torch.einsum("bij,bj->bi", rot, c2) / s[:, None] + c1) * (2.0 / image_size)
    return torch.cat([linear, shift[:, :, None]], dim=2)


def apply_transforms(
    images: torch.Tensor, matrices: torch.Tensor, settings: TransformSettings
) -> torch.Tensor:
    """Resample B×3×S×S images through per-image matrices in one ``grid_sample``.

    Sampling ``images − pad_value`` with zero padding and adding ``pad_value`` back is the same
    as padding with ``pad_value`` first, without materializing the padded copy.
    """
    b, c, h, _ = images.shape
    out = settings.output_size(h)
    grid = F.affine_grid(matrices.to(images.dtype), [b, c, out, out], align_corners=False)
    shifted = images - settings.pad_value
    return (
        F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        + settings.pad_value
    )
