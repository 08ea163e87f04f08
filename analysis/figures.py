"""The report's figures (matplotlib, Agg backend): each function writes one PNG and returns it.

Intervals drawn are the bootstrap intervals of results.json, never binomial ones, so the picture
and the numbers agree.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.tasks import AFC  # noqa: E402
from analysis.verdict import level_label  # noqa: E402
from service.studies.ratings_file import STIMULUS_CONDITIONS, Condition  # noqa: E402

if TYPE_CHECKING:
    from analysis.results import AnalysisResult, Rate

CONDITION_COLORS = {Condition.BASIS.value: "#1f77b4", Condition.RANDOM.value: "#ff7f0e",
                    Condition.CATCH_POSITIVE.value: "#2ca02c",
                    Condition.CATCH_NEGATIVE.value: "#7f7f7f"}


REFERENCE_LABELS = {"synthetic": "synthetic\nreferences", "natural": "natural\nreferences",
                    "none": "no\nreferences"}


def _share_label(results: AnalysisResult) -> str:
    return ("accuracy, synthetic references" if results.task == AFC
            else "share rated interpretable")


def _chance(ax: plt.Axes, chance: float | None) -> None:
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:g})")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _errorbar(ax: plt.Axes, x: float, entry: Rate, color: str) -> None:
    if entry.p is None:
        return
    lo, hi = entry.ci
    yerr = None if lo is None or hi is None else [[entry.p - lo], [hi - entry.p]]
    ax.errorbar([x], [entry.p], yerr=yerr, fmt="o", color=color, capsize=5, markersize=8)


def rates(results: AnalysisResult, path: Path) -> Path:
    """Yes-rate per condition with its bootstrap intervals (at the analysis' level)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(CONDITION_COLORS)
    for i, name in enumerate(names):
        _errorbar(ax, i, results.rates[name], CONDITION_COLORS[name])
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names])
    ax.set_ylim(0, 1)
    ax.set_ylabel(_share_label(results))
    _chance(ax, results.chance)
    level = level_label(results.settings["level"])
    ax.set_title(f"Rate per condition ({level} stimulus-bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def per_layer(results: AnalysisResult, path: Path) -> Path:
    """Basis and random rates per layer."""
    layers = results.per_layer
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(layers) + 2), 4))
    for i, entry in enumerate(layers):
        for offset, name in zip((-0.12, 0.12), STIMULUS_CONDITIONS, strict=True):
            _errorbar(ax, i + offset, entry.rates[name], CONDITION_COLORS[name])
    ax.set_xticks(range(len(layers)), [e.layer for e in layers])
    ax.set_ylim(0, 1)
    ax.set_ylabel(_share_label(results))
    _chance(ax, results.chance)
    ax.set_title("Per layer: basis (blue) and random (orange)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def stimulus_distribution(items: pd.DataFrame, path: Path, task: str = "rating") -> Path:
    """Histogram of per-stimulus yes-rates (2-AFC: per-direction accuracy), per condition."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    for name in STIMULUS_CONDITIONS:
        rows = items[items["condition"] == name]
        if len(rows):
            ax.hist(rows["yes"] / rows["n"], bins=bins.tolist(), alpha=0.5, label=name,
                    color=CONDITION_COLORS[name], density=True)
    afc = task == AFC
    ax.set_xlabel("per-direction accuracy, synthetic references" if afc
                  else "per-stimulus share of yes")
    ax.set_ylabel("density")
    ax.set_title("How predictable is each direction?" if afc
                 else "How interpretable is each stimulus?")
    ax.legend()
    return _save(fig, path)


def accuracy_by_reference(results: AnalysisResult, path: Path) -> Path:
    """2-AFC accuracy per condition × reference kind with bootstrap intervals; chance dashed."""
    fig, ax = plt.subplots(figsize=(6, 4))
    kinds = list(results.per_reference)
    for i, kind in enumerate(kinds):
        for offset, name in zip((-0.12, 0.12), STIMULUS_CONDITIONS, strict=True):
            _errorbar(ax, i + offset, results.per_reference[kind][name], CONDITION_COLORS[name])
    _chance(ax, results.chance)
    ax.set_xticks(range(len(kinds)), [REFERENCE_LABELS.get(kind, kind) for kind in kinds])
    ax.set_xlim(-0.6, max(len(kinds), 1) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (share of right choices)")
    level = level_label(results.settings["level"])
    ax.set_title(f"Accuracy: basis (blue), random (orange); {level} CI")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def agreement(results: AnalysisResult, path: Path) -> Path:
    """Krippendorff's alpha and pairwise agreement per condition."""
    by = results.agreement.by_condition
    names = [n for n in CONDITION_COLORS if n in by]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(names))
    alphas = [by[n].krippendorff_alpha or 0.0 for n in names]
    pairs = [by[n].pair_agreement or 0.0 for n in names]
    ax.bar(x - 0.2, alphas, width=0.4, label="Krippendorff's alpha", color="#555555")
    ax.bar(x + 0.2, pairs, width=0.4, label="share of pairs agreeing", color="#bbbbbb")
    ax.set_xticks(x, [n.replace("_", "\n") for n in names])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Annotator agreement")
    ax.legend()
    return _save(fig, path)


def sheet_rows(items: pd.DataFrame, per_row: int = 6) -> list[tuple[str, pd.DataFrame]]:
    """The contact sheet's rows: most and least interpretable stimuli of basis and random.

    Each stimulus appears at most once: a condition with fewer than 2 × `per_row` stimuli
    splits them between its two rows (6 stimuli: the 3 most above the 3 least), and one with a
    single stimulus has only its "most" row.
    """
    rows = []
    for name in STIMULUS_CONDITIONS:
        ranked = items[items["condition"] == name].assign(rate=lambda d: d["yes"] / d["n"])
        ranked = ranked.sort_values("rate", ascending=False, kind="stable")
        most = min(per_row, (len(ranked) + 1) // 2)
        least = min(per_row, len(ranked) - most)
        if most:
            rows.append((f"{name}: most", ranked.head(most)))
        if least:
            rows.append((f"{name}: least", ranked.tail(least)[::-1]))
    return rows


def contact_sheet(items: pd.DataFrame, images: dict[int, bytes], path: Path,
                  per_row: int = 6, tile: int = 96) -> Path | None:
    """Most and least interpretable stimuli of each condition, with their yes-share.

    The tiles are pasted into one array and drawn as a single image (one axes instead of
    dozens keeps this fast).
    """
    from PIL import Image

    rows = sheet_rows(items, per_row)
    if not any(int(i) in images for _, chosen in rows for i in chosen["item"]):
        return None
    gap = 4
    sheet = np.full((len(rows) * (tile + gap), per_row * (tile + gap), 3), 255, dtype=np.uint8)
    fig, ax = plt.subplots(figsize=(per_row * 1.4 + 1.2, len(rows) * 1.5))
    for r, (title, chosen) in enumerate(rows):
        top = r * (tile + gap)
        ax.text(-gap, top + tile / 2, title, ha="right", va="center", fontsize=8)
        for c, (_, entry) in enumerate(chosen.iterrows()):
            left = c * (tile + gap)
            png = images.get(int(entry["item"]))
            if png is not None:
                picture = Image.open(io.BytesIO(png)).convert("RGB").resize((tile, tile))
                sheet[top:top + tile, left:left + tile] = np.asarray(picture)
            ax.text(left + tile / 2, top + tile + gap / 2, f"{entry['rate']:.0%}", ha="center",
                    va="center", fontsize=7, backgroundcolor="white")
    ax.imshow(sheet)
    ax.set_axis_off()
    ax.set_title("Most and least interpretable stimuli (share of yes)")
    return _save(fig, path)
