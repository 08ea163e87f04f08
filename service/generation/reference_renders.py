"""Synthetic references: K diverse renders of +v (max) and K of −v (min) per direction.

The K images of one direction and sign are a diversity group (Lucid's Gram-matrix term, see
`objectives.gram_similarity`), rendered by the same `render` as every other image. Each image
records its objective and the best natural exemplar's on the same objective: the maximum, over
the direction's K natural references of that sign (from the job's exemplar pass), of the
objective of sign × v on the photo resized to the render size, untransformed.

With the job's diversity weight left to search (`--diversity auto`), IMI's rule decides it per
direction and sign: the largest weight of `AUTO_DIVERSITY_WEIGHTS` for which the weakest of the
K images still beats the best natural exemplar. All candidate weights are rendered, each as its
own group (independent of the others), and the chosen group is kept; if none passes, the
smallest weight's images are kept and fail the quality gate visibly.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, select

from service.generation.shards import ClaimedDirection, ClaimedShard, RenderedImage
from service.store.db import unit_of_work
from service.store.models import Exemplar, ExemplarRole, Image, Sign

if TYPE_CHECKING:
    import torch

    from service.featurevis import LoadedModel
    from service.featurevis.render import Autocast

# Candidate diversity weights, largest first; 0 (no diversity) is the last resort.
AUTO_DIVERSITY_WEIGHTS = (100.0, 10.0, 1.0, 0.1, 0.0)
SIGN_FACTORS = {Sign.MAX: 1, Sign.MIN: -1}


def _seed(direction: ClaimedDirection, sign: str, replicate: int) -> int:
    """An image's own seed from its direction, sign and reference index alone, so that a shard
    rendered again gives the same images and every candidate weight starts from the same image."""
    key = [direction.seed, 0 if sign == Sign.MAX else 1, replicate]
    return int(np.random.SeedSequence(key).generate_state(1)[0] >> 1)


def natural_references(engine: Engine, direction_ids: list[int], size: int
                       ) -> dict[tuple[int, str], np.ndarray]:
    """Per (direction, sign), its natural reference photos as N×size×size×3 uint8."""
    from PIL import Image as PILImage

    with unit_of_work(engine) as session:
        rows = session.execute(
            select(Exemplar.direction_id, Exemplar.sign, Image.png)
            .join(Image, Image.sha256 == Exemplar.image_sha256)
            .where(Exemplar.direction_id.in_(direction_ids),
                   Exemplar.role == ExemplarRole.REFERENCE)
            .order_by(Exemplar.direction_id, Exemplar.sign, Exemplar.rank)
        ).all()
    found: dict[tuple[int, str], list[np.ndarray]] = {}
    for direction_id, sign, png in rows:
        photo = PILImage.open(io.BytesIO(png)).convert("RGB")
        photo = photo.resize((size, size), PILImage.Resampling.BILINEAR)
        found.setdefault((direction_id, sign), []).append(np.asarray(photo))
    return {key: np.stack(photos) for key, photos in found.items()}


def _choose(objectives: np.ndarray, best_natural: float) -> int:
    """The first (largest-weight) group whose weakest image beats the natural best, else the
    last; `objectives` is groups × K."""
    passing = np.flatnonzero(objectives.min(axis=1) > best_natural)
    return int(passing[0]) if len(passing) else len(objectives) - 1


def render_references(
    engine: Engine, shard: ClaimedShard, model: LoadedModel, device: torch.device,
    autocast: Autocast, batch_size: int, check: Callable[[int, int], None] | None = None,
) -> list[RenderedImage]:
    """Render K references of each sign for every direction of a shard (see the module doc).

    The shard's groups (direction × sign × candidate weight, K images each) are rendered
    together, as many whole groups to a batch as `batch_size` images allow (at least one):
    every image has its own seed and every group its own diversity term, so an image does not
    depend on the batch it lands in, and a few large batches use a CPU far better than one
    small batch per direction and sign.

    Raises RuntimeError when a direction has no natural references (its exemplar pass is
    missing), since there would be nothing to judge its renders against.
    """
    from service.featurevis import RenderRequest, RenderSettings, natural_max, render

    assert shard.references is not None
    settings = RenderSettings.from_dict(shard.render_settings)
    k = shard.references
    weights = AUTO_DIVERSITY_WEIGHTS if shard.diversity is None else (shard.diversity,)
    naturals = natural_references(engine, [d.id for d in shard.directions], settings.image_size)
    keys = [(direction, sign) for direction in shard.directions for sign in SIGN_FACTORS]
    for direction, sign in keys:
        if (direction.id, sign) not in naturals:
            raise RuntimeError(f"direction {direction.id} has no natural {sign} references")
    groups = [
        [RenderRequest(direction.layer, direction.vector, seed=_seed(direction, sign, r),
                       sign=SIGN_FACTORS[sign], group=index * len(weights) + g, diversity=weight)
         for r in range(k)]
        for index, (direction, sign) in enumerate(keys) for g, weight in enumerate(weights)
    ]
    per_batch = max(1, batch_size // k)
    results = []
    for start in range(0, len(groups), per_batch):
        requests = [request for group in groups[start : start + per_batch] for request in group]
        results.extend(render(model, requests, settings, seed=shard.seed, device=device,
                              progress=check, autocast=autocast))
    values = np.array([r.objective for r in results]).reshape(len(keys), len(weights), k)
    images: list[RenderedImage] = []
    for index, (direction, sign) in enumerate(keys):
        first = groups[index * len(weights)][:1]
        best = float(natural_max(model, first, settings, photos=naturals[(direction.id, sign)],
                                 device=device)[0])
        chosen = _choose(values[index], best)
        kept = (index * len(weights) + chosen) * k
        for r, result in enumerate(results[kept : kept + k]):
            images.append(RenderedImage(
                direction_id=direction.id, replicate=r, pixels=result.image,
                objective=result.objective, natural_max=best,
                seconds=result.seconds * len(weights), sign=sign, diversity=weights[chosen],
            ))
    return images
