"""Catch pictures redrawn so that their PNG byte length lies inside the stimuli's range.

An image's URL answers with its byte length (`Content-Length`) before anyone looks at it, so a
script could skip every attention check if catch items were shorter or longer than stimuli:
rendered feature visualizations are dense fine detail (38–44 KB at 128 px after 256 steps),
while a photo can be 5 KB and uniform noise is the incompressible 49 KB. So each catch picture is
redrawn, once per target length, with more or less fine detail, and always written with the
store's own encoder (`service.store.images.encode_png`), so its bytes are what the store would
write for its pixels and nothing else.

One knob, `detail` in [-1, 1], 0 being the source as drawn. Below 0 it takes fine detail away:
a photo is blurred (σ up to 1/48 of its side, so a 128 px photo stays plainly a photo) and drawn
with fewer levels per channel (down to 16, which PNG's filters turn into long runs), noise loses
contrast towards its mean colour (down to a flat field, still a plain "no"). Above 0 it
adds seeded Gaussian grain to each channel (up to σ = 24 levels on a photo, whose levels are
first drawn in by 1.5 σ so the grain is not clipped away; up to σ = 64 on noise, which stays
noise). The PNG length grows with detail almost monotonically but not exactly (clipping,
deflate's block choices), so a coarse scan brackets the target and bisection closes in on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from skimage.filters import gaussian

from service.store.images import encode_png
from service.store.models import CatchKind
from service.studies.errors import StudyError

PHOTO_BLUR = 1 / 48  # the strongest blur's σ, as a fraction of the side
PHOTO_MIN_LEVELS = 16.0  # the coarsest levels per channel a photo is drawn with (256 as drawn)
PHOTO_GRAIN = 24.0  # the strongest grain's σ on a photo, in levels of 0–255
GRAIN_HEADROOM = 1.5  # a photo's levels are drawn in by this many σ of grain before adding it
NOISE_GRAIN = 64.0  # the strongest grain's σ on noise
SCAN = np.linspace(-1.0, 1.0, 9)  # the coarse scan's detail settings
BISECTIONS = 16  # halvings of the bracket the scan finds: 1/8 → 1/2^19 of the knob's span
GRAIN_FIELDS = 4  # grain fields tried in turn when a very narrow range is missed
GRAIN_FIELD_STRIDE = 1000  # seed offset between them (catch sources use seeds 1, 2, …)
CLOSE_ENOUGH = 1 / 200  # of the range's width: a hit this near the target ends the search
# A range narrower than this share of its length (a study of one stimulus, or of a few that
# compress alike) is widened to it about its middle: no drawing can hit one exact length, and
# lengths this close are within the spread any real set of renders has.
MIN_WINDOW_SHARE = 0.01


class CatchFitError(StudyError):
    """No setting of the knob puts a catch picture's PNG inside the stimuli's byte range."""


@dataclass(frozen=True)
class ByteRange:
    """The stimuli's PNG byte lengths a catch item must lie within, ends included."""

    low: int
    high: int

    def __contains__(self, length: object) -> bool:
        return isinstance(length, int) and self.low <= length <= self.high

    def __str__(self) -> str:
        return f"{self.low:,}–{self.high:,} bytes"


def stimulus_window(lengths: Sequence[int]) -> ByteRange:
    """The byte range catch items must lie in: the stimuli's, widened to `MIN_WINDOW_SHARE` of
    its length when narrower."""
    low, high = min(lengths), max(lengths)
    short = int(MIN_WINDOW_SHARE * high) - (high - low)
    if short > 0:
        low, high = low - short // 2, high + (short - short // 2)
    return ByteRange(low, high)


def targets(lengths: Sequence[int], count: int) -> list[int]:
    """`count` byte lengths spread like the stimuli's: the (j + ½)/count quantiles of `lengths`,
    each the length of some stimulus, so the catch items' lengths follow the stimuli's."""
    ordered = sorted(lengths)
    return [ordered[min(len(ordered) - 1, int((j + 0.5) / count * len(ordered)))]
            for j in range(count)]


def _grain(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def adjusted(base: np.ndarray, kind: CatchKind, detail: float, grain: np.ndarray) -> np.ndarray:
    """The catch picture `base` (uint8 RGB) with `detail` in [-1, 1] applied, as uint8 RGB."""
    pixels = base.astype(np.float64)
    if kind == CatchKind.POSITIVE and detail < 0:
        amount = -detail
        sigma = amount * PHOTO_BLUR * base.shape[0]
        pixels = gaussian(pixels, sigma=sigma, channel_axis=-1, preserve_range=True)
        levels = 256.0 ** (1 - amount) * PHOTO_MIN_LEVELS ** amount  # geometric: 256 → 16
        step = 255.0 / (levels - 1)
        pixels = np.rint(pixels / step) * step
    elif kind == CatchKind.POSITIVE:
        sigma = detail * PHOTO_GRAIN
        room = GRAIN_HEADROOM * sigma
        pixels = room + pixels * (255.0 - 2 * room) / 255.0 + sigma * grain
    elif detail < 0:
        mean = pixels.mean(axis=(0, 1))
        pixels = mean + (1.0 + detail) * (pixels - mean)
    else:
        pixels = pixels + detail * NOISE_GRAIN * grain
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def fit(base: np.ndarray, kind: CatchKind, window: ByteRange, target: int, seed: int,
        name: str) -> np.ndarray:
    """The picture redrawn so that its store PNG lies in `window`, as near `target` as the search
    gets; CatchFitError naming `name` and what it can reach otherwise.

    Deterministic: the same base, window, target and seed always give the same pixels, so making
    a catch item twice stores one image.
    """
    for attempt in range(GRAIN_FIELDS):
        grain = _grain(base.shape, seed + attempt * GRAIN_FIELD_STRIDE)

        def length_at(detail: float, grain: np.ndarray = grain) -> tuple[int, np.ndarray]:
            pixels = adjusted(base, kind, detail, grain)
            return len(encode_png(pixels).png), pixels

        scanned = [(float(detail), *length_at(float(detail))) for detail in SCAN]
        lengths = [length for _, length, _ in scanned]
        reach = ByteRange(min(lengths), max(lengths))
        aim = min(max(target, window.low, reach.low), window.high, reach.high)
        if not (window.low <= aim <= window.high and reach.low <= aim <= reach.high):
            raise CatchFitError(
                f"catch items: {name} can be drawn at {reach} but the stimuli's PNGs are {window}"
                f" at {base.shape[1]}×{base.shape[0]} px; a catch item outside that range could "
                "be told from stimuli by its length alone"
            )
        best = _nearest(scanned, window, aim)
        for (low, low_length, _), (high, high_length, _) in zip(scanned, scanned[1:],
                                                                strict=False):
            if min(low_length, high_length) <= aim <= max(low_length, high_length):
                best = _bisect(length_at, (low, low_length), (high, high_length), window, aim,
                               best)
                break
        if best is not None:
            return best[1]
    raise CatchFitError(
        f"catch items: no drawing of {name} landed inside the stimuli's {window} (the range is "
        "too narrow to hit); a catch item outside it could be told by its length alone"
    )


def _nearest(found: Sequence[tuple[float, int, np.ndarray]], window: ByteRange,
             aim: int) -> tuple[int, np.ndarray] | None:
    inside = [(length, pixels) for _, length, pixels in found if length in window]
    return min(inside, key=lambda hit: abs(hit[0] - aim), default=None)


def _bisect(length_at: Callable[[float], tuple[int, np.ndarray]], low: tuple[float, int],
            high: tuple[float, int], window: ByteRange, aim: int,
            best: tuple[int, np.ndarray] | None) -> tuple[int, np.ndarray] | None:
    """Halve the bracket [low, high] of detail settings (their lengths on either side of `aim`)
    and keep the hit inside `window` nearest `aim`."""
    (a, a_length), (b, _) = low, high
    rising = a_length <= aim
    close = (window.high - window.low) * CLOSE_ENOUGH
    for _ in range(BISECTIONS):
        middle = (a + b) / 2
        length, pixels = length_at(middle)
        if length in window and (best is None or abs(length - aim) < abs(best[0] - aim)):
            best = (length, pixels)
        if abs(length - aim) <= close:
            break
        if (length < aim) == rising:
            a = middle
        else:
            b = middle
    return best
