"""Direction sampling: the two conditions of the study live here and nowhere else.

A basis direction is a one-hot vector on a channel drawn uniformly without replacement (a
"randomized basis": the first k channels could share some property of their position). A random
direction is a Gaussian unit vector, or a row of a random orthogonal matrix as in Network
Dissection's random rotation. Everything is a pure function of (seed, layer, kind, index), so a
job can be re-created exactly, and asking for more directions keeps the earlier ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from service.featurevis.kinds import DirectionKind, RandomKind, parse


@dataclass
class DirectionSet:
    """Directions of one layer and one kind.

    ``vectors`` is float32 [count, C] with unit rows; ``channels[i]`` is the channel of a basis
    direction (``None`` for random ones); ``seeds[i]`` is a per-direction seed derived from the
    same (seed, layer, kind, index), usable to seed that direction's rendering.
    """

    layer: str
    kind: DirectionKind
    vectors: np.ndarray
    channels: list[int | None]
    seeds: list[int]


def _stream(seed: int, layer: str, label: str, index: int | None = None) -> np.random.SeedSequence:
    """A seed sequence keyed by the job seed, the layer name, a label and an optional index."""
    digest = hashlib.sha256(f"{layer}\x00{label}".encode()).digest()
    key = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    if index is not None:
        key.append(index)
    return np.random.SeedSequence(entropy=seed, spawn_key=key)


def _direction_seed(seed: int, layer: str, kind: str, index: int) -> int:
    return int(_stream(seed, layer, f"{kind}-seed", index).generate_state(1)[0] >> 1)


def sample_directions(
    n_channels: int,
    layer: str,
    kind: str,
    count: int,
    seed: int,
    random_kind: str = RandomKind.GAUSSIAN,
) -> DirectionSet:
    """Draw ``count`` directions of ``kind`` in a layer with ``n_channels`` channels.

    Raises:
        ValueError: unknown kind or random kind, ``count < 0``, ``n_channels < 1``, a negative
            seed, or more directions than a basis (or an orthogonal matrix) has rows.
    """
    direction_kind = parse(DirectionKind, kind, "direction kind")
    random_kind = parse(RandomKind, random_kind, "random kind")
    if n_channels < 1:
        raise ValueError(f"a layer needs at least one channel, got {n_channels}")
    if count < 0:
        raise ValueError(f"direction count must be zero or more, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be zero or more, got {seed}")
    basis = direction_kind == DirectionKind.BASIS
    if (basis or random_kind == RandomKind.ORTHOGONAL) and count > n_channels:
        what = "basis directions" if basis else "orthogonal random directions"
        raise ValueError(f"{count} {what} requested but {layer} has only {n_channels} channels")

    vectors = np.zeros((count, n_channels), dtype=np.float32)
    channels: list[int | None] = [None] * count
    if basis:
        order = np.random.default_rng(_stream(seed, layer, "basis")).permutation(n_channels)
        for i in range(count):
            channels[i] = int(order[i])
            vectors[i, order[i]] = 1.0
    elif random_kind == RandomKind.ORTHOGONAL:
        rng = np.random.default_rng(_stream(seed, layer, "orthogonal"))
        vectors[:] = _random_orthogonal(rng, n_channels)[:count]
    else:
        for i in range(count):
            v = np.random.default_rng(_stream(seed, layer, "gaussian", i)).standard_normal(
                n_channels
            )
            vectors[i] = v / np.linalg.norm(v)
    seeds = [_direction_seed(seed, layer, direction_kind, i) for i in range(count)]
    return DirectionSet(
        layer=layer, kind=direction_kind, vectors=vectors, channels=channels, seeds=seeds
    )


def _random_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))
