"""Machine-annotator benchmark: embedding throughput and scoring 10,000 2-AFC tasks.

Both numbers come from one process:

* embedding ratio: images per second of the machine annotator's embedding path (PNG bytes into
  an ``EmbeddingCache`` with nothing cached: decode, resize to 260 px, EfficientNet-Lite2,
  three pooled depths, normalization) over images per second of a plain batched no-grad forward
  pass of the same network (logits) on the same images already decoded, resized and laid out
  channels-last (the faster layout on CPU, so the baseline is the network at its best). Each
  batch is timed both ways back to back (alternating which goes first), and the median of these
  paired ratios is reported, so changes in machine load hit both sides alike. 1.0 means the
  embedding adds nothing to the network's own cost.
* score seconds: the time to turn cached embeddings into Δ, P(correct) with the default α,
  and MIS per direction, for 10,000 tasks of 500 directions (20 tasks each, 9 references a
  side, drawn from each direction's own 40 images; 1,576-dimensional vectors, as Lite2's).

Not a test: it prints its numbers, and its last line is
``RESULT embedding_ratio=… score_10k_seconds=…``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.featurevis.embeddings import EmbeddingCache, load_embedder  # noqa: E402
from service.featurevis.quality import natural_photos  # noqa: E402
from service.studies.machine.score import (  # noqa: E402
    default_alpha,
    deltas,
    mis_per_direction,
    p_correct,
)


def png_bytes(photos: np.ndarray) -> list[bytes]:
    out = []
    for photo in photos:
        buffer = io.BytesIO()
        Image.fromarray((photo * 255).round().astype(np.uint8)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def embedding_ratio(n_images: int, image_size: int, batch_size: int, rounds: int) -> float:
    embedder = load_embedder()
    net = embedder.trunk
    size = embedder.input_size
    photos = np.resize(natural_photos(image_size), (n_images, image_size, image_size, 3))
    images = png_bytes(photos)
    decoded = F.interpolate(
        torch.from_numpy(photos).permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
        antialias=True,
    ).contiguous(memory_format=torch.channels_last)  # the layout the network runs fastest in

    def plain(batch: slice) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            net(net.normalize(decoded[batch]))  # type: ignore[operator]
        return time.perf_counter() - start

    def embedding(batch: slice) -> float:
        cache = EmbeddingCache(embedder, batch_size=batch_size)  # cold: every image is new
        start = time.perf_counter()
        cache.embed(images[batch])
        return time.perf_counter() - start

    batches = [slice(i, i + batch_size) for i in range(0, n_images, batch_size)]
    plain(batches[0]), embedding(batches[0])  # warm-up: allocator, kernels
    ratios, plain_total, embed_total = [], 0.0, 0.0
    for r in range(rounds):
        for i, batch in enumerate(batches):  # pairs close in time see the same machine load
            if (r + i) % 2:
                e, p = embedding(batch), plain(batch)
            else:
                p, e = plain(batch), embedding(batch)
            ratios.append(p / e)
            plain_total, embed_total = plain_total + p, embed_total + e
        print(f"round {r + 1}: plain forward {n_images * (r + 1) / plain_total:6.1f} img/s, "
              f"embedding {n_images * (r + 1) / embed_total:6.1f} img/s (so far)")  # fmt: skip
    ratio = statistics.median(ratios)
    print(f"{n_images} images of {image_size} px (network input {size} px), batch {batch_size}: "
          f"embedding / plain forward throughput = {ratio:.3f} (median of {len(ratios)} "
          f"adjacent pairs; ratio of totals {plain_total / embed_total:.3f})")  # fmt: skip
    return ratio


def score_seconds(n_directions: int, tasks_per_direction: int, k: int, rounds: int) -> float:
    rng = np.random.default_rng(0)
    pool, dim = 40, 88 + 208 + 1280
    emb = rng.standard_normal((n_directions * pool, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    n = n_directions * tasks_per_direction
    direction = np.repeat(np.arange(n_directions), tasks_per_direction)
    picks = np.argsort(rng.random((n, pool)), axis=1)[:, : 2 * k + 2] + (direction * pool)[:, None]
    q_max, q_min = picks[:, 0], picks[:, 1]
    refs_max, refs_min = list(picks[:, 2 : 2 + k]), list(picks[:, 2 + k :])
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        delta = deltas(emb, q_max, q_min, refs_max, refs_min)
        p = p_correct(delta, default_alpha(delta))
        scores = mis_per_direction(p, direction)
        times.append(time.perf_counter() - start)
    print(f"{n} tasks ({n_directions} directions × {tasks_per_direction}, {k} references a side, "
          f"{dim}-d embeddings): {statistics.median(times):.3f} s (median of {rounds}); "
          f"mean MIS {scores.mis.mean():.3f}")  # fmt: skip
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--directions", type=int, default=500)
    parser.add_argument("--tasks-per-direction", type=int, default=20)
    parser.add_argument("--references", type=int, default=9)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ratio = embedding_ratio(args.images, args.image_size, args.batch_size, args.rounds)
    seconds = score_seconds(args.directions, args.tasks_per_direction, args.references,
                            args.rounds)  # fmt: skip
    print(f"RESULT embedding_ratio={ratio:.2f} score_10k_seconds={seconds:.2f}")


if __name__ == "__main__":
    main()
