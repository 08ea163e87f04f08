"""The Machine Interpretability Score (Zimmermann, Klindt, Brendel et al. 2024), from embeddings.

For one 2-AFC task with max references E+, min references E−, max query q+ and min query q−,
and s(x, E) the mean cosine similarity of x's embedding to those of E,

    Δ = [s(q+, E+) − s(q+, E−)] − [s(q−, E+) − s(q−, E−)]

is the evidence that q+ belongs with the max side, and the machine picks it with probability
P = λ/2 + (1 − λ)·σ(αΔ) (λ, the lapse rate, is 0 unless fitted). A direction's MIS is the mean
P over its tasks. With unit vectors, s(x, E) = x · mean(E), so Δ = (q+ − q−) · (mean E+ − mean E−):
one sparse product gives every task's reference means at once.

α sets how sharply evidence becomes certainty; it is on the embedding's own similarity scale.
Until it is fitted to people's answers (``fit_alpha``), the default rule is α = 1 / median |Δ|
over the tasks scored: a task of typical evidence is then answered correctly with
σ(1) ≈ 0.73, whatever the embedding's scale. The rule is relative to the tasks scored together,
so uncalibrated P values compare directions within one run (basis against random, say); their
absolute level means something only once α is fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse
from scipy.special import expit, log_expit

DEFAULT_ALPHA_RULE = "uncalibrated α: 1/median |Δ| over the tasks scored"
TASK_CHUNK = 4096  # tasks per sparse product: bounds memory at TASK_CHUNK × embedding size
FIT_START_LAPSE = 0.05


class ScoreError(ValueError):
    """Tasks, embeddings or answers that cannot be scored; one clear line."""


def deltas(
    embeddings: np.ndarray,
    query_max: Sequence[int] | np.ndarray,
    query_min: Sequence[int] | np.ndarray,
    refs_max: Sequence[Sequence[int]],
    refs_min: Sequence[Sequence[int]],
) -> np.ndarray:
    """Δ of each task; tasks name rows of ``embeddings`` (M×D), references may be ragged.

    Rows are normalized here, so s is a cosine similarity whatever the caller passes.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ScoreError(f"embeddings must be a non-empty M×D matrix, got shape {emb.shape}")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise ScoreError("an embedding has length 0; cosine similarity is undefined for it")
    emb = emb / norms
    q_max = np.asarray(query_max, dtype=np.int64)
    q_min = np.asarray(query_min, dtype=np.int64)
    n = len(q_max)
    if not (len(q_min) == len(refs_max) == len(refs_min) == n):
        raise ScoreError(
            f"tasks disagree in number: {n} max queries, {len(q_min)} min queries, "
            f"{len(refs_max)} max and {len(refs_min)} min reference sets"
        )
    means = _reference_means(refs_max, emb.shape[0]) - _reference_means(refs_min, emb.shape[0])
    _check_rows(q_max, emb.shape[0], "max query")
    _check_rows(q_min, emb.shape[0], "min query")
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, TASK_CHUNK):
        stop = min(start + TASK_CHUNK, n)
        ref_diff = means[start:stop] @ emb  # mean E+ − mean E−, one row per task
        query_diff = emb[q_max[start:stop]] - emb[q_min[start:stop]]
        out[start:stop] = np.einsum("td,td->t", query_diff, ref_diff)
    return out


def _reference_means(refs: Sequence[Sequence[int]], n_rows: int) -> sparse.csr_array:
    """A tasks × rows matrix whose product with the embeddings gives each task's mean reference."""
    sizes = np.fromiter((len(r) for r in refs), dtype=np.int64, count=len(refs))
    if len(sizes) and sizes.min() == 0:
        raise ScoreError(f"task {int(np.argmin(sizes))} has no references on one side")
    columns = np.concatenate([np.asarray(r, dtype=np.int64) for r in refs] or [np.zeros(0, int)])
    _check_rows(columns, n_rows, "reference")
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    values = np.repeat(1.0 / np.maximum(sizes, 1), sizes).astype(np.float32)
    return sparse.csr_array((values, columns, indptr), shape=(len(refs), n_rows))


def _check_rows(rows: np.ndarray, n_rows: int, what: str) -> None:
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ScoreError(f"a {what} index is outside the {n_rows} embeddings")


def p_correct(delta: np.ndarray, alpha: float, lapse: float = 0.0) -> np.ndarray:
    """P(the machine picks the max query) = λ/2 + (1 − λ)·σ(αΔ)."""
    if not 0.0 <= lapse <= 1.0:
        raise ScoreError(f"the lapse rate must be within [0, 1], got {lapse}")
    return lapse / 2 + (1 - lapse) * expit(alpha * np.asarray(delta, dtype=np.float64))


def default_alpha(delta: np.ndarray) -> float:
    """The uncalibrated α: 1 / median |Δ| over the tasks scored (see the module docstring)."""
    magnitude = np.abs(np.asarray(delta, dtype=np.float64))
    if magnitude.size == 0:
        raise ScoreError("no tasks to set α from")
    median = float(np.median(magnitude))
    if not np.isfinite(median) or median <= 0:
        raise ScoreError("the median |Δ| is 0 (the tasks carry no evidence); give α explicitly")
    return 1.0 / median


@dataclass(frozen=True)
class DirectionScores:
    """Each direction's MIS (mean P over its tasks) and its task count, by direction label."""

    labels: np.ndarray
    mis: np.ndarray
    n_tasks: np.ndarray


def mis_per_direction(p: np.ndarray, direction: Sequence[object] | np.ndarray) -> DirectionScores:
    """Mean P(correct) per direction label (labels sorted)."""
    p = np.asarray(p, dtype=np.float64)
    labels, inverse = np.unique(np.asarray(direction), return_inverse=True)
    if len(p) != len(inverse):
        raise ScoreError(f"{len(p)} task probabilities for {len(inverse)} direction labels")
    counts = np.bincount(inverse, minlength=len(labels))
    return DirectionScores(labels, np.bincount(inverse, weights=p) / counts, counts)


@dataclass(frozen=True)
class AlphaFit:
    """α and lapse rate fitted by maximum likelihood to answers, with the fit's log-likelihood."""

    alpha: float
    lapse: float
    log_likelihood: float
    n: int


def fit_alpha(delta: np.ndarray, correct: np.ndarray, fit_lapse: bool = True) -> AlphaFit:
    """Fit P(correct) = λ/2 + (1 − λ)·σ(αΔ) to observed answers (1 correct, 0 wrong).

    α ≥ 0 and λ ∈ [0, 1]; with ``fit_lapse=False`` λ stays 0. The search runs on α·median|Δ|,
    which is near 1 on every embedding's scale, so one starting point serves them all.
    """
    d = np.asarray(delta, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if d.shape != y.shape or d.ndim != 1 or d.size == 0:
        raise ScoreError(f"need as many answers as Δ values, got {d.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ScoreError("answers must be 0 (wrong) or 1 (correct)")
    scale = default_alpha(d)

    def negative_log_likelihood(params: np.ndarray) -> float:
        alpha, lapse = params[0] * scale, params[1]
        z = alpha * d
        if lapse == 0.0:
            log_right, log_wrong = log_expit(z), log_expit(-z)
        else:  # log(λ/2 + (1 − λ)σ(±z)), kept finite for |z| large
            log_right = np.logaddexp(np.log(lapse / 2), np.log1p(-lapse) + log_expit(z))
            log_wrong = np.logaddexp(np.log(lapse / 2), np.log1p(-lapse) + log_expit(-z))
        return -float(np.sum(y * log_right + (1 - y) * log_wrong))

    start = np.array([1.0, FIT_START_LAPSE if fit_lapse else 0.0])
    bounds = [(0.0, None), (0.0, 1.0) if fit_lapse else (0.0, 0.0)]
    result = optimize.minimize(negative_log_likelihood, start, method="L-BFGS-B", bounds=bounds)
    return AlphaFit(
        alpha=float(result.x[0] * scale),
        lapse=float(result.x[1]),
        log_likelihood=-float(result.fun),
        n=int(d.size),
    )
