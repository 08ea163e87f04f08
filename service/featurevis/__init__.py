"""The rendering engine: feature visualizations of basis and random directions, no database.

A few lines render a batch::

    from service.featurevis import RenderRequest, RenderSettings, load_model, render
    from service.featurevis import sample_directions

    model = load_model("efficientnet_lite0")
    dirs = sample_directions(model.channels("blocks.10"), "blocks.10", "random", 4, seed=0)
    requests = [RenderRequest("blocks.10", v) for v in dirs.vectors]
    results = render(model, requests, RenderSettings(), seed=0)

The names below are imported on first use, so that the torch-free parts (the layer table, the
direction sampler) serve a web process without loading torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from service.featurevis.directions import DirectionSet, sample_directions  # noqa: F401
    from service.featurevis.kinds import DirectionKind, Objective, RandomKind  # noqa: F401
    from service.featurevis.layer_table import MODEL_NAMES  # noqa: F401
    from service.featurevis.quality import natural_max, natural_photos  # noqa: F401
    from service.featurevis.render import RenderRequest, RenderResult, RenderSettings, render  # noqa: F401
    from service.featurevis.zoo import LayerInfo, LoadedModel, ModelError, load_model  # noqa: F401

_HOMES = {
    "DirectionSet": "directions",
    "sample_directions": "directions",
    "DirectionKind": "kinds",
    "Objective": "kinds",
    "RandomKind": "kinds",
    "MODEL_NAMES": "layer_table",
    "natural_max": "quality",
    "natural_photos": "quality",
    "RenderRequest": "render",
    "RenderResult": "render",
    "RenderSettings": "render",
    "render": "render",
    "LayerInfo": "zoo",
    "LoadedModel": "zoo",
    "ModelError": "zoo",
    "load_model": "zoo",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


class _Package(types.ModuleType):
    """Keeps the function ``render`` from being hidden by its module of the same name: importing
    a submodule makes it an attribute of the package, which would shadow the exported name."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _HOMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
