"""A 2-AFC trial's pictures as two PNGs: both reference grids in one, both queries in the other.

The page shows each PNG twice, one half per place (CSS `object-position`), so a trial costs two
image requests whatever K is. Grids are square (⌈√K⌉ cells a side, spare cells blank) so that
each half is square too. Every picture is made with the store's encoder
(`service.store.images.encode_png`), so its bytes hold pixels and nothing else, and composed
pictures are kept per process by what they show (`annotate.png_cache`), not per trial: the many
trials of one direction share one reference picture.

The queries picture is written uncompressed (`encode_png(..., stored=True)`), so every one has the
same byte length. A catch trial's queries are two of the shown references, which for `synthetic`
references are renders: dense detail that compresses far worse than photos (two renders of the
demo job 106–114 KB, two built-in photos 11–107 KB; `bench/catch_lengths.py`), so compressed,
`Content-Length` alone would have picked out most attention checks. The references picture of a
catch trial is the very picture its direction's other trials show, so it keeps the ordinary
encoding.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image as PILImage

from service.store.images import encode_png

REFERENCE_CELL = 96  # px a reference takes in its grid
GUTTER = 2  # px of blank around each reference, so neighbours read as separate pictures
QUERY_CELL = 160  # px a query takes
BLANK = (238, 238, 238)  # a grid's spare cells, the page's panel colour


def _cell(pixels: np.ndarray, side: int) -> np.ndarray:
    image = PILImage.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
    if image.size != (side, side):
        image = image.resize((side, side), PILImage.Resampling.LANCZOS)
    return np.asarray(image)


def grid_side(count: int) -> int:
    """Cells a side of a square grid holding `count` images."""
    return max(1, math.ceil(math.sqrt(count)))


def _grid(images: Sequence[np.ndarray], side: int) -> np.ndarray:
    canvas = np.empty((side * REFERENCE_CELL, side * REFERENCE_CELL, 3), dtype=np.uint8)
    canvas[:] = BLANK
    inner = REFERENCE_CELL - 2 * GUTTER
    for index, pixels in enumerate(images):
        row, col = divmod(index, side)
        top, left = row * REFERENCE_CELL + GUTTER, col * REFERENCE_CELL + GUTTER
        canvas[top:top + inner, left:left + inner] = _cell(pixels, inner)
    return canvas


def references_png(min_images: Sequence[np.ndarray], max_images: Sequence[np.ndarray]) -> bytes:
    """The min references' grid (left half) beside the max references' grid (right half)."""
    side = grid_side(max(len(min_images), len(max_images)))
    return encode_png(np.hstack([_grid(min_images, side), _grid(max_images, side)])).png


def queries_png(first: np.ndarray, second: np.ndarray) -> bytes:
    """The two queries side by side, as shown: position 0 left, position 1 right; uncompressed,
    so its length says nothing of what it shows."""
    pair = np.hstack([_cell(first, QUERY_CELL), _cell(second, QUERY_CELL)])
    return encode_png(pair, stored=True).png


def decode(png: bytes) -> np.ndarray:
    """A store PNG (trusted: the store wrote it) as uint8 RGB pixels."""
    with PILImage.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))
