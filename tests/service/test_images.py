from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import PngImagePlugin
from sqlalchemy import Engine, func, select

from service.store import images
from service.store.db import unit_of_work
from service.store.models import Image


def _chunks(png: bytes) -> list[bytes]:
    assert png.startswith(images.PNG_SIGNATURE)
    pos, names = 8, []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        names.append(png[pos + 4 : pos + 8])
        pos += 12 + length
    return names


def test_same_pixels_same_bytes_and_no_metadata_chunks() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    a, b = images.encode_png(pixels), images.encode_png(pixels.copy())
    assert a.png == b.png and a.sha256 == b.sha256
    assert (a.width, a.height) == (48, 32)
    assert set(_chunks(a.png)) == {b"IHDR", b"IDAT", b"IEND"}
    assert np.array_equal(images.decode_image(a.png), pixels)


def test_float_pixels_are_scaled_and_rgba_dropped() -> None:
    floats = np.full((4, 4, 4), 0.5)
    decoded = images.decode_image(images.encode_png(floats).png)
    assert decoded.shape == (4, 4, 3) and int(decoded[0, 0, 0]) == 128


def test_uploaded_metadata_is_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("condition", "basis")
    buffer = io.BytesIO()
    PILImage.new("RGB", (10, 10), (1, 2, 3)).save(buffer, format="PNG", pnginfo=info)
    assert b"condition" in buffer.getvalue()
    clean = images.encode_png(images.decode_image(buffer.getvalue()))
    assert b"condition" not in clean.png and b"tEXt" not in clean.png


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, not an image", "not a readable image"),
    ],
)
def test_bad_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(images.ImageError, match=message):
        images.decode_image(data)


def test_truncated_png_is_refused() -> None:
    png = images.encode_png(np.random.default_rng(1).random((64, 64, 3))).png
    with pytest.raises(images.ImageError):
        images.decode_image(png[: len(png) // 2])


def test_absurd_sizes_are_refused() -> None:
    buffer = io.BytesIO()
    PILImage.new("L", (images.MAX_SIDE + 1, 1)).save(buffer, format="PNG")
    with pytest.raises(images.ImageError, match="outside"):
        images.decode_image(buffer.getvalue())
    with pytest.raises(images.ImageError, match="outside"):
        images.encode_png(np.zeros((0, 5, 3), dtype=np.uint8))
    with pytest.raises(images.ImageError, match="NaN"):
        images.encode_png(np.full((2, 2, 3), np.nan))


def test_store_is_idempotent(engine: Engine) -> None:
    pixels = np.zeros((5, 5, 3), dtype=np.uint8)
    with unit_of_work(engine) as s:
        first = images.store(s, pixels).sha256
    with unit_of_work(engine) as s:
        assert images.store(s, pixels).sha256 == first
        assert s.scalar(select(func.count()).select_from(Image)) == 1


def test_store_writes_without_reading_the_png_back(engine: Engine) -> None:
    """Storing returns the sha256 it computed; it never selects the row (and its PNG) again."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    pixels = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    event.listen(engine, "before_cursor_execute", record)
    try:
        with unit_of_work(engine) as s:
            stored = images.store(s, pixels)
            again = images.store(s, pixels)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert stored.sha256 == again.sha256 == images.encode_png(pixels).sha256
    assert (stored.width, stored.height) == (16, 16)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert reads == [], reads
    assert sum("INSERT INTO images" in s for s in statements) == 2
