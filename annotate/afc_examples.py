"""2-AFC tasks drawn in code, for the instructions' worked example and the practice trials.

They teach the task with features anyone sees at once (stripe orientation, warm against cool
colour, dots against smooth shading), made of pixels no study shows, so nothing learnt here
is a hint about a real direction. Each is seeded by its index: every annotator's practice
trial n shows the same task, and the worked example (index `WORKED_EXAMPLE`) is never a
practice task.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache

import numpy as np
from skimage.color import hsv2rgb
from skimage.filters import gaussian

from annotate.compose import queries_png, references_png

SIDE = 160  # drawn at the queries' cell size; references are scaled down with them
REFERENCES = 9  # a side, as the anchors show
FAMILIES = ("stripes", "colour", "dots")
WORKED_EXAMPLE = -1  # the instructions' task; practice tasks are 0, 1, 2, …


@dataclass(frozen=True)
class ExampleTask:
    """A drawn task: references of each side and its two queries, as uint8 RGB arrays."""

    family: str
    min_references: tuple[np.ndarray, ...]
    max_references: tuple[np.ndarray, ...]
    max_query: np.ndarray
    min_query: np.ndarray


def _rgb(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)


def _stripes(rng: np.random.Generator, high: bool) -> np.ndarray:
    """Up-and-down stripes for the max side, side-to-side ones for the min side."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    tilt = rng.uniform(-0.2, 0.2)
    along = x + tilt * y if high else y + tilt * x
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(4, 9) * along + rng.uniform(0, 6.3))
    first, second = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    image = wave[..., None] * first + (1 - wave[..., None]) * second
    return _rgb(image + rng.normal(0, 0.03, image.shape))


def _colour(rng: np.random.Generator, high: bool) -> np.ndarray:
    """Blotches of warm hues (red to orange) for the max side, cool ones (teal to blue) for the
    min side."""
    hue_low, hue_high = (0.0, 0.09) if high else (0.48, 0.66)
    field = gaussian(rng.random((SIDE, SIDE)), sigma=SIDE / 16)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    hsv = np.stack([hue_low + (hue_high - hue_low) * field,
                    rng.uniform(0.55, 0.9) * np.ones_like(field),
                    0.45 + 0.5 * gaussian(rng.random((SIDE, SIDE)), sigma=SIDE / 24)], axis=-1)
    return _rgb(hsv2rgb(np.clip(hsv, 0, 1)))


def _dots(rng: np.random.Generator, high: bool) -> np.ndarray:
    """Many small round dots for the max side, smooth shading without dots for the min side."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    base = rng.uniform(0.3, 0.8, 3)
    angle, cycles = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1)
    shade = 0.75 + 0.25 * np.cos(2 * np.pi * cycles * (x * np.cos(angle) + y * np.sin(angle)))
    image = base * shade[..., None]
    if high:
        dot = rng.uniform(0, 1, 3)
        for cy, cx in rng.uniform(0, 1, (int(rng.integers(25, 45)), 2)):
            image[(y - cy) ** 2 + (x - cx) ** 2 < rng.uniform(0.02, 0.035) ** 2] = dot
    return _rgb(image + rng.normal(0, 0.02, image.shape))


DRAW = {"stripes": _stripes, "colour": _colour, "dots": _dots}


@cache
def example_task(index: int) -> ExampleTask:
    """Task `index` (practice tasks 0, 1, …; `WORKED_EXAMPLE` for the instructions); cached,
    since every session draws the same few."""
    family = FAMILIES[(index + 1) % len(FAMILIES)]  # the worked example shows stripes
    rng = np.random.default_rng(7919 + index)
    draw = DRAW[family]
    return ExampleTask(
        family=family,
        min_references=tuple(draw(rng, False) for _ in range(REFERENCES)),
        max_references=tuple(draw(rng, True) for _ in range(REFERENCES)),
        max_query=draw(rng, True),
        min_query=draw(rng, False),
    )


WORKED_ANSWER = 1  # the worked example shows its max query on the right


@cache
def worked_example() -> tuple[str, str]:
    """(references, queries) of the instructions' worked example as data: URIs, composed as
    trials are; served inline so the example needs no route and no token."""
    task = example_task(WORKED_EXAMPLE)
    references = references_png(task.min_references, task.max_references)
    queries = queries_png(task.min_query, task.max_query)
    def uri(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode()

    return uri(references), uri(queries)
