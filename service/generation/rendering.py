"""What rendering one claimed shard means: the engine, run on Fabric's device in its precision.

Models and the natural-max photos are loaded once per process and kept, because shards of one
job come one after another to the same worker. Each image's seed comes from its direction and
replicate alone, so a shard rendered again (after a lost lease) gives the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.generation.shards import ClaimedDirection, ClaimedShard, RenderedImage

if TYPE_CHECKING:
    import torch
    from lightning.fabric import Fabric

    from service.featurevis import LoadedModel


@lru_cache(maxsize=2)
def _model_on(
    name: str, weights: str | None, weights_dir: Path | None, device: torch.device
) -> LoadedModel:
    """One load per model and device for the life of the process; shards of one job share it."""
    from service.featurevis import load_model

    return load_model(name, weights=weights, weights_dir=weights_dir).to(device)


@lru_cache(maxsize=2)
def _natural_photos(image_size: int) -> np.ndarray:
    """The natural-max baseline photos, decoded and resized once per size (seconds each time)."""
    from service.featurevis import natural_photos

    return natural_photos(image_size)


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive chunks of at most `size`: one batched optimization each (layers may mix)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _image_seed(direction: ClaimedDirection, replicate: int) -> int:
    """Each image's own seed, from its direction and replicate: the image does not depend on the
    batch it lands in, so a shard rendered again (after a lost lease) gives the same images."""
    return int(np.random.SeedSequence([direction.seed, replicate]).generate_state(1)[0] >> 1)


def render_shard(
    shard: ClaimedShard, fabric: Fabric, batch_size: int, weights_dir: Path | None = None,
    check: Callable[[int, int], None] | None = None,
) -> list[RenderedImage]:
    """Render every direction × replicate of a shard on Fabric's device, in its precision;
    `check(step, total)` may raise to stop."""
    from service.featurevis import RenderRequest, RenderSettings, natural_max, render

    model = _model_on(shard.model, shard.weights, weights_dir, fabric.device)
    settings = RenderSettings.from_dict(shard.render_settings)
    images: list[RenderedImage] = []
    work = [(d, r) for r in range(shard.replicates) for d in shard.directions]
    for batch in _batches(work, batch_size):
        requests = [
            RenderRequest(layer=d.layer, vector=d.vector, seed=_image_seed(d, r)) for d, r in batch
        ]
        results = render(
            model, requests, settings, seed=shard.seed, device=fabric.device, progress=check,
            autocast=fabric.autocast,
        )
        maxima = natural_max(
            model, requests, settings, photos=_natural_photos(settings.image_size),
            device=fabric.device,
        )
        images.extend(
            RenderedImage(
                direction_id=d.id, replicate=r, pixels=result.image, objective=result.objective,
                natural_max=float(maximum), seconds=result.seconds,
            )
            for (d, r), result, maximum in zip(batch, results, maxima, strict=True)
        )
    return images
