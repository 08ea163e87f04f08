"""Catch items and instruction examples: images whose right answer is known in advance.

Catch trials tell careful annotators from careless ones: a positive item is a clear natural photo
(anyone attentive says "yes, one nameable thing"), a negative item is noise or a flat texture
("no"). They are hidden among the stimuli, so they must look like stimuli to everything but the
eye: the same square size, the same PNG encoding (`service.store.images.store`) with no
metadata, and a PNG byte length inside the range of the study's stimuli (`service.studies.
catch_fit` redraws each picture with more or less fine detail to reach it), so that neither the
picture's size nor its `Content-Length` gives a catch item away. An item serves every study of its
size whose stimuli's range it lies in; a study whose range no item of some source lies in gets
one made for it, when it is created (or at its first session start, for a study made before).

A 2-AFC catch trial shows a direction's references as any trial does and takes its two queries
from among them (IMI's attention check: the answer is in plain sight). Its trial names the
direction, and every such trial names one catch item too, the reference check, so that exports
keep a catch row's meaning (a catch item, no stimulus columns); that item's own image is never
shown.

Instruction examples are separate images (never a catch item, never a stimulus) so that what the
annotator was shown as an example is not also what they are tested on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import skimage.data
from skimage.color import gray2rgb
from skimage.filters import gaussian
from skimage.transform import resize
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.store.images import encode_png, store
from service.store.models import CatchItem, CatchKind, Image, Stimulus, StudyStimulus
from service.store.tokens import new_token
from service.studies.catch_fit import ByteRange, fit, stimulus_window, targets

# Clear photos of one nameable thing. skimage's `cat`/`chelsea` is kept for the instructions.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
    "camera": skimage.data.camera,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],  # the left view
    "horse": skimage.data.horse,
}
POSITIVE_SOURCES = tuple(PHOTOS)
NEGATIVE_SOURCES = (
    "uniform-noise-1",
    "uniform-noise-2",
    "gray-noise",
    "blurred-noise",
    "flat-gray",
    "flat-tint",
)
SOURCE_PREFIX = "skimage:"
REFERENCE_CHECK_SOURCE = "fvlab:2afc-reference-check"
REFERENCE_CHECK_SIDE = 8  # a placeholder image, never shown and smaller than any catch pool's


def _square_rgb(pixels: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to size×size, as uint8 RGB."""
    array = np.asarray(pixels)
    if array.dtype == bool:
        array = np.where(array, 255, 0).astype(np.uint8)
    if array.ndim == 2:
        array = gray2rgb(array)
    array = array[..., :3]
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = array[top : top + side, left : left + side]
    resized = resize(square, (size, size), anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@cache
def positive_pixels(name: str, size: int) -> np.ndarray:
    """A clear natural photo from skimage.data, cropped and resized to size×size (read-only;
    cached, since every study of one size needs the same pixels)."""
    if name not in POSITIVE_SOURCES:
        raise ValueError(f"unknown positive catch source {name!r}")
    return _frozen(_square_rgb(PHOTOS[name](), size))


@cache
def negative_pixels(name: str, size: int) -> np.ndarray:
    """Noise or a flat texture of size×size; seeded, so the same name gives the same pixels
    (read-only, cached)."""
    generators: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
        "uniform-noise-1": lambda rng: rng.integers(0, 256, (size, size, 3)),
        "uniform-noise-2": lambda rng: rng.integers(0, 256, (size, size, 3)),
        "gray-noise": lambda rng: np.repeat(rng.integers(0, 256, (size, size, 1)), 3, axis=2),
        "blurred-noise": lambda rng: 255
        * gaussian(rng.random((size, size, 3)), sigma=1.5, channel_axis=-1),
        "flat-gray": lambda rng: 128 + rng.integers(-6, 7, (size, size, 3)),
        "flat-tint": lambda rng: np.array([176, 160, 142]) + rng.integers(-6, 7, (size, size, 3)),
    }
    if name not in generators:
        raise ValueError(f"unknown negative catch source {name!r}")
    rng = np.random.default_rng(NEGATIVE_SOURCES.index(name) + 1)
    pixels = generators[name](rng)
    return _frozen(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _of_study(query: Select[Any], study_id: int, size: int) -> Select[Any]:
    """`query` over images narrowed to the study's stimuli of size×size."""
    return (query.select_from(Image)
            .join(Stimulus, Stimulus.image_sha256 == Image.sha256)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id, Image.width == size, Image.height == size))


def _stimulus_lengths(session: Session, study_id: int, size: int) -> list[int]:
    return [int(n) for n in session.scalars(
        _of_study(select(func.length(Image.png)), study_id, size))]


def study_byte_range(session: Session, study_id: int, size: int) -> ByteRange | None:
    """The byte range catch items of the study must lie in: its stimuli's shortest to longest PNG
    of size×size (`catch_fit.stimulus_window`); None without any."""
    length = func.length(Image.png)
    low, high = session.execute(
        _of_study(select(func.min(length), func.max(length)), study_id, size)).one()
    return None if low is None else stimulus_window([int(low), int(high)])


def catch_items(session: Session, size: int, window: ByteRange) -> list[CatchItem]:
    """The catch items of size×size whose PNG lies in `window`, the oldest of each source,
    without creating any."""
    found = session.scalars(
        select(CatchItem)
        .join(Image, CatchItem.image_sha256 == Image.sha256)
        .where(Image.width == size, Image.height == size,
               CatchItem.source.startswith(SOURCE_PREFIX),
               func.length(Image.png).between(window.low, window.high))
        .order_by(CatchItem.id)
    )
    oldest: dict[tuple[str, str], CatchItem] = {}
    for item in found:
        oldest.setdefault((item.kind, item.source), item)
    return list(oldest.values())


def study_catch_items(session: Session, study_id: int, size: int) -> list[CatchItem]:
    """The catch items that fit the study's stimuli (size and byte range), without creating any."""
    window = study_byte_range(session, study_id, size)
    return [] if window is None else catch_items(session, size, window)


def find_reference_check(session: Session) -> int | None:
    """The id of the catch item every 2-AFC catch trial names, when it has been made."""
    found = session.scalar(select(CatchItem.id).where(CatchItem.source == REFERENCE_CHECK_SOURCE)
                           .order_by(CatchItem.id).limit(1))
    return None if found is None else int(found)


def ensure_reference_check(session: Session) -> int:
    """The id of the catch item every 2-AFC catch trial names, created on first use."""
    found = find_reference_check(session)
    if found is not None:
        return found
    flat = np.full((REFERENCE_CHECK_SIDE, REFERENCE_CHECK_SIDE, 3), 128, dtype=np.uint8)
    item = CatchItem(kind=CatchKind.POSITIVE, token=new_token(),
                     image_sha256=store(session, flat).sha256, source=REFERENCE_CHECK_SOURCE)
    session.add(item)
    session.flush()
    return item.id


def catch_pool_complete(items: list[CatchItem]) -> bool:
    """Whether every catch source has its item among `items` (those of one size)."""
    wanted = {(CatchKind.POSITIVE, f"{SOURCE_PREFIX}{name}") for name in POSITIVE_SOURCES}
    wanted |= {(CatchKind.NEGATIVE, f"{SOURCE_PREFIX}{name}") for name in NEGATIVE_SOURCES}
    return wanted <= {(item.kind, item.source) for item in items}


def _sources() -> list[tuple[CatchKind, str, Callable[[str, int], np.ndarray]]]:
    """Every catch source, positives and negatives alternating, so that both kinds' target
    lengths spread over the whole range."""
    positives = [(CatchKind.POSITIVE, name, positive_pixels) for name in POSITIVE_SOURCES]
    negatives = [(CatchKind.NEGATIVE, name, negative_pixels) for name in NEGATIVE_SOURCES]
    return [source for pair in zip(positives, negatives, strict=True) for source in pair]


def ensure_catch_items(session: Session, size: int, lengths: list[int]) -> list[CatchItem]:
    """A catch item of every source, size×size, whose PNG lies within the range of `lengths`
    (the stimuli's PNG byte lengths; `catch_fit.stimulus_window`), reusing any that already
    fits and making the others.

    Each new item aims at a quantile of `lengths` (`catch_fit.targets`), so that the pool's
    lengths spread like the stimuli's. Raises CatchFitError (a StudyError) when some source
    cannot be drawn inside the range; the caller's unit of work then writes nothing.

    Args:
        session: an open unit of work (the caller commits).
        size: the side in pixels of the stimuli.
        lengths: the byte lengths of the stimuli's PNGs (at least one).
    """
    if not 16 <= size <= 4096:
        raise ValueError(f"catch items are 16…4096 px square, not {size}")
    if not lengths:
        raise ValueError("catch items need the stimuli's PNG lengths to match, got none")
    window = stimulus_window(lengths)
    existing = catch_items(session, size, window)
    have = {(item.kind, item.source) for item in existing}
    sources = _sources()
    created: list[CatchItem] = []
    for index, ((kind, name, make), target) in enumerate(
            zip(sources, targets(lengths, len(sources)), strict=True)):
        source = f"{SOURCE_PREFIX}{name}"
        if (kind, source) in have:
            continue
        pixels = fit(make(name, size), kind, window, target, seed=index + 1, name=source)
        image = store(session, pixels)
        item = CatchItem(kind=kind, token=new_token(), image_sha256=image.sha256, source=source)
        session.add(item)
        created.append(item)
    session.flush()
    return existing + created


def ensure_study_catch_items(session: Session, study_id: int, size: int) -> list[CatchItem]:
    """The catch items of the study's stimuli (`ensure_catch_items` over their lengths); none
    when the study has no stimuli of size×size."""
    lengths = _stimulus_lengths(session, study_id, size)
    return ensure_catch_items(session, size, lengths) if lengths else []


def _scrambled_fragments(size: int) -> np.ndarray:
    """Tiles of several unrelated photos, shuffled: the look of a 'mix of fragments'."""
    tiles_per_side = 4
    tile = size // tiles_per_side
    photos = [_square_rgb(getattr(skimage.data, n)(), size) for n in ("coins", "brick", "page")]
    rng = np.random.default_rng(7)
    canvas = np.zeros((tile * tiles_per_side, tile * tiles_per_side, 3), dtype=np.uint8)
    for row in range(tiles_per_side):
        for col in range(tiles_per_side):
            photo = photos[int(rng.integers(len(photos)))]
            y, x = rng.integers(0, size - tile, 2)
            canvas[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = photo[
                y : y + tile, x : x + tile
            ]
    return _square_rgb(canvas, size)


@cache
def instruction_examples(size: int = 160) -> tuple[tuple[str, str, str], ...]:
    """(answer, caption, data: URI) for the instructions page; none is a catch item or stimulus.

    Served inline as data URIs so the examples need no route and no token; made once per process,
    since every annotator's instructions page shows the same pictures.
    """
    examples = (
        ("Yes", "One thing you could name: a cat.", _square_rgb(skimage.data.chelsea(), size)),
        ("Yes", "A distinctive texture: brick wall.", _square_rgb(skimage.data.brick(), size)),
        ("No", "A mix of unrelated fragments.", _scrambled_fragments(size)),
    )
    return tuple(
        (answer, caption, "data:image/png;base64," + base64.b64encode(encode_png(px).png).decode())
        for answer, caption, px in examples
    )
