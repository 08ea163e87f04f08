"""Odds ratio basis vs random from a logistic GLM with two-way cluster-robust errors.

The model `logit P(yes) = b0 + b1 * basis` has a closed-form maximum-likelihood fit (the
logits of the two observed rates), so nothing iterates, and its sandwich covariance needs only
per-cluster sums of the score, which `np.bincount` gives in one pass over a million ratings.
Clustering is two-way (Cameron, Gelbach & Miller 2011): V = V_annotator + V_stimulus −
V_annotator∩stimulus, each with the CRV1 small-sample factor G/(G−1)·(N−1)/(N−K). This is the
computation statsmodels does for `GLM(...).fit(cov_type="cluster", cov_kwds={"groups": two
columns})`; the tests check the two agree. Wald z statistics, as statsmodels' GLM reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import logit

from analysis.results import Difference

K_PARAMS = 2


def _crv1(scores: np.ndarray, index: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """One-way cluster-robust covariance (CRV1); `index` holds dense cluster codes 0..G-1."""
    n_groups = int(index.max()) + 1  # callers ensure at least two clusters
    sums = np.stack([np.bincount(index, weights=scores[:, j], minlength=n_groups)
                     for j in range(scores.shape[1])], axis=1)
    meat = sums.T @ sums
    n_obs = scores.shape[0]
    factor = n_groups / (n_groups - 1) * (n_obs - 1) / (n_obs - K_PARAMS)
    return factor * bread @ meat @ bread


def fit_two_way(
    yes: np.ndarray, basis: np.ndarray, annotator: np.ndarray, stimulus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (b0, b1) and their two-way cluster-robust covariance.

    The caller guarantees both conditions are present with rates strictly inside (0, 1).
    """
    rate_b, rate_r = yes[basis].mean(), yes[~basis].mean()
    params = np.array([logit(rate_r), logit(rate_b) - logit(rate_r)])
    fitted = np.where(basis, rate_b, rate_r)
    design = np.column_stack([np.ones_like(yes), basis.astype(np.float64)])
    scores = design * (yes - fitted)[:, None]
    bread = np.linalg.inv((design * (fitted * (1 - fitted))[:, None]).T @ design)
    annot_code = pd.factorize(annotator)[0]
    stim_code = pd.factorize(stimulus)[0]
    pair = pd.factorize(annot_code.astype(np.int64) * (int(stim_code.max()) + 1) + stim_code)[0]
    by_annotator = _crv1(scores, annot_code, bread)
    by_stimulus = _crv1(scores, stim_code, bread)
    cov = by_annotator + by_stimulus - _crv1(scores, pair, bread)
    if cov[1, 1] <= 0:  # the two-way sum is not always positive; fall back conservatively
        cov = by_annotator if by_annotator[1, 1] >= by_stimulus[1, 1] else by_stimulus
    return params, cov


def odds_ratio(
    yes: np.ndarray, basis: np.ndarray, annotator: np.ndarray, stimulus: np.ndarray,
    level: float = 0.95,
) -> Difference:
    """Odds ratio of a yes for basis vs random directions, with a two-way clustered interval.

    Args:
        yes: 0/1 per rating; basis: True where the rating is of a basis direction.
        annotator, stimulus: cluster ids per rating.
        level: confidence level of the interval.

    Returns:
        The estimate, interval, p-value and method; None values with the reason in `method`
        when the odds ratio cannot be estimated (a condition absent or all-yes/all-no, one
        cluster).
    """
    yes = np.asarray(yes, dtype=np.float64)
    basis = np.asarray(basis, dtype=bool)
    method = ("logistic GLM (yes ~ basis), Wald interval with cluster-robust errors "
              "clustered two-way by annotator and stimulus (CRV1)")
    problem = None
    if not (basis.any() and (~basis).any()):
        problem = "needs ratings of both basis and random directions"
    elif not all(0 < yes[m].mean() < 1 for m in (basis, ~basis)):
        problem = "a condition has only yes or only no answers (odds ratio infinite)"
    elif pd.unique(annotator).size < 2 or pd.unique(stimulus).size < 2:
        problem = "needs at least two annotators and two stimuli for clustered errors"
    if problem is not None:
        return Difference.cannot(problem)
    params, cov = fit_two_way(yes, basis, np.asarray(annotator), np.asarray(stimulus))
    b1, se = float(params[1]), float(np.sqrt(cov[1, 1]))
    z = stats.norm.ppf(0.5 + level / 2)
    return Difference(estimate=float(np.exp(b1)),
                      ci=(float(np.exp(b1 - z * se)), float(np.exp(b1 + z * se))),
                      p_value=float(2 * stats.norm.sf(abs(b1 / se))), method=method)
