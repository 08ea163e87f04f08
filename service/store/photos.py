"""The compact photo format of image sets, reading untrusted photo files, and the built-in photos.

A member is the anchors' view of a photo (short side 256 by antialiased bilinear resizing, then
the centre 224×224, as torchvision's ImageNet evaluation does) saved as a lossy WebP at quality
95: about 15 KB against about 65 KB for the same pixels as PNG, with a PSNR near 42 dB. WebP's
lossy decoder is exactly specified, so every worker decodes a member to the same pixels.

The built-in photos are the natural photographs that ship inside fvlab's own dependencies
(scikit-image's sample data and matplotlib's sample photo): no download, enough for a demo and
for tests, far too few for a study anyone should publish.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

SHORT_SIDE = 256
MEMBER_SIDE = 224
WEBP_QUALITY = 95
MIN_SIDE = 32  # a thumbnail blown up to 224 px shows nothing a person could recognise
MAX_SIDE = 20_000
MAX_PIXELS = 80_000_000  # below Pillow's decompression-bomb threshold
MAX_FILE_BYTES = 64 * 1024 * 1024
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

# scikit-image sample data that are photographs and ship inside the package; left out: drawings,
# text scans, a phase image, and photos too small to crop.
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "stereo_motorcycle",
)  # fmt: skip
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
# Crops of each built-in photo: (side as a fraction of the photo's short side, grid per axis),
# each also mirrored; 28 crops of every photo, all sharing the photo as their source.
CROPS = ((1.0, 1), (0.7, 2), (0.5, 3))
CROPS_PER_PHOTO = 2 * sum(grid * grid for _, grid in CROPS)


class PhotoError(ValueError):
    """One file cannot become a member; the message is one line naming the file."""


def to_member(image: PILImage.Image) -> bytes:
    """The compact member of a photo: short side 256, centre crop 224, WebP."""
    image = image.convert("RGB")
    width, height = image.size
    scale = SHORT_SIDE / min(width, height)
    size = (max(SHORT_SIDE, round(width * scale)), max(SHORT_SIDE, round(height * scale)))
    image = image.resize(size, PILImage.Resampling.BILINEAR)
    left = int(round((size[0] - MEMBER_SIDE) / 2.0))
    top = int(round((size[1] - MEMBER_SIDE) / 2.0))
    image = image.crop((left, top, left + MEMBER_SIDE, top + MEMBER_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4)
    return buffer.getvalue()


def decode_member(data: bytes) -> np.ndarray:
    """A member's pixels, 224×224×3 uint8."""
    with PILImage.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def read_photo(path: Path, label: str | None = None) -> PILImage.Image:
    """Decode one file fully, upright per its EXIF orientation, or raise PhotoError.

    Args:
        label: how the file is named in the error (default: its file name).
    """
    label = label or path.name
    try:
        size = path.stat().st_size
        if size == 0 or size > MAX_FILE_BYTES:
            raise PhotoError(f"{label}: {size} bytes is outside 1…{MAX_FILE_BYTES}")
        with PILImage.open(path) as probe:
            width, height = probe.size
            if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
                raise PhotoError(
                    f"{label}: {width}×{height} px is outside {MIN_SIDE}…{MAX_SIDE} px a side"
                )
            if width * height > MAX_PIXELS:
                raise PhotoError(f"{label}: {width}×{height} px is over {MAX_PIXELS} pixels")
            probe.load()
            return ImageOps.exif_transpose(probe).convert("RGB")
    except PhotoError:
        raise
    except Exception as exc:  # any decoder failure of an untrusted file is one skipped file
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise PhotoError(f"{label}: not a readable image ({reason})") from exc


def _offsets(length: int, side: int, grid: int) -> list[int]:
    if grid == 1:
        return [(length - side) // 2]
    return [round(x) for x in np.linspace(0, length - side, grid)]


def crops(photo: PILImage.Image) -> Iterator[PILImage.Image]:
    """Square crops of a photo on a grid at several scales, each as shown and mirrored."""
    width, height = photo.size
    for fraction, grid in CROPS:
        side = round(fraction * min(width, height))
        for top in _offsets(height, side, grid):
            for left in _offsets(width, side, grid):
                crop = photo.crop((left, top, left + side, top + side))
                yield crop
                yield ImageOps.mirror(crop)


def builtin_photos() -> Iterator[tuple[str, PILImage.Image]]:
    """(source, photo) for every bundled natural photo, as RGB."""
    import matplotlib.cbook
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        pixels = getattr(skimage.data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # the stereo pair's left view
        yield f"scikit-image:{name}", PILImage.fromarray(np.asarray(pixels)).convert("RGB")
    for name in MATPLOTLIB_PHOTOS:
        with PILImage.open(matplotlib.cbook.get_sample_data(name, asfileobj=False)) as photo:
            rgb = photo.convert("RGB")
        yield f"matplotlib:{name}", rgb
