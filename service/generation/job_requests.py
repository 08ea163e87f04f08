"""What a researcher may ask of a generation job, and the checks run before anything is written.

Every field is checked, layers and channel counts against the engine's static table of each
model's layers, so that a bad request fails with one message naming the field instead of leaving
half a job in the database, and so that checking a request (in the site's web process too) never
builds a network. Whether a model's real weights are present is for the worker's machine to
say, where they are loaded; an explicit weights file is checked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from service.featurevis.kinds import Objective, RandomKind, names
from service.featurevis.layer_table import MODEL_NAMES, RANDOM_WEIGHTS, layer_channels

IMAGE_SIZE_RANGE = (16, 1024)
STEPS_RANGE = (1, 20_000)
MAX_DIRECTIONS_PER_LAYER = 10_000
MAX_SEED = 2**63 - 1
NAME_MAX_CHARS = 200
DEFAULT_REFERENCES = 9  # per sign, with an image set (Borowski et al. and IMI show 9 a side)
MAX_REFERENCES = 64
AUTO_DIVERSITY = "auto"  # --diversity auto: the weight is searched per direction and sign
MAX_DIVERSITY = 1e6


class JobError(ValueError):
    """A job request or job operation is invalid; the message names the field and the problem."""


@dataclass
class JobRequest:
    """What a researcher asks for; `submit` checks every field before anything is written."""

    model: str
    layers: list[str]
    n_basis: int
    n_random: int
    random_kind: str = RandomKind.GAUSSIAN
    objective: str = Objective.DOT
    image_size: int = 128
    steps: int = 512
    lr: float = 0.05
    seed: int | None = None
    name: str | None = None
    weights: str | None = None
    # With an image set: an exemplar pass and K references of each sign per direction (default
    # DEFAULT_REFERENCES), diversity W >= 0 or AUTO_DIVERSITY (the default), and a query percentile
    # in (50, 100) for harder 2-AFC queries (default: just past the references).
    image_set: str | None = None
    references: int | None = None
    diversity: float | str | None = None
    query_percentile: float | None = None


@dataclass(frozen=True)
class ModelLayers:
    """A model's layers and channel counts, as the job's direction sampler needs them."""

    name: str
    layers: dict[str, int]

    def channels(self, layer: str) -> int:
        return self.layers[layer]


def _layer_list(names: tuple[str, ...]) -> str:
    return ", ".join(names) if len(names) <= 5 else f"{names[0]}, {names[1]} … {names[-1]}"


def check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise JobError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check_scalars(request: JobRequest) -> None:
    """Every field but the layers and the weights."""
    if request.model not in MODEL_NAMES:
        raise JobError(f"model {request.model!r} is unknown (models: {', '.join(MODEL_NAMES)})")
    if not request.layers:
        raise JobError("layers: give at least one layer")
    if len(set(request.layers)) != len(request.layers):
        raise JobError(f"layers: {request.layers} lists a layer twice")
    check_int("n_basis", request.n_basis, 0, MAX_DIRECTIONS_PER_LAYER)
    check_int("n_random", request.n_random, 0, MAX_DIRECTIONS_PER_LAYER)
    if request.n_basis + request.n_random == 0:
        raise JobError("no directions: basis (--basis) and random (--random) are both 0, so the "
                       "job would render nothing")
    if request.random_kind not in tuple(RandomKind):
        choices = names(RandomKind)
        raise JobError(f"random_kind must be one of {choices}, got {request.random_kind!r}")
    if request.objective not in tuple(Objective):
        choices = names(Objective)
        raise JobError(f"objective must be one of {choices}, got {request.objective!r}")
    check_int("image_size", request.image_size, *IMAGE_SIZE_RANGE)
    check_int("steps", request.steps, *STEPS_RANGE)
    if isinstance(request.lr, bool) or not isinstance(request.lr, int | float):
        raise JobError(f"lr must be a number, got {request.lr!r}")
    if not (math.isfinite(request.lr) and request.lr > 0):
        raise JobError(f"lr must be a positive number, got {request.lr}")
    if request.seed is not None:
        check_int("seed", request.seed, 0, MAX_SEED)
    if request.name is not None and not (0 < len(request.name.strip()) <= NAME_MAX_CHARS):
        raise JobError(f"name must be 1 to {NAME_MAX_CHARS} characters")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JobError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_references(request: JobRequest) -> None:
    """The image-set fields alone (that the set exists, is complete and is large enough for K
    references a side is checked against the database by `submit`)."""
    if request.image_set is None:
        given = [flag for flag, value in (("--references", request.references),
                                          ("--diversity", request.diversity),
                                          ("--query-percentile", request.query_percentile))
                 if value is not None]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise JobError(f"{', '.join(given)} {verb} an image set (--image-set NAME)")
        return
    if request.references is not None:
        check_int("references", request.references, 1, MAX_REFERENCES)
    if request.diversity is not None and request.diversity != AUTO_DIVERSITY:
        weight = _number("diversity", request.diversity)
        if not 0 <= weight <= MAX_DIVERSITY:
            raise JobError(f"diversity must be {AUTO_DIVERSITY!r} or a weight between 0 and "
                           f"{MAX_DIVERSITY:g}, got {request.diversity!r}")
    if request.query_percentile is not None:
        percentile = _number("query percentile", request.query_percentile)
        if not 50 < percentile < 100:
            raise JobError("query percentile must be between 50 and 100 (exclusive), got "
                           f"{request.query_percentile}")


def _validated_layers(request: JobRequest) -> ModelLayers:
    """Check every layer and the basis count against the model's channels, and a weights file."""
    model = ModelLayers(request.model, layer_channels(request.model))
    names = tuple(model.layers)
    if request.weights not in (None, RANDOM_WEIGHTS) and not Path(request.weights).is_file():
        raise JobError(
            f"model {request.model!r}: weights file for {request.model} not found: "
            f"{request.weights}"
        )
    for layer in request.layers:
        if layer not in model.layers:
            raise JobError(
                f"layer {layer!r} does not exist in {request.model} (layers: {_layer_list(names)})"
            )
        channels = model.channels(layer)
        if request.n_basis > channels:
            raise JobError(
                f"n_basis {request.n_basis} is more than the {channels} channels of layer {layer!r}"
            )
    return model


def _render_settings(request: JobRequest) -> dict[str, object]:
    from service.featurevis import RenderSettings

    try:
        settings = RenderSettings(
            image_size=request.image_size, steps=request.steps, lr=request.lr,
            objective=request.objective,
        )
    except ValueError as exc:
        raise JobError(f"render settings: {exc}") from exc
    return settings.to_dict()


def validate(request: JobRequest) -> tuple[ModelLayers, dict[str, object]]:
    """Check every field; returns the model's layers and the render settings to store.

    No network is built and no weights are read. Raises JobError naming the first bad field.
    """
    _check_scalars(request)
    check_references(request)
    return _validated_layers(request), _render_settings(request)
