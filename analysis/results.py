"""What an analysis finds, as small typed records, and `results.json` written from them.

Every record is a frozen dataclass whose fields, in order, are its `results.json` keys, so
`to_dict()` is the file's structure and `AnalysisResult.to_json()` its text. A record also reads
by key, `result["difference"]["ci"]`, as the file names things. A statistic that cannot be
estimated is None (with the reason in a `method` or `note`), never NaN: `to_dict()` turns any
non-finite float into None, and `to_json()` refuses NaN, so a slip fails loudly instead of
writing a file other tools reject.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from analysis.exclusions import Exclusions

PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "krippendorff", "fvlab")
Interval = tuple[float | None, float | None]
NO_INTERVAL: Interval = (None, None)
_NOT_IN_JSON = {"json": False}


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, non-finite floats as None, tuples as lists."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def versions() -> dict[str, str]:
    """Versions of Python and the packages the numbers depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


class Record(Mapping[str, Any]):
    """A results.json object: a frozen dataclass whose fields are its keys, in order.

    It reads as attributes or as the mapping results.json shows (`record["ci"]`, `{**record}`),
    and it equals a mapping that has the same JSON (so `Rate(None, (None, None), 0)` equals
    `{"p": None, "ci": [None, None], "n": 0}`). Fields marked `_NOT_IN_JSON` are read by
    attribute or key but are not part of the mapping or the file.
    """

    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(self):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_json_names(self))

    def __len__(self) -> int:
        return len(_json_names(self))

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return all(getattr(self, f.name) == getattr(other, f.name)
                       for f in fields(self) if f.compare)  # type: ignore[arg-type]
        if isinstance(other, Mapping):
            return self.to_dict() == json_safe(dict(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # records hold dicts and lists

    def to_dict(self) -> dict[str, Any]:
        """The object as results.json holds it (plain JSON types)."""
        return {name: json_safe(getattr(self, name)) for name in _json_names(self)}


def _field_names(record: Record) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record))  # type: ignore[arg-type]  # a dataclass


def _json_names(record: Record) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record)  # type: ignore[arg-type]  # a dataclass
                 if f.metadata.get("json", True))


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Rate(Record):
    """A share (or a mean, for confidence) with its bootstrap interval and its ratings."""

    p: float | None
    ci: Interval
    n: int

    @classmethod
    def missing(cls) -> Rate:
        return cls(None, NO_INTERVAL, 0)


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Difference(Record):
    """An estimate with its interval, p-value and how it was made (or why it could not be):
    the basis − random difference, the odds ratio, the confidence difference."""

    estimate: float | None
    ci: Interval
    p_value: float | None
    method: str

    @classmethod
    def cannot(cls, reason: str) -> Difference:
        return cls(None, NO_INTERVAL, None, f"cannot be estimated: {reason}")


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class LayerDifference(Difference):
    """A per-layer difference or odds ratio, with its p-value Holm-adjusted across the layers."""

    p_value_holm: float | None = None


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class MixedModel(Record):
    """The crossed mixed model's conditional log-odds ratio and variance components (logit SDs);
    how many ratings it used and a note travel in `secondary`."""

    log_odds: float | None
    annotator_sd: float | None
    stimulus_sd: float | None
    n_ratings_used: int = field(default=0, metadata=_NOT_IN_JSON)
    note: str = field(default="", metadata=_NOT_IN_JSON)

    def fit_details(self) -> dict[str, Any]:
        return {"n_ratings_used": self.n_ratings_used, "note": self.note}


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class ConditionAgreement(Record):
    krippendorff_alpha: float | None
    pair_agreement: float | None


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class LabelConsistency(Record):
    """Mean pairwise overlap of label words over `n_items` stimuli with two labels or more."""

    mean_overlap: float | None
    n_items: int


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Agreement(Record):
    """Krippendorff's alpha and pairwise agreement: per condition, label consistency per
    stimulus condition, and overall over basis and random stimuli."""

    by_condition: dict[str, ConditionAgreement]
    label_consistency: dict[str, LabelConsistency]
    krippendorff_alpha: float | None
    pair_agreement: float | None


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class LayerAgreement(Record):
    krippendorff_alpha: float | None


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class LayerResult(Record):
    layer: str
    rates: dict[str, Rate]
    difference: LayerDifference
    odds_ratio: LayerDifference
    agreement: LayerAgreement


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Verdict(Record):
    random_often_interpretable: bool
    basis_more_often: bool
    finding_reproduced: bool
    explanation: str


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Confidence(Record):
    """Mean confidence (1–5) per condition and its basis − random difference."""

    mean: dict[str, Rate]
    difference: Difference


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class WithoutExclusions(Record):
    """The primary estimates on every rating, to show the exclusions did not make the finding."""

    n_ratings: int
    rates: dict[str, Rate]
    difference: Difference
    odds_ratio: Difference
    verdict: Verdict


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class ReferenceComparison(Record):
    """2-AFC: basis − random accuracy with one reference kind, and its odds ratio."""

    difference: Difference
    odds_ratio: Difference


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class GapSummary(Record):
    """The standardized activation gap of the query pairs shown for one condition's directions:
    mean and SD over directions (each direction's mean over its answered trials)."""

    mean: float | None
    sd: float | None
    n_directions: int


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class QueryDifficulty(Record):
    """2-AFC: whether basis and random directions' query pairs were equally hard to tell apart.

    `difference` is basis − random in mean gap (bootstrap interval over directions, permutation
    p-value); `standardized_difference` is that in units of the pooled SD over directions
    (Cohen's d), so "by how much" reads the same whatever the gaps' scale.
    """

    by_condition: dict[str, GapSummary]
    difference: Difference
    standardized_difference: float | None


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class Secondary(Record):
    """Secondary results; the last two are 2-AFC's only (absent from a rating study's file)."""

    confidence: Confidence
    exclusion_counts: dict[str, int]
    n_ratings_before_exclusions: int
    without_exclusions: WithoutExclusions | None  # None: nobody was excluded
    mixed_model: MixedModel
    by_reference: dict[str, ReferenceComparison] | None = None
    query_difficulty: QueryDifficulty | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.without_exclusions is None:
            out["without_exclusions"] = {"same_as_main": True}
        out["mixed_model"] = self.mixed_model.fit_details()
        for task_only in ("by_reference", "query_difficulty"):
            if getattr(self, task_only) is None:
                del out[task_only]
        return out


@dataclass(frozen=True, eq=False)  # equality: Record.__eq__
class AnalysisResult(Record):
    """The whole analysis of one ratings table: results.json, plus what the report draws from
    (the kept ratings' per-item table and who was excluded, which are not in the file).

    For a 2-AFC study the rates, difference, odds ratio, mixed model, agreement and per-layer
    entries are those of the primary comparison, accuracy with synthetic references (rate =
    share of correct choices); `per_reference` has every reference kind's accuracies.
    """

    n_ratings: int
    n_annotators: int
    n_stimuli: int
    excluded_annotators: list[int]
    exclusion_rule: str
    rates: dict[str, Rate]
    difference: Difference
    odds_ratio: Difference
    mixed_model: MixedModel
    agreement: Agreement
    per_layer: list[LayerResult]
    verdict: Verdict
    settings: dict[str, Any]
    secondary: Secondary
    notes: list[str]
    task: str
    chance: float | None  # the accuracy of guessing (2-AFC: 0.5); None for the rating task
    per_reference: dict[str, dict[str, Rate]]  # 2-AFC: reference kind → condition → accuracy
    annotators: str  # whose answers were analysed: human, machine or all
    item_table: pd.DataFrame = field(metadata=_NOT_IN_JSON, repr=False, compare=False)
    exclusions: Exclusions = field(metadata=_NOT_IN_JSON, repr=False, compare=False)

    def to_json(self) -> str:
        """results.json's text: two-space indents, keys in this order, a final newline."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
