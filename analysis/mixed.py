"""Crossed random-effects logistic model, for the variance components only.

statsmodels' `BinomialBayesMixedGLM` fits `logit P(yes) = b0 + b1 * basis + a_annotator +
s_stimulus` by variational Bayes (`fit_vb`, seeded). We report the annotator and stimulus SDs
(how much people and images differ) and the conditional log-odds ratio b1 (the basis effect for
a typical annotator on a typical stimulus). Its fixed-effect posterior SDs are known to be too
small (mean-field VB ignores posterior correlation), so no interval is built from them: the
intervals of record are the bootstrap and the cluster-robust GLM.

Variational fitting grows with ratings × random effects, so large studies are fitted on a random
subset of whole stimuli (all their ratings), capped at `max_ratings`; the settings record the cap.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from analysis.results import MixedModel


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    uniques, index = np.unique(values, return_inverse=True)
    return index, uniques.size


def mixed_model(
    yes: np.ndarray, basis: np.ndarray, annotator: np.ndarray, stimulus: np.ndarray,
    seed: int = 0, max_ratings: int = 100_000,
) -> MixedModel:
    """Fit the crossed model: log-odds ratio and the two SDs (None when it cannot be fitted),
    with the number of ratings used and a note for the report."""
    yes = np.asarray(yes, dtype=np.float64)
    basis = np.asarray(basis, dtype=bool)
    if not (basis.any() and (~basis).any()):
        return MixedModel(None, None, None, 0,
                          "not fitted: needs ratings of both basis and random directions")
    if np.unique(annotator).size < 2 or np.unique(stimulus).size < 2:
        return MixedModel(None, None, None, 0,
                          "not fitted: needs at least two annotators and two stimuli to "
                          "separate their variance components")
    rng = np.random.default_rng(seed)
    if yes.size > max_ratings:
        stimuli = np.unique(stimulus)
        keep_share = max_ratings / yes.size
        chosen = rng.choice(stimuli, size=max(2, int(stimuli.size * keep_share)), replace=False)
        subset = np.isin(stimulus, chosen)
        yes, basis, annotator, stimulus = (yes[subset], basis[subset], annotator[subset],
                                           stimulus[subset])
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    annot_code, n_annot = _codes(annotator)
    stim_code, n_stim = _codes(stimulus)
    rows = np.arange(yes.size)
    exog_vc = sparse.csr_matrix(
        (np.ones(2 * yes.size), (np.concatenate([rows, rows]),
                                 np.concatenate([annot_code, n_annot + stim_code]))),
        shape=(yes.size, n_annot + n_stim))
    ident = np.concatenate([np.zeros(n_annot, dtype=int), np.ones(n_stim, dtype=int)])
    exog = np.column_stack([np.ones(yes.size), basis.astype(np.float64)])
    model = BinomialBayesMixedGLM(yes, exog, exog_vc, ident, vcp_p=1, fe_p=2,
                                  fep_names=["intercept", "basis"],
                                  vcp_names=["annotator", "stimulus"])
    result = model.fit_vb(fit_method="L-BFGS-B", rng=rng)
    sds = np.exp(result.vcp_mean)
    return MixedModel(log_odds=float(result.fe_mean[1]), annotator_sd=float(sds[0]),
                      stimulus_sd=float(sds[1]), n_ratings_used=int(yes.size),
                      note="variational Bayes (fit_vb); fixed-effect SDs too small for "
                           "intervals, so only the conditional log-odds ratio and the variance "
                           "components are reported")
