"""Perceptual embeddings: unit vectors, multi-depth pooling, the sha256 cache, clear errors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from service.featurevis.embeddings import (
    EmbeddingCache,
    EmbeddingError,
    PooledEmbedder,
    load_embedder,
)
from service.featurevis.trunks import TinyCNN


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def solid(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    return png(np.broadcast_to(np.array(rgb, dtype=np.uint8), (size, size, 3)))


class CountingEmbedder(PooledEmbedder):
    """TinyCNN pooled at two depths, counting the images it is asked to embed."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__("tiny_test", TinyCNN().eval(), ("conv1", "conv3"), input_size=16)
        self.seen = 0

    def _vectors(self, images01: torch.Tensor) -> torch.Tensor:
        self.seen += images01.shape[0]
        return super()._vectors(images01)


def test_pooled_vectors_are_unit_length_with_each_depth_weighted_alike() -> None:
    embedder = CountingEmbedder()
    vectors = embedder.embed(torch.rand(3, 3, 24, 40))  # any size: resized to 16×16
    assert vectors.shape == (3, 8 + 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :8], axis=1), 0.5**0.5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 8:], axis=1), 0.5**0.5, atol=1e-6)


def test_an_image_embeds_the_same_alone_or_in_a_batch() -> None:
    embedder = CountingEmbedder()
    batch = torch.rand(4, 3, 16, 16)
    np.testing.assert_allclose(embedder.embed(batch)[2], embedder.embed(batch[2:3])[0], atol=1e-5)


def test_the_cache_embeds_each_image_once_and_keeps_order() -> None:
    embedder = CountingEmbedder()
    cache = EmbeddingCache(embedder, batch_size=2)
    red, blue, green = solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 255, 0))
    first = cache.embed([red, blue, red, green, blue])
    assert embedder.seen == 3 and len(cache) == 3
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.allclose(first[0], first[1])
    again = cache.embed([green, red])
    assert embedder.seen == 3  # nothing new to run
    np.testing.assert_array_equal(again, first[[3, 0]])


def test_the_disk_cache_serves_a_new_process_by_sha256(tmp_path: Path) -> None:
    red, blue = solid((255, 0, 0)), solid((0, 0, 255))
    vectors = EmbeddingCache(CountingEmbedder(), tmp_path).embed([red, blue])
    files = sorted(p.name for p in (tmp_path / "tiny_test").iterdir())
    assert files == sorted(f"{hashlib.sha256(b).hexdigest()}.npy" for b in (red, blue))
    fresh = CountingEmbedder()
    np.testing.assert_array_equal(EmbeddingCache(fresh, tmp_path).embed([blue, red]), vectors[::-1])
    assert fresh.seen == 0


def test_an_unreadable_image_is_named_in_one_line() -> None:
    cache = EmbeddingCache(CountingEmbedder())
    with pytest.raises(EmbeddingError, match=r"^trial_3/min\.png: not a readable image"):
        cache.embed([solid((1, 2, 3)), b"not a png"], labels=["a.png", "trial_3/min.png"])


def test_unknown_and_unavailable_backends_say_so(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="unknown embedding 'lpips'; embeddings: "):
        load_embedder("lpips")
    with pytest.raises(EmbeddingError, match="alexnet unavailable: no weights for alexnet"):
        load_embedder("alexnet", weights_dir=tmp_path)
    try:
        import dreamsim  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingError, match=r"needs the dreamsim package \(pip install"):
            load_embedder("dreamsim", weights_dir=tmp_path)
    else:
        with pytest.raises(EmbeddingError, match="no DreamSim weights in"):
            load_embedder("dreamsim", weights_dir=tmp_path)


@pytest.mark.slow
def test_lite2_embedding_tells_photos_from_noise() -> None:
    from service.featurevis.quality import natural_photos

    photos = natural_photos(48)[::5][:6]  # one view of each of six photos
    noise = np.random.default_rng(0).random((6, 48, 48, 3), dtype=np.float32)
    images = torch.from_numpy(np.concatenate([photos, noise])).permute(0, 3, 1, 2)
    embedder = load_embedder()
    vectors = embedder.embed(images)
    assert embedder.name == "efficientnet_lite2"
    assert vectors.shape == (12, 88 + 208 + 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    noise_to_noise = similarity[6:, 6:][~np.eye(6, dtype=bool)].min()
    photo_to_noise = similarity[:6, 6:].max()
    assert noise_to_noise > photo_to_noise


@pytest.mark.slow
def test_a_torchvision_backend_reads_its_weights_from_the_given_folder(tmp_path: Path) -> None:
    from service.featurevis.zoo import TORCHVISION_FILES, load_model

    weights = load_model("googlenet", weights="random").module.net.state_dict()
    torch.save(weights, tmp_path / TORCHVISION_FILES["googlenet"])
    embedder = load_embedder("googlenet", weights_dir=tmp_path)
    vectors = embedder.embed(torch.rand(2, 3, 32, 32))
    assert vectors.shape == (2, 480 + 528 + 1024)  # inception3b, 4d and 5b pooled
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
