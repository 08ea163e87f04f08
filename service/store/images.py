"""PNG store keyed by sha256, kept in the database beside the rows that use it.

Every image an annotator sees (stimulus or catch item) goes through `encode_png`, which builds a
fresh RGB image from pixels and writes it with fixed settings and no ancillary chunks. So the bytes
depend on the pixels alone: no text, time, gamma or ICC chunk can reveal where an image came from,
and equal pixels always share one row.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.store.db import utcnow
from service.store.models import Image

MAX_SIDE = 4096
MAX_BYTES = 32 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESS_LEVEL = 6  # zlib level of every stored image
STORED_LEVEL = 0  # no compression: the length is fixed by the image's size


class ImageError(ValueError):
    """The bytes or pixels are not an acceptable image; the message says why."""


@dataclass(frozen=True)
class EncodedImage:
    sha256: str
    png: bytes
    width: int
    height: int


def _as_uint8_rgb(pixels: np.ndarray | PILImage.Image) -> np.ndarray:
    if isinstance(pixels, PILImage.Image):
        pixels = np.asarray(pixels.convert("RGB"))
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ImageError(f"expected an H×W×3 image, got shape {array.shape}")
    array = array[..., :3]
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ImageError(f"expected uint8 or float pixels, got {array.dtype}")
        if not np.isfinite(array).all():
            raise ImageError("pixels contain NaN or infinity")
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    height, width = array.shape[:2]
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ImageError(f"image size {width}×{height} is outside 1…{MAX_SIDE} px")
    return np.ascontiguousarray(array)


def encode_png(pixels: np.ndarray | PILImage.Image, *, stored: bool = False) -> EncodedImage:
    """Encode pixels (uint8 0–255 or float 0–1, H×W×3) as a metadata-free PNG.

    `stored` leaves the pixels uncompressed (zlib level 0), so the PNG's length depends on its
    width and height alone, not on what it shows.
    """
    array = _as_uint8_rgb(pixels)
    buffer = io.BytesIO()
    level = STORED_LEVEL if stored else COMPRESS_LEVEL
    PILImage.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=level)
    png = buffer.getvalue()
    return EncodedImage(
        sha256=hashlib.sha256(png).hexdigest(), png=png, width=array.shape[1], height=array.shape[0]
    )


def decode_image(data: bytes) -> np.ndarray:
    """Decode untrusted image bytes (PNG, JPEG, …) to uint8 RGB pixels, refusing bad input."""
    if not data:
        raise ImageError("empty file")
    if len(data) > MAX_BYTES:
        raise ImageError(f"file is {len(data)} bytes; the limit is {MAX_BYTES}")
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                raise ImageError(f"image size {width}×{height} is outside 1…{MAX_SIDE} px")
            probe.verify()
        with PILImage.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"not a readable image: {exc}") from exc
    except PILImage.DecompressionBombError as exc:  # pragma: no cover - caught by size check
        raise ImageError(str(exc)) from exc


def store(session: Session, pixels: np.ndarray | PILImage.Image) -> EncodedImage:
    """Encode and store pixels; returns what was stored (`sha256` keys the `images` row).

    Storing the same pixels again writes nothing new. The row is not read back: the key is the
    hash just computed, and reloading the PNG would move every image's bytes a second time.
    """
    encoded = encode_png(pixels)
    values = {
        "sha256": encoded.sha256,
        "png": encoded.png,
        "width": encoded.width,
        "height": encoded.height,
        "created_at": utcnow(),
    }
    # Two workers may store the same pixels at once; the loser's insert becomes a no-op.
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    return encoded

