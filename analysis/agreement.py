"""How much annotators agree: Krippendorff's alpha, pairwise agreement, label consistency.

For a binary answer, nominal alpha depends only on each item's counts of yes and no, so it is
computed here from per-item counts in one vectorised pass (a million ratings in milliseconds);
the tests check it equals the `krippendorff` package's value on the same data. Items rated once
are not pairable and drop out, as in the package.
"""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.results import Agreement, ConditionAgreement, LabelConsistency
from service.studies.ratings_file import STIMULUS_CONDITIONS

_TOKEN = re.compile(r"[a-z0-9]+")


def _counts(ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-item (yes, total) counts; items are stimuli or catch items."""
    item = np.where(ratings["stimulus_id"].notna().to_numpy(dtype=bool),
                    ratings["stimulus_id"].to_numpy(dtype=np.float64, na_value=0),
                    -ratings["catch_item_id"].to_numpy(dtype=np.float64, na_value=0))
    grouped = pd.DataFrame({"item": item, "yes": ratings["interpretable"].to_numpy(np.float64)})
    sums = grouped.groupby("item")["yes"].agg(["sum", "size"])
    return sums["sum"].to_numpy(), sums["size"].to_numpy(dtype=np.float64)


def alpha_from_counts(yes: np.ndarray, total: np.ndarray) -> float | None:
    """Nominal Krippendorff's alpha for binary answers from per-item yes/total counts.

    Returns None when it is undefined: no item rated twice, or every pairable answer the same.
    """
    pairable = total >= 2
    yes, total = yes[pairable], total[pairable]
    if yes.size == 0:
        return None
    no = total - yes
    n = total.sum()
    disagreeing = np.sum(yes * no / (total - 1))  # coincidences o_01 (= o_10)
    n_yes, n_no = yes.sum(), no.sum()
    if n_yes == 0 or n_no == 0:
        return None
    return float(1 - (n - 1) * disagreeing / (n_yes * n_no))


def pair_agreement(yes: np.ndarray, total: np.ndarray) -> float | None:
    """Share of pairs of ratings of the same item that give the same answer."""
    no = total - yes
    pairs = np.sum(total * (total - 1) / 2)
    if pairs == 0:
        return None
    return float(np.sum(yes * (yes - 1) / 2 + no * (no - 1) / 2) / pairs)


def _tokens(label: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(label.lower()))


def _stimulus_overlap(sets: list[frozenset[str]], counts: list[int]) -> float:
    """Mean Jaccard overlap over all pairs of one stimulus' labels, from distinct token sets."""
    same = sum(c * (c - 1) / 2 for c in counts)  # identical sets overlap fully
    cross = sum(counts[i] * counts[j] * len(sets[i] & sets[j]) / len(sets[i] | sets[j])
                for i, j in combinations(range(len(sets)), 2))
    m = sum(counts)
    return (same + cross) / (m * (m - 1) / 2)


def label_consistency(ratings: pd.DataFrame, max_items: int = 2000,
                      seed: int = 0) -> LabelConsistency:
    """Mean pairwise Jaccard overlap of normalised label tokens, over items with ≥ 2 labels.

    Labels are reduced to token sets once per distinct text, and each stimulus to counts of
    distinct sets, so the work grows with distinct labels, not with pairs of ratings. At most
    `max_items` stimuli (a seeded random subset) are scored; `n_items` says how many were.
    """
    labelled = ratings.loc[ratings["label"].notna() & ratings["stimulus_id"].notna(),
                           ["stimulus_id", "label"]]
    texts = labelled["label"].astype(object)
    token_sets = {text: _tokens(str(text)) for text in pd.unique(texts)}
    keyed = pd.DataFrame({"stimulus": labelled["stimulus_id"].to_numpy(dtype=np.int64),
                          "tokens": texts.map(token_sets).to_numpy()})
    keyed = keyed[keyed["tokens"].map(len) > 0]
    counts = keyed.groupby(["stimulus", "tokens"], sort=False).size()
    per_item = counts.groupby(level="stimulus").sum()
    eligible = per_item.index[per_item >= 2].to_numpy()
    if eligible.size > max_items:
        eligible = np.random.default_rng(seed).choice(eligible, max_items, replace=False)
    chosen = counts[counts.index.get_level_values("stimulus").isin(eligible)]
    scores = [_stimulus_overlap(list(group.index.get_level_values("tokens")),
                                group.to_list())
              for _, group in chosen.groupby(level="stimulus")]
    return LabelConsistency(mean_overlap=float(np.mean(scores)) if scores else None,
                            n_items=len(scores))


def alpha(ratings: pd.DataFrame) -> float | None:
    """Nominal Krippendorff's alpha of the given ratings (stimuli and catch items as units)."""
    return alpha_from_counts(*_counts(ratings))


def agreement(ratings: pd.DataFrame) -> Agreement:
    """Alpha and pairwise agreement overall (basis + random) and per condition; labels."""
    ratings = ratings[["condition", "stimulus_id", "catch_item_id", "interpretable", "label"]]
    by_condition: dict[str, ConditionAgreement] = {}
    labels: dict[str, LabelConsistency] = {}
    for condition, rows in ratings.groupby("condition", sort=True, observed=True):
        yes, total = _counts(rows)
        by_condition[str(condition)] = ConditionAgreement(
            krippendorff_alpha=alpha_from_counts(yes, total),
            pair_agreement=pair_agreement(yes, total),
        )
        if condition in STIMULUS_CONDITIONS:
            labels[str(condition)] = label_consistency(rows)
    yes, total = _counts(ratings[ratings["condition"].isin(STIMULUS_CONDITIONS)])
    return Agreement(by_condition=by_condition, label_consistency=labels,
                     krippendorff_alpha=alpha_from_counts(yes, total),
                     pair_agreement=pair_agreement(yes, total))
