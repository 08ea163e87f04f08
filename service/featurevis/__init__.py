"""The rendering engine: feature visualizations of basis and random directions, no database.

A few lines render a batch::

    from service.featurevis import RenderRequest, RenderSettings, load_model, render
    from service.featurevis import sample_directions

    model = load_model("efficientnet_lite0")
    dirs = sample_directions(model.channels("blocks.10"), "blocks.10", "random", 4, seed=0)
    requests = [RenderRequest("blocks.10", v) for v in dirs.vectors]
    results = render(model, requests, RenderSettings(), seed=0)
"""

from service.featurevis.directions import DirectionSet, sample_directions
from service.featurevis.quality import natural_max, natural_photos
from service.featurevis.render import RenderRequest, RenderResult, RenderSettings, render
from service.featurevis.zoo import MODEL_NAMES, LayerInfo, LoadedModel, ModelError, load_model

__all__ = [
    "MODEL_NAMES",
    "DirectionSet",
    "LayerInfo",
    "LoadedModel",
    "ModelError",
    "RenderRequest",
    "RenderResult",
    "RenderSettings",
    "load_model",
    "natural_max",
    "natural_photos",
    "render",
    "sample_directions",
]
