"""Direction sampling: the randomized basis, unit random directions, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from service.featurevis.directions import sample_directions


def test_basis_is_one_hot_on_distinct_sampled_channels() -> None:
    d = sample_directions(112, "blocks.10", "basis", 16, seed=3)
    assert d.vectors.dtype == np.float32 and d.vectors.shape == (16, 112)
    assert len(set(d.channels)) == 16
    for vector, channel in zip(d.vectors, d.channels, strict=True):
        assert vector[channel] == 1.0 and vector.sum() == 1.0
    assert d.channels != list(range(16)), "a randomized basis, not the first k channels"


def test_basis_channels_are_uniform_over_seeds() -> None:
    counts = np.zeros(10)
    for seed in range(2000):
        counts[sample_directions(10, "L", "basis", 1, seed=seed).channels[0]] += 1
    # each channel expected 200 times; 5 standard deviations is a generous band
    assert np.all(np.abs(counts - 200) < 5 * np.sqrt(200 * 0.9))


@pytest.mark.parametrize("random_kind", ["gaussian", "orthogonal"])
def test_random_directions_are_unit_and_deterministic(random_kind: str) -> None:
    a = sample_directions(64, "conv3", "random", 8, seed=5, random_kind=random_kind)
    b = sample_directions(64, "conv3", "random", 8, seed=5, random_kind=random_kind)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.seeds == b.seeds and a.channels == [None] * 8
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-6)
    other = sample_directions(64, "conv3", "random", 8, seed=6, random_kind=random_kind)
    assert not np.allclose(a.vectors, other.vectors)


def test_orthogonal_rows_are_orthonormal() -> None:
    d = sample_directions(32, "conv3", "random", 32, seed=1, random_kind="orthogonal")
    np.testing.assert_allclose(d.vectors @ d.vectors.T, np.eye(32), atol=1e-5)


@pytest.mark.parametrize("kind", ["basis", "random"])
def test_more_directions_keep_the_earlier_ones(kind: str) -> None:
    few = sample_directions(40, "conv2", kind, 3, seed=9)
    many = sample_directions(40, "conv2", kind, 10, seed=9)
    np.testing.assert_array_equal(few.vectors, many.vectors[:3])
    assert few.seeds == many.seeds[:3]


def test_layer_and_kind_change_the_stream() -> None:
    a = sample_directions(40, "conv2", "random", 2, seed=9)
    b = sample_directions(40, "conv3", "random", 2, seed=9)
    assert not np.allclose(a.vectors, b.vectors)
    basis = sample_directions(40, "conv2", "basis", 2, seed=9)
    assert set(basis.seeds).isdisjoint(a.seeds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((8, "L", "basis", 9, 0), "only 8 channels"),
        ((8, "L", "random", -1, 0), "zero or more"),
        ((8, "L", "neuron", 1, 0), "unknown direction kind"),
        ((0, "L", "random", 1, 0), "at least one channel"),
        ((8, "L", "random", 1, -2), "seed"),
    ],
)
def test_bad_requests_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_directions(*args)


def test_orthogonal_cannot_exceed_the_dimension_and_unknown_random_kind() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        sample_directions(4, "L", "random", 5, 0, random_kind="orthogonal")
    with pytest.raises(ValueError, match="unknown random kind"):
        sample_directions(4, "L", "random", 1, 0, random_kind="uniform")
    assert sample_directions(4, "L", "random", 5, 0).vectors.shape == (5, 4)
