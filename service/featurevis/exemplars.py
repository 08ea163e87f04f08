"""Natural exemplars: every image of a set scored on every direction, only the extremes kept.

A direction's activation on an image is the render's ``dot`` objective on the untransformed
image: the spatial mean of activation · direction, in float32. It is linear in the activations,
so the spatial mean is taken first and one einsum (B×C by D×C) scores all D directions of a
layer at once; a batch of images costs one truncated forward pass whatever D is.

Memory stays bounded: per direction only the ``depth`` highest and lowest activations survive a
running top-k merge, with a streaming mean and variance (the standardized query gap needs the
SD over the whole set); the full N×D matrix is kept only when asked for. Scorers of disjoint
image ranges (shards) combine exactly with ``Extremes.merge``.

Choosing references and queries from the extremes is ``selection.py``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from service.featurevis.zoo import LoadedModel, ModelError


@dataclass(frozen=True)
class Extremes:
    """One layer's D directions over the images scored so far.

    ``top_*`` run from the most activating image down, ``bottom_*`` from the least activating
    up; each holds min(depth, count) images per direction. Indices are the caller's image
    indices (an image set's member positions).
    """

    top_values: np.ndarray  # D×k float32
    top_index: np.ndarray  # D×k int64
    bottom_values: np.ndarray  # D×k float32
    bottom_index: np.ndarray  # D×k int64
    count: int
    mean: np.ndarray  # D float64
    m2: np.ndarray  # D float64: sum of squared deviations from the mean
    full: np.ndarray | None = None  # count×D float32, rows in order of full_index
    full_index: np.ndarray | None = None

    @property
    def depth(self) -> int:
        return int(self.top_values.shape[1])

    @property
    def sd(self) -> np.ndarray:
        """Per direction, the sample SD of its activation over the images (NaN below 2)."""
        if self.count < 2:
            return np.full(self.mean.shape, np.nan)
        return np.sqrt(self.m2 / (self.count - 1))

    def merge(self, other: Extremes) -> Extremes:
        """The extremes of both image ranges together (the ranges must not overlap)."""
        if self.mean.shape != other.mean.shape:
            raise ValueError(f"cannot merge {self.mean.shape[0]} with {other.mean.shape[0]} "
                             "directions")
        depth = max(self.depth, other.depth)
        top_values, top_index = _keep(
            np.concatenate([self.top_values, other.top_values], 1),
            np.concatenate([self.top_index, other.top_index], 1), depth, largest=True)
        bottom_values, bottom_index = _keep(
            np.concatenate([self.bottom_values, other.bottom_values], 1),
            np.concatenate([self.bottom_index, other.bottom_index], 1), depth, largest=False)
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count) if count else self.mean
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count if count else 0)
        full = full_index = None
        if self.full is not None and other.full is not None:
            assert self.full_index is not None and other.full_index is not None
            full_index = np.concatenate([self.full_index, other.full_index])
            order = np.argsort(full_index, kind="stable")
            full_index = full_index[order]
            full = np.concatenate([self.full, other.full])[order]
        return Extremes(top_values, top_index, bottom_values, bottom_index, count, mean, m2,
                        full, full_index)


def _keep(values: np.ndarray, index: np.ndarray, depth: int, *, largest: bool
          ) -> tuple[np.ndarray, np.ndarray]:
    # Stable sort on (value, index) so that ties rank the same however the images were split.
    key = -values if largest else values
    order = np.lexsort((index, key), axis=1)[:, :depth]
    return np.take_along_axis(values, order, 1), np.take_along_axis(index, order, 1)


def images01(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """N×H×W×3 uint8 pixels (an image set's members) as the N×3×H×W floats in [0, 1] models take."""
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected N×H×W×3 uint8 pixels, got {pixels.dtype} {pixels.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


class _LayerState:
    """Running extremes and moments of one layer's directions, on the model's device."""

    def __init__(self, vectors: torch.Tensor, depth: int, keep_all: bool) -> None:
        self.vectors = vectors  # D×C float32
        self.depth = depth
        d, device = vectors.shape[0], vectors.device
        self.top_values = torch.empty(d, 0, device=device)
        self.top_index = torch.empty(d, 0, dtype=torch.long, device=device)
        self.bottom_values = torch.empty(d, 0, device=device)
        self.bottom_index = torch.empty(d, 0, dtype=torch.long, device=device)
        self.count = 0
        self.mean = torch.zeros(d, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(d, dtype=torch.float64, device=device)
        self.rows: list[np.ndarray] | None = [] if keep_all else None
        self.row_index: list[np.ndarray] = []

    def add(self, scores: torch.Tensor, index: torch.Tensor) -> None:
        """Fold in B×D scores of images ``index``."""
        values = scores.T.contiguous()  # D×B
        batch_index = index.expand(values.shape[0], -1)
        self.top_values, self.top_index = self._merge(
            self.top_values, self.top_index, values, batch_index, largest=True)
        self.bottom_values, self.bottom_index = self._merge(
            self.bottom_values, self.bottom_index, values, batch_index, largest=False)
        n = scores.shape[0]
        scores64 = values.double()
        batch_mean = scores64.mean(1)
        batch_m2 = ((scores64 - batch_mean[:, None]) ** 2).sum(1)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta**2 * (self.count * n / total)
        self.count = total
        if self.rows is not None:
            self.rows.append(scores.cpu().numpy())
            self.row_index.append(index.cpu().numpy())

    def _merge(self, kept: torch.Tensor, kept_index: torch.Tensor, values: torch.Tensor,
               index: torch.Tensor, *, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
        candidates = torch.cat([kept, values], 1)
        candidate_index = torch.cat([kept_index, index], 1)
        k = min(self.depth, candidates.shape[1])
        chosen_values, chosen = torch.topk(candidates, k, dim=1, largest=largest, sorted=True)
        return chosen_values, torch.gather(candidate_index, 1, chosen)

    def result(self) -> Extremes:
        top_values, top_index = _keep(self.top_values.cpu().numpy(),
                                      self.top_index.cpu().numpy(), self.depth, largest=True)
        bottom_values, bottom_index = _keep(self.bottom_values.cpu().numpy(),
                                            self.bottom_index.cpu().numpy(), self.depth,
                                            largest=False)
        full = full_index = None
        if self.rows is not None:
            full_index = np.concatenate(self.row_index) if self.row_index else np.zeros(0, int)
            order = np.argsort(full_index, kind="stable")
            width = self.vectors.shape[0]
            full = (np.concatenate(self.rows) if self.rows else np.zeros((0, width)))[order]
            full, full_index = full.astype(np.float32), full_index[order]
        return Extremes(top_values, top_index, bottom_values, bottom_index, self.count,
                        self.mean.cpu().numpy(), self.m2.cpu().numpy(), full, full_index)


class ExemplarScorer:
    """Scores image batches on the directions of one or more layers of a model.

    Args:
        model: the network, already on its device (the scorer keeps its state there).
        directions: per layer, a D×C matrix (one direction per row).
        depth: how many highest and lowest images to keep per direction.
        keep_all: also keep the full images×directions matrix (memory grows with the set).
    """

    def __init__(self, model: LoadedModel, directions: Mapping[str, np.ndarray], depth: int,
                 keep_all: bool = False) -> None:
        if not directions:
            raise ModelError("no layers to score")
        if depth < 1:
            raise ValueError(f"depth must be at least 1 image, got {depth}")
        self.model = model
        self.layers: dict[str, _LayerState] = {}
        for layer, matrix in directions.items():
            model.check_layer(layer)
            vectors = np.asarray(matrix, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] < 1 or not np.isfinite(vectors).all():
                raise ValueError(f"directions of {layer} must be a finite D×C matrix with D ≥ 1, "
                                 f"got shape {vectors.shape}")
            tensor = torch.from_numpy(vectors).to(model.device)
            self.layers[layer] = _LayerState(tensor, depth, keep_all)
        self._seen = 0

    def update(self, images: torch.Tensor, index: Sequence[int] | np.ndarray | None = None
               ) -> None:
        """Score a batch (N×3×H×W in [0, 1]) with one forward pass for every layer.

        Args:
            index: the images' indices (default: numbered on from the previous batch).
        """
        n = images.shape[0]
        if index is None:
            index = np.arange(self._seen, self._seen + n)
        index_tensor = torch.as_tensor(np.asarray(index, dtype=np.int64),
                                       device=self.model.device)
        if index_tensor.shape != (n,):
            raise ValueError(f"need one index per image: {n} images, {tuple(index_tensor.shape)}")
        with torch.no_grad():
            acts = self.model.activations(images.to(self.model.device), list(self.layers))
            with torch.autocast(device_type=self.model.device.type, enabled=False):
                for layer, state in self.layers.items():
                    pooled = acts[layer].float().mean(dim=(2, 3))  # B×C
                    if pooled.shape[1] != state.vectors.shape[1]:
                        raise ModelError(f"{layer} has {pooled.shape[1]} channels; the directions "
                                         f"have {state.vectors.shape[1]}")
                    state.add(torch.einsum("bc,dc->bd", pooled, state.vectors), index_tensor)
        self._seen += n

    def results(self) -> dict[str, Extremes]:
        """Per layer, the extremes and moments of every direction over the images seen."""
        return {layer: state.result() for layer, state in self.layers.items()}
