"""Basis against random MIS: the machine annotator's scores of a job's directions, compared.

A direction's MIS is already a mean over its tasks, so the unit here is the direction: each
condition's MIS is the mean over its directions, and its interval comes from the stimulus
bootstrap the rating analysis uses, resampling directions within layer × condition (each
stratum its own seeded stream), so basis and random are resampled independently and the
difference takes its interval from the same draws. With several layers the overall means pool
every layer's directions (each direction counts once) and each layer is reported too.

The input is a plain DataFrame (`fvlab machine score --job` writes it), so nothing here needs
the database or torch.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import resample  # noqa: E402
from analysis.figures import CONDITION_COLORS  # noqa: E402
from analysis.results import NO_INTERVAL, Interval  # noqa: E402
from analysis.verdict import level_label  # noqa: E402
from service.studies.ratings_file import STIMULUS_CONDITIONS, Condition  # noqa: E402

NEEDED_COLUMNS = ("layer", "condition", "mis")
ALL_LAYERS = "all layers"
CHANCE = 0.5
TITLE_WIDTH = 70  # characters a title line holds before it wraps
JITTER = 0.12  # half-width of the horizontal spread of a condition's dots


@dataclass(frozen=True)
class MeanMis:
    """A condition's mean MIS over its directions, its bootstrap interval and how many."""

    mean: float | None
    ci: Interval
    n: int


@dataclass(frozen=True)
class MisComparison:
    """Basis and random MIS and basis − random, over all layers or one (`layer`)."""

    layer: str
    basis: MeanMis
    random: MeanMis
    difference: float | None
    ci: Interval


def _check(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in NEEDED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the MIS table lacks column(s) {', '.join(missing)}")
    rows = frame[frame["condition"].isin([c.value for c in STIMULUS_CONDITIONS])]
    if rows.empty:
        raise ValueError("the MIS table has no basis or random directions")
    mis = rows["mis"].to_numpy(dtype=np.float64)
    if not np.all((mis >= 0) & (mis <= 1)):
        raise ValueError("MIS values must lie within [0, 1]")
    return rows.assign(layer=rows["layer"].astype(str))


Draws = tuple[np.ndarray, np.ndarray]  # point sums (mis, n) and n_boot × 2 resampled sums


def _mean(draws: Draws | None, level: float) -> MeanMis:
    if draws is None:
        return MeanMis(None, NO_INTERVAL, 0)
    point, boot = draws
    n = int(point[1])
    ci = resample.percentile_interval(boot[:, 0] / boot[:, 1], level) if n >= 2 else NO_INTERVAL
    return MeanMis(float(point[0] / point[1]), ci, n)


def _compare(layer: str, draws: dict[str, Draws], level: float) -> MisComparison:
    basis, random = (draws.get(c.value) for c in STIMULUS_CONDITIONS)
    b, r = _mean(basis, level), _mean(random, level)
    if basis is None or random is None or b.mean is None or r.mean is None:
        return MisComparison(layer, b, r, None, NO_INTERVAL)
    diff = basis[1][:, 0] / basis[1][:, 1] - random[1][:, 0] / random[1][:, 1]
    ci = resample.percentile_interval(diff, level) if min(b.n, r.n) >= 2 else NO_INTERVAL
    return MisComparison(layer, b, r, b.mean - r.mean, ci)


def compare_mis(frame: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                level: float = 0.95) -> list[MisComparison]:
    """All layers first, then each layer when there are several.

    Args:
        frame: one row per direction with `layer`, `condition` (basis | random) and `mis`.
        n_boot: bootstrap resamples; seed: every draw derives from it.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    rows = _check(frame)
    keys = sorted({(str(layer), str(condition))
                   for layer, condition in zip(rows["layer"], rows["condition"], strict=True)})
    streams = np.random.SeedSequence(seed).spawn(len(keys))
    strata: dict[tuple[str, str], Draws] = {}
    for (layer, condition), stream in zip(keys, streams, strict=True):
        chosen = (rows["layer"] == layer) & (rows["condition"] == condition)
        mis = rows.loc[chosen, "mis"].to_numpy(dtype=np.float64)
        sums = np.column_stack([mis, np.ones_like(mis)])
        boot = resample.bootstrap_sums(sums, n_boot, np.random.default_rng(stream))
        strata[(layer, condition)] = (sums.sum(axis=0), boot)
    layers = sorted({layer for layer, _ in strata})
    pooled: dict[str, Draws] = {}
    for condition in sorted({c for _, c in strata}):
        parts = [v for (_, c), v in strata.items() if c == condition]
        pooled[condition] = (np.sum([p for p, _ in parts], axis=0),
                             np.sum([b for _, b in parts], axis=0))
    found = [_compare(ALL_LAYERS, pooled, level)]
    if len(layers) > 1:
        found += [_compare(layer, {c: v for (lay, c), v in strata.items() if lay == layer}, level)
                  for layer in layers]
    return found


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _interval(ci: Interval, signed: bool = False) -> str:
    lo, hi = ci
    if lo is None or hi is None:
        return "no interval"
    return f"{_pct(lo, signed)} to {_pct(hi, signed)}"


def describe(comparisons: list[MisComparison], level: float = 0.95) -> list[str]:
    """One line per comparison: each condition's MIS and the difference, with intervals."""
    label = f"{level_label(level)} CI"
    lines = []
    for c in comparisons:
        parts = [f"{name} MIS {_pct(m.mean)} ({label} {_interval(m.ci)}, {m.n} directions)"
                 for name, m in ((Condition.BASIS.value, c.basis),
                                 (Condition.RANDOM.value, c.random))]
        lines.append(f"{c.layer}: {'; '.join(parts)}; basis − random "
                     f"{_pct(c.difference, True)} ({label} {_interval(c.ci, True)})")
    return lines


def mis_figure(frame: pd.DataFrame, comparisons: list[MisComparison], path: Path,
               title: str = "") -> Path:
    """Each direction's MIS by layer and condition (dots), with the mean and its interval."""
    rows = _check(frame)
    shown = [c for c in comparisons if c.layer != ALL_LAYERS] or comparisons
    layers = sorted(rows["layer"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 2.4 * len(shown)), 4.6))
    rng = np.random.default_rng(0)  # the jitter only spreads dots; it is the same every time
    ticks, labels = [], []
    for g, comparison in enumerate(shown):
        for offset, condition, summary in ((-0.25, Condition.BASIS.value, comparison.basis),
                                           (0.25, Condition.RANDOM.value, comparison.random)):
            x = g + offset
            chosen = rows["condition"] == condition
            if comparison.layer != ALL_LAYERS:
                chosen &= rows["layer"] == comparison.layer
            mis = rows.loc[chosen, "mis"].to_numpy(dtype=np.float64)
            color = CONDITION_COLORS[condition]
            ax.scatter(x + rng.uniform(-JITTER, JITTER, mis.size), mis, s=14, alpha=0.5,
                       color=color, label=condition if g == 0 else None)
            if summary.mean is not None:
                lo, hi = summary.ci
                yerr = None if lo is None or hi is None else [[summary.mean - lo],
                                                              [hi - summary.mean]]
                ax.errorbar([x], [summary.mean], yerr=yerr, fmt="D", color="black",
                            capsize=6, markersize=6, zorder=3)
        ticks.append(g)
        labels.append(layers[0] if len(layers) == 1 else comparison.layer)
    ax.axhline(CHANCE, color="black", linestyle="--", linewidth=1, label=f"chance ({CHANCE:g})")
    ax.set_xticks(ticks, labels)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("MIS (mean P(correct) over a direction's tasks)")
    ax.set_title(textwrap.fill(title, TITLE_WIDTH), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
