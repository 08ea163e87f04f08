"""The vectorised kernels equal slow reference loops and draw what they claim to draw."""

from __future__ import annotations

import numpy as np

from analysis import resample
from analysis.estimate import Options, estimate
from analysis.load import validate
from analysis.simulate import CrowdSpec, simulate

# Efron & Tibshirani's law-school sample (LSAT, GPA × 100): a textbook bootstrap example.
LSAT = np.array([576, 635, 558, 578, 666, 580, 555, 661, 651, 605, 653, 575, 545, 572, 594])
GPA = np.array([339, 330, 281, 303, 344, 307, 300, 343, 336, 313, 312, 274, 276, 288, 296])


def test_bootstrap_equals_a_slow_loop_on_the_textbook_sample() -> None:
    sums = np.column_stack([LSAT, GPA]).astype(float)
    fast = resample.bootstrap_sums(sums, 1000, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    slow = []
    for _ in range(1000):
        pick = rng.integers(0, len(LSAT), len(LSAT))
        slow.append([LSAT[pick].sum(), GPA[pick].sum()])
    np.testing.assert_array_equal(fast, np.array(slow, dtype=float))
    ratio = fast[:, 0] / fast[:, 1]
    assert abs(ratio.std() - (LSAT / GPA).std() / np.sqrt(len(LSAT))) < 0.02


def test_bootstrap_chunks_do_not_change_the_draws(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sums = np.random.default_rng(0).random((50, 2))
    whole = resample.bootstrap_sums(sums, 300, np.random.default_rng(9))
    monkeypatch.setattr(resample, "CHUNK_CELLS", 50 * 7)
    chunked = resample.bootstrap_sums(sums, 300, np.random.default_rng(9))
    np.testing.assert_allclose(whole, chunked)


def test_two_way_equals_a_slow_loop() -> None:
    rng = np.random.default_rng(1)
    n_items, n_annot, n_boot = 12, 5, 200
    item = np.repeat(np.arange(n_items), 3)
    annot = rng.integers(0, n_annot, item.size)
    yes = rng.integers(0, 2, item.size).astype(float)
    from scipy import sparse

    matrices = [sparse.csr_array((v, (item, annot)), shape=(n_items, n_annot))
                for v in (yes, np.ones(item.size))]
    weights = resample.annotator_weights(np.random.default_rng(2), n_boot, n_annot)
    fast = resample.bootstrap_sums_two_way(matrices, weights, np.random.default_rng(3))
    stim_rng = np.random.default_rng(3)
    for b in range(n_boot):
        pick = stim_rng.integers(0, n_items, n_items)
        counts = np.bincount(pick, minlength=n_items)
        w = counts[item] * weights[b, annot]
        np.testing.assert_allclose(fast[b], [np.sum(w * yes), np.sum(w)])


def test_permutation_subsets_keep_counts_within_strata() -> None:
    sums = np.column_stack([np.arange(10.0), np.ones(10)])
    labels = np.array([1, 1, 0, 0, 0, 1, 0, 0, 1, 1], dtype=bool)
    strata = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    out = resample.permutation_sums(sums, labels, strata, 2000, np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, :, 1], np.tile([2.0, 3.0], (2000, 1)))
    # every item of stratum 0 is chosen 2/5 of the time
    expected_mean = 2 / 5 * sums[:5, 0].sum()
    assert abs(out[:, 0, 0].mean() - expected_mean) < 0.1


def test_estimate_is_seeded_and_vectorised_results_repeat() -> None:
    ratings = validate(simulate(CrowdSpec(seed=2, n_stimuli=80, n_annotators=20))[0])
    first = estimate(ratings, Options(n_boot=300, n_perm=300, seed=4))
    again = estimate(ratings, Options(n_boot=300, n_perm=300, seed=4))
    other = estimate(ratings, Options(n_boot=300, n_perm=300, seed=5))
    assert first.difference == again.difference
    assert first.difference["ci"] != other.difference["ci"]
