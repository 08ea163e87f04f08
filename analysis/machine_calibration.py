"""How well the machine annotator predicts people, from numbers only (no database, no torch).

Given each human answer's predicted P(correct) under the fitted α and lapse, whether the person
was right, and the direction the trial showed:

- per direction, people's accuracy against the machine's MIS (the mean P over the same
  answered trials, so both sides average over the same tasks), with their Pearson correlation
  and a percentile bootstrap interval that resamples directions (seeded);
- the calibration curve: answers binned by predicted P, observed accuracy in each bin.

α and λ are fitted to these very answers, so the curve's overall level matches by construction;
what it shows is whether the shape of σ(αΔ) follows people's answers across the evidence
range. The correlation is on the direction level, where MIS is meant to be used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_BINS = 10  # equal-width bins of predicted P over [0, 1]
DEFAULT_BOOTSTRAP = 2000
CONFIDENCE = 0.95
MIN_DIRECTIONS = 3  # fewer directions than this: no correlation is reported


@dataclass(frozen=True)
class CalibrationBin:
    """Answers whose predicted P fell in [lo, hi): their mean prediction and people's accuracy."""

    lo: float
    hi: float
    predicted: float
    observed: float
    n: int


@dataclass(frozen=True)
class DirectionAgreement:
    """Per direction: people's accuracy and the machine's MIS over the same answered trials."""

    direction: np.ndarray
    human_accuracy: np.ndarray
    mis: np.ndarray
    n_answers: np.ndarray


@dataclass(frozen=True)
class CalibrationReport:
    """The correlation of per-direction accuracy with MIS (None below `MIN_DIRECTIONS` or when
    either side does not vary), its bootstrap interval, and the calibration curve."""

    n_answers: int
    directions: DirectionAgreement
    correlation: float | None
    ci: tuple[float, float] | None
    bins: list[CalibrationBin]
    bootstrap: int
    seed: int


def per_direction(p: np.ndarray, correct: np.ndarray,
                  direction: np.ndarray) -> DirectionAgreement:
    labels, inverse = np.unique(np.asarray(direction), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(labels))
    accuracy = np.bincount(inverse, weights=np.asarray(correct, dtype=np.float64)) / counts
    mis = np.bincount(inverse, weights=np.asarray(p, dtype=np.float64)) / counts
    return DirectionAgreement(labels, accuracy, mis, counts)


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _bootstrap_ci(x: np.ndarray, y: np.ndarray, draws: int,
                  seed: int) -> tuple[float, float] | None:
    """Percentile interval of r over directions resampled with replacement; draws where a side
    does not vary (r undefined) are left out."""
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(draws):
        pick = rng.integers(0, len(x), len(x))
        r = _pearson(x[pick], y[pick])
        if r is not None:
            rs.append(r)
    if not rs:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(rs, [tail, 100 - tail])
    return float(lo), float(hi)


def calibration_bins(p: np.ndarray, correct: np.ndarray,
                     bins: int = DEFAULT_BINS) -> list[CalibrationBin]:
    """Equal-width bins of predicted P; empty bins are left out."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    result = []
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            result.append(CalibrationBin(float(edges[b]), float(edges[b + 1]),
                                         float(p[chosen].mean()), float(y[chosen].mean()),
                                         int(chosen.sum())))
    return result


def calibration_report(p: np.ndarray, correct: np.ndarray, direction: np.ndarray, *,
                       bins: int = DEFAULT_BINS, bootstrap: int = DEFAULT_BOOTSTRAP,
                       seed: int = 0) -> CalibrationReport:
    """See the module docstring; `p`, `correct` (0/1) and `direction` have one entry per
    human answer."""
    if not (len(p) == len(correct) == len(direction)) or len(p) == 0:
        raise ValueError(f"need one P, answer and direction per answer, got {len(p)}, "
                         f"{len(correct)} and {len(direction)}")
    agreement = per_direction(p, correct, direction)
    enough = len(agreement.direction) >= MIN_DIRECTIONS
    r = _pearson(agreement.human_accuracy, agreement.mis) if enough else None
    ci = (_bootstrap_ci(agreement.human_accuracy, agreement.mis, bootstrap, seed)
          if r is not None else None)
    return CalibrationReport(len(p), agreement, r, ci, calibration_bins(p, correct, bins),
                             bootstrap, seed)


def plot_calibration(report: CalibrationReport, path: Path, title: str) -> Path:
    """Two panels: the calibration curve (dot area ∝ answers) and people's per-direction
    accuracy against MIS."""
    fig, (curve, scatter) = plt.subplots(1, 2, figsize=(10, 4.5))
    curve.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    if report.bins:
        sizes = np.array([b.n for b in report.bins], dtype=float)
        curve.scatter([b.predicted for b in report.bins], [b.observed for b in report.bins],
                      s=20 + 180 * sizes / sizes.max(), color="tab:blue", zorder=3,
                      label="answers binned by predicted P")
    curve.set(xlim=(0, 1), ylim=(0, 1), xlabel="machine's predicted P(correct)",
              ylabel="people's accuracy", title=f"calibration ({report.n_answers} answers)")
    curve.legend(loc="upper left", fontsize=8)
    agreement = report.directions
    scatter.scatter(agreement.mis, agreement.human_accuracy, color="tab:orange")
    scatter.set(xlim=(0, 1), ylim=(0, 1), xlabel="MIS (mean predicted P)",
                ylabel="people's accuracy", title=_correlation_label(report))
    scatter.axhline(0.5, color="black", linestyle=":", linewidth=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _correlation_label(report: CalibrationReport) -> str:
    n = len(report.directions.direction)
    if report.correlation is None:
        return f"{n} directions: too few, or no spread, for a correlation"
    ci = ("" if report.ci is None
          else f" [{report.ci[0]:.2f}, {report.ci[1]:.2f}]")
    return f"{n} directions: r = {report.correlation:.2f}{ci}"


def correlation_text(report: CalibrationReport) -> str:
    """One line for the CLI: r with its interval, or why there is none."""
    label = _correlation_label(report)
    if report.correlation is None or math.isnan(report.correlation):
        return label
    return f"{label} (95% bootstrap over directions, {report.bootstrap} draws, seed {report.seed})"
