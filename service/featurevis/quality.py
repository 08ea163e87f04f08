"""Quality measure: does a visualization beat natural photos on its own direction?

A feature visualization is supposed to be a (regularized) maximum of its objective. If a plain
photo scores higher, the optimization failed and the image should not be shown to people. The
baseline is the maximum of the same objective over natural photos: scikit-image's bundled
photos by default, or an image folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from service.featurevis import objectives
from service.featurevis.render import CPU, RenderRequest, RenderSettings, check_requests
from service.featurevis.zoo import LoadedModel

# scikit-image photos that ship with the package (no download); grey ones become grey RGB.
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "stereo_motorcycle", "camera", "brick", "grass", "gravel", "moon", "coins", "clock",
)  # fmt: skip
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
BATCH = 32


def _as_rgb01(photo: np.ndarray) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    photo = photo[:, :, :3]
    if photo.dtype == np.uint8:
        return photo.astype(np.float32) / 255.0
    return np.clip(photo.astype(np.float32), 0.0, 1.0)


def _views(photo: np.ndarray, size: int) -> list[np.ndarray]:
    """The centre square and its four corner quarters, each resized to size×size.

    Several crops per photo let a feature that fills only part of a photo count at full scale.
    """
    h, w, _ = photo.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(photo[top : top + side, left : left + side]))
    square = square.permute(2, 0, 1)[None]
    half = side // 2
    crops = [square] + [
        square[:, :, y : y + half, x : x + half] for y in (0, side - half) for x in (0, side - half)
    ]
    return [
        F.interpolate(c, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        .clamp(0, 1)
        .permute(1, 2, 0)
        .numpy()
        for c in crops
    ]


def natural_photos(size: int, folder: Path | None = None) -> np.ndarray:
    """Natural photos as N×size×size×3 float32 in [0, 1] (five crops of each photo).

    Args:
        size: side of the returned images (the render's image size).
        folder: an image folder to use instead of scikit-image's bundled photos.
    """
    if folder is not None:
        from PIL import Image

        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    else:
        import skimage.data

        photos = []
        for name in SKIMAGE_PHOTOS:
            photo = getattr(skimage.data, name)()
            photos.append(photo[0] if isinstance(photo, tuple) else photo)
    return np.stack([v for p in photos for v in _views(_as_rgb01(p), size)])


def natural_max(
    model: LoadedModel,
    requests: Sequence[RenderRequest],
    settings: RenderSettings,
    photos: np.ndarray | None = None,
    device: torch.device = CPU,
) -> np.ndarray:
    """Per request, the maximum of its objective (of sign × vector) over natural photos (no
    transforms).

    Computed in float32, like ``render``'s final objectives, so the two compare directly.

    Args:
        photos: N×H×W×3 in [0, 1] (or uint8); defaults to ``natural_photos(settings.image_size)``.
        device: where to run the network (the caller's, e.g. ``fabric.device``).

    Returns:
        float64 array with one value per request, comparable to ``RenderResult.objective``.
    """
    if not requests:
        return np.zeros(0)
    check_requests(model, requests)
    if photos is None:
        photos = natural_photos(settings.image_size)
    if photos.ndim != 4 or photos.shape[-1] != 3 or len(photos) == 0:
        raise ValueError(f"photos must be N×H×W×3 with N ≥ 1, got shape {photos.shape}")
    images = torch.from_numpy(np.stack([_as_rgb01(p) for p in photos])).permute(0, 3, 1, 2)
    model.to(device)
    best = np.full(len(requests), -np.inf)
    layers = list(dict.fromkeys(r.layer for r in requests))
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            acts = model.activations(images[start : start + BATCH].to(device), layers)
            for i, req in enumerate(requests):
                layer_acts = acts[req.layer]
                vector = torch.as_tensor(req.signed_vector(), device=device)
                values = objectives.evaluate(
                    settings.objective,
                    layer_acts,
                    vector.expand(len(layer_acts), -1),
                    settings.cossim_power,
                )
                best[i] = max(best[i], float(values.max()))
    return best
