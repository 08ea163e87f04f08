"""What a worker does with a claimed shard, by its kind, and how the result is written.

A render shard of a plain job renders its directions (`rendering.render_shard`); a render shard
of a job with an image set renders K min and K max references per direction
(`reference_renders`); an exemplar shard scores the image set on one layer (`exemplar_pass`).
Every result is written by its own writer under the same shard lock, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from service.generation import shards
from service.generation.exemplar_pass import ScoredLayer, score_layer, write_exemplars
from service.generation.reference_renders import render_references
from service.generation.rendering import render_shard
from service.generation.shards import ClaimedShard, RenderedImage
from service.store.models import ShardKind

if TYPE_CHECKING:
    import torch
    from lightning.fabric import Fabric

    from service.featurevis import LoadedModel

ShardResult = list[RenderedImage] | ScoredLayer


@lru_cache(maxsize=1)
def _model_on(name: str, weights: str | None, weights_dir: Path | None, device: torch.device
              ) -> LoadedModel:
    """One load per model and device while one job's exemplar and reference shards come in."""
    from service.featurevis import load_model

    return load_model(name, weights=weights, weights_dir=weights_dir).to(device)


def produce(
    engine: Engine, shard: ClaimedShard, fabric: Fabric, batch_size: int,
    weights_dir: Path | None = None, check: Callable[[int, int], None] | None = None,
) -> ShardResult:
    """The shard's work on Fabric's device; `check(done, total)` may raise to stop."""
    if shard.kind == ShardKind.RENDER and shard.references is None:
        return render_shard(shard, fabric, batch_size, weights_dir, check)
    model = _model_on(shard.model, shard.weights, weights_dir, fabric.device)
    if shard.kind == ShardKind.EXEMPLARS:
        return score_layer(engine, shard, model, batch_size, check)
    return render_references(engine, shard, model, fabric.device, fabric.autocast, batch_size,
                             check)


def complete(engine: Engine, shard_id: int, result: ShardResult) -> int | None:
    """Write a shard's result and mark it done; None when it was cancelled or settled already."""
    if isinstance(result, ScoredLayer):
        return write_exemplars(engine, shard_id, result)
    return shards.complete(engine, shard_id, result)
