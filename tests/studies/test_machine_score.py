"""The machine score: Δ as published, P = σ(αΔ) with a lapse, MIS per direction, fitting α."""

from __future__ import annotations

import numpy as np
import pytest

from service.studies.machine.score import (
    ScoreError,
    default_alpha,
    deltas,
    fit_alpha,
    mis_per_direction,
    p_correct,
)

RNG_SEED = 0


def test_delta_of_a_hand_computed_task() -> None:
    # E+ = {(1, 0), (0, 1)}, E− = {(−1, 0)}, q+ = (1, 0), q− = (0, −1):
    # s(q+, E+) = 0.5, s(q+, E−) = −1, s(q−, E+) = −0.5, s(q−, E−) = 0
    # Δ = (0.5 − (−1)) − (−0.5 − 0) = 2
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    delta = deltas(emb * [[3.0], [1.0], [2.0], [0.5]], [0], [3], [[0, 1]], [[2]])  # any length
    np.testing.assert_allclose(delta, [2.0], atol=1e-6)
    np.testing.assert_allclose(p_correct(delta, 1.0), [1 / (1 + np.exp(-2.0))])
    np.testing.assert_allclose(p_correct(delta, 1.0, 0.2), [0.1 + 0.8 / (1 + np.exp(-2.0))])


def naive_delta(emb: np.ndarray, qp: int, qm: int, rp: list[int], rm: list[int]) -> float:
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def s(q: int, refs: list[int]) -> float:
        return float(np.mean([unit[q] @ unit[r] for r in refs]))

    return (s(qp, rp) - s(qp, rm)) - (s(qm, rp) - s(qm, rm))


def test_vectorised_deltas_match_the_definition_with_ragged_references() -> None:
    rng = np.random.default_rng(RNG_SEED)
    emb = rng.standard_normal((30, 7))

    def refs() -> list[int]:
        return list(rng.integers(0, 30, rng.integers(1, 6)))

    tasks = [(int(rng.integers(30)), int(rng.integers(30)), refs(), refs()) for _ in range(50)]
    got = deltas(emb, *map(list, zip(*tasks, strict=True)))
    np.testing.assert_allclose(got, [naive_delta(emb, *t) for t in tasks], atol=1e-5)


def test_swapping_the_queries_or_the_sides_flips_delta() -> None:
    rng = np.random.default_rng(RNG_SEED)
    emb = rng.standard_normal((20, 5))
    qp, qm, rp, rm = [1, 2], [3, 4], [[5, 6], [7, 8, 9]], [[10], [11, 12]]
    forward = deltas(emb, qp, qm, rp, rm)
    np.testing.assert_allclose(deltas(emb, qm, qp, rp, rm), -forward, atol=1e-6)
    np.testing.assert_allclose(deltas(emb, qp, qm, rm, rp), -forward, atol=1e-6)


def clustered_tasks(n_tasks: int, k: int, shuffled: bool, seed: int = RNG_SEED):
    """Two tight clusters of embeddings; planted tasks draw max items from one and min items
    from the other, shuffled ones draw references and queries from unrelated random points."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2, 64)) * 3
    family = np.repeat([0, 1], 200)
    emb = np.concatenate([centres[family] + rng.standard_normal((400, 64)),
                          rng.standard_normal((400, 64))])  # fmt: skip
    plus, minus, noise = np.arange(200), np.arange(200, 400), np.arange(400, 800)
    if shuffled:
        plus = minus = noise
    pick = lambda pool, n: [rng.choice(pool, n, replace=False) for _ in range(n_tasks)]  # noqa: E731
    refs_p, refs_m = pick(plus, k), pick(minus, k)
    return emb, rng.choice(plus, n_tasks), rng.choice(minus, n_tasks), refs_p, refs_m


def test_planted_tasks_score_near_one_and_shuffled_ones_near_chance() -> None:
    planted = deltas(*clustered_tasks(200, 9, shuffled=False))
    shuffled = deltas(*clustered_tasks(2000, 9, shuffled=True))
    # A study where most tasks carry little evidence sets the default α's scale.
    alpha = default_alpha(np.concatenate([planted, shuffled]))
    assert p_correct(planted, alpha).mean() > 0.95
    assert abs(p_correct(shuffled, alpha).mean() - 0.5) < 0.03


def test_default_alpha_is_one_over_the_median_absolute_delta() -> None:
    assert default_alpha(np.array([0.1, -0.2, 0.4, -0.5, 0.3])) == pytest.approx(1 / 0.3)
    with pytest.raises(ScoreError, match="median"):
        default_alpha(np.zeros(4))
    with pytest.raises(ScoreError, match="no tasks"):
        default_alpha(np.array([]))


def test_mis_is_the_mean_probability_per_direction() -> None:
    scores = mis_per_direction(np.array([0.9, 0.7, 0.5, 0.6, 0.4]), ["b", "a", "b", "a", "a"])
    assert list(scores.labels) == ["a", "b"]
    np.testing.assert_allclose(scores.mis, [(0.7 + 0.6 + 0.4) / 3, (0.9 + 0.5) / 2])
    assert list(scores.n_tasks) == [3, 2]


@pytest.mark.parametrize(("alpha", "lapse"), [(4.0, 0.1), (30.0, 0.0), (0.5, 0.2)])
def test_fit_alpha_recovers_the_slope_and_lapse_that_made_the_answers(
    alpha: float, lapse: float
) -> None:
    rng = np.random.default_rng(RNG_SEED)
    delta = rng.normal(0, 1.0, 20_000) * (4.0 / alpha)  # evidence on each α's own scale
    correct = (rng.random(delta.size) < p_correct(delta, alpha, lapse)).astype(int)
    fit = fit_alpha(delta, correct)
    assert fit.alpha == pytest.approx(alpha, rel=0.12)
    assert fit.lapse == pytest.approx(lapse, abs=0.03)
    assert fit.n == delta.size
    without = fit_alpha(delta, correct, fit_lapse=False)
    assert without.lapse == 0.0 and without.log_likelihood <= fit.log_likelihood + 1e-6


def test_bad_tasks_and_answers_are_refused_in_one_line() -> None:
    emb = np.eye(3)
    with pytest.raises(ScoreError, match="task 1 has no references"):
        deltas(emb, [0, 1], [1, 2], [[2], []], [[0], [1]])
    with pytest.raises(ScoreError, match="outside the 3 embeddings"):
        deltas(emb, [0], [5], [[1]], [[2]])
    with pytest.raises(ScoreError, match="tasks disagree in number"):
        deltas(emb, [0, 1], [1], [[2]], [[0]])
    with pytest.raises(ScoreError, match="length 0"):
        deltas(np.zeros((3, 2)), [0], [1], [[2]], [[0]])
    with pytest.raises(ScoreError, match="0 \\(wrong\\) or 1"):
        fit_alpha(np.array([0.1, 0.2]), np.array([1, 2]))
    with pytest.raises(ScoreError, match="lapse"):
        p_correct(np.array([0.1]), 1.0, lapse=1.5)


@pytest.mark.slow
def test_lite2_machine_on_planted_shuffled_and_catch_tasks() -> None:
    """Real embeddings of natural photos (5 views each) and noise images.

    Planted: max side photos, min side noise. Shuffled: references from some photos, queries
    from other photos (another direction's queries). Catch: each query is one of its side's
    references. α is the default rule over the shuffled tasks, the study's ordinary ones.
    """
    import torch

    from service.featurevis.embeddings import load_embedder
    from service.featurevis.quality import natural_photos

    rng = np.random.default_rng(RNG_SEED)
    photos = natural_photos(32)[:20]  # four photos × five views
    noise = rng.random((6, 32, 32, 3), dtype=np.float32)
    images = torch.from_numpy(np.concatenate([photos, noise])).permute(0, 3, 1, 2)
    emb = load_embedder().embed(images)
    some, others, noisy = np.arange(10), np.arange(10, 20), np.arange(20, 26)
    n, k = 400, 3

    def refs(pool: np.ndarray) -> list[np.ndarray]:
        return [rng.choice(pool, k, replace=False) for _ in range(n)]

    planted_max, planted_min = refs(some), refs(noisy)
    planted = deltas(emb, rng.choice(others, n), [r[0] for r in refs(noisy)], planted_max,
                     planted_min)  # fmt: skip
    shuffled = deltas(emb, rng.choice(others, n), rng.choice(others, n), refs(some), refs(some))
    catch_max, catch_min = refs(np.arange(20)), refs(np.arange(20))
    catch = deltas(emb, [r[0] for r in catch_max], [r[0] for r in catch_min], catch_max, catch_min)
    alpha = default_alpha(shuffled)
    assert p_correct(planted, alpha).mean() > 0.95
    assert abs(p_correct(shuffled, alpha).mean() - 0.5) < 0.05
    assert p_correct(catch, alpha).mean() > 0.9
