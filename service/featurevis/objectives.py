"""Objectives: plain functions of one layer's activations and one direction per image.

Both conditions use the same objective; a basis direction is just a one-hot vector, so ``dot``
on it equals Lucid's ``channel`` objective.
"""

from __future__ import annotations

import torch

from service.featurevis.kinds import Objective, parse

COSSIM_FLOOR = 0.1  # Lucid's max(0.1, cos): keeps a gradient where the cosine is still negative
EPS = 1e-6


def dot(acts: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Mean over positions of activation · direction (Lucid's ``direction``), one per image.

    Args:
        acts: B×C×H×W activations.
        vectors: B×C directions, one per image.
    """
    return torch.einsum("bchw,bc->bhw", acts, vectors).mean(dim=(1, 2))


def cossim(acts: torch.Tensor, vectors: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Mean over positions of dot × max(0.1, cos)^power (Lucid's ``cossim_pow``).

    The cosine factor rewards activations that point along the direction rather than merely
    being large, which matters for non-basis directions.
    """
    dots = torch.einsum("bchw,bc->bhw", acts, vectors)
    norms = acts.norm(dim=1) * vectors.norm(dim=1)[:, None, None]
    cos = dots / (norms + EPS)
    return (dots * cos.clamp(min=COSSIM_FLOOR) ** power).mean(dim=(1, 2))


def evaluate(
    name: str, acts: torch.Tensor, vectors: torch.Tensor, power: float = 1.0
) -> torch.Tensor:
    """The objective ``name`` per image, computed in float32 whatever the autocast precision.

    Autocast would run the einsum in bf16 again; a sum over hundreds of channels in bf16 loses
    digits the final objective (and the natural-photo comparison) should keep.
    """
    objective = parse(Objective, name, "objective")
    with torch.autocast(device_type=acts.device.type, enabled=False):
        acts = acts.float()
        vectors = vectors.float()
        return dot(acts, vectors) if objective == Objective.DOT else cossim(acts, vectors, power)
