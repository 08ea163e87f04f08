"""Objectives: plain functions of one layer's activations and one direction per image.

Both conditions use the same objective; a basis direction is just a one-hot vector, so ``dot``
on it equals Lucid's ``channel`` objective. ``gram_similarity`` is Lucid's ``diversity`` term,
which couples the images of one batch on purpose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from service.featurevis.kinds import Objective, parse

COSSIM_FLOOR = 0.1  # Lucid's max(0.1, cos): keeps a gradient where the cosine is still negative
EPS = 1e-6
GRAM_EPS = 1e-10  # Lucid's l2_normalize epsilon for Gram matrices


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


def gram_cosines(acts: torch.Tensor) -> torch.Tensor:
    """B×B cosine similarities of the images' Gram matrices (channel × channel, over positions).

    A Gram matrix says which channels fire together, not where: two images of the same
    texture in different places have the same Gram matrix.
    """
    with torch.autocast(device_type=acts.device.type, enabled=False):
        flat = acts.float().flatten(2)  # B×C×HW
        grams = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)  # B×C²
        unit = F.normalize(grams, dim=1, eps=GRAM_EPS)
        return unit @ unit.T


def gram_similarity(acts: torch.Tensor) -> torch.Tensor:
    """Lucid's ``diversity`` of a batch: Σ_{i≠j} cos(G_i, G_j) / B, a scalar.

    Renders subtract weight × this from their objective, so the images of one direction and sign
    are pushed towards different textures; 0 for a batch of one.
    """
    cosines = gram_cosines(acts)
    n = cosines.shape[0]
    return (cosines.sum() - cosines.diagonal().sum()) / n


def mean_pairwise_gram_cosine(acts: torch.Tensor) -> float:
    """The mean cosine over the B(B−1) ordered pairs: how alike a set of images is (1 = alike)."""
    n = acts.shape[0]
    if n < 2:
        raise ValueError("need at least 2 images to compare")
    return float(gram_similarity(acts)) / (n - 1)
