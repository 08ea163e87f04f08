"""Scoring 2-AFC trials stored as IMI-layout folders: the library and `fvlab machine score`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from service.cli import fvlab
from service.featurevis.embeddings import Embedder, EmbeddingCache
from service.studies.machine.score import DEFAULT_ALPHA_RULE
from service.studies.machine.trials import (
    COLUMNS,
    GIVEN_ALPHA_NOTE,
    TrialFolderError,
    find_trials,
    read_images,
    score_trials,
)

RED, BLUE = (230, 20, 20), (20, 20, 230)


class MeanColour(Embedder):
    """The mean colour of an image (plus a constant, so no vector is zero): red and blue differ."""

    name = "mean_colour"
    input_size = 8
    device = torch.device("cpu")

    def _vectors(self, images01: torch.Tensor) -> torch.Tensor:
        return images01.mean(dim=(2, 3)) + 0.05


def write_png(path: Path, rgb: tuple[int, int, int], seed: int, size: int = 12) -> None:
    noise = np.random.default_rng(seed).integers(-15, 16, (size, size, 3))
    pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_trial(root: Path, name: str, n_max: int, n_min: int, swap_queries: bool = False) -> None:
    """Max references red, min references blue; the max query red unless swapped."""
    for k in range(n_max):
        write_png(root / name / "references" / f"max_{k}.png", RED, seed=k)
    for k in range(n_min):
        write_png(root / name / "references" / f"min_{k}.png", BLUE, seed=100 + k)
    q_max, q_min = (BLUE, RED) if swap_queries else (RED, BLUE)
    write_png(root / name / "queries" / "max.png", q_max, seed=200)
    write_png(root / name / "queries" / "min.png", q_min, seed=201)


@pytest.fixture
def trials_dir(tmp_path: Path) -> Path:
    root = tmp_path / "imi"
    make_trial(root, "trial_10", 2, 2)
    make_trial(root, "trial_2", 3, 2)
    make_trial(root, "trial_3", 2, 4, swap_queries=True)
    return root


def test_trials_are_scored_in_number_order_with_ragged_references(trials_dir: Path) -> None:
    trials = find_trials(trials_dir)
    assert [t.name for t in trials] == ["trial_2", "trial_3", "trial_10"]
    assert [t.refs_max[-1].name for t in trials] == ["max_2.png", "max_1.png", "max_1.png"]
    rows = score_trials(trials, read_images(trials), EmbeddingCache(MeanColour()))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    assert list(frame["trial"]) == ["trial_2", "trial_3", "trial_10"]
    assert list(frame["n_max_references"]) == [3, 2, 2]
    assert list(frame["n_min_references"]) == [2, 4, 2]
    assert (frame.loc[[0, 2], "delta"] > 0.5).all() and frame.loc[1, "delta"] < -0.5
    alpha = 1 / np.median(np.abs(frame["delta"]))
    np.testing.assert_allclose(frame["alpha"], alpha)
    np.testing.assert_allclose(frame["p_correct"], 1 / (1 + np.exp(-alpha * frame["delta"])))
    assert set(frame["alpha_note"]) == {DEFAULT_ALPHA_RULE}
    assert set(frame["embedding"]) == {"mean_colour"}


def test_a_given_alpha_is_used_and_labelled(trials_dir: Path) -> None:
    trials = find_trials(trials_dir)
    rows = score_trials(trials, read_images(trials), EmbeddingCache(MeanColour()), alpha=2.5)
    assert {r["alpha"] for r in rows} == {2.5} and {r["alpha_note"] for r in rows} == {
        GIVEN_ALPHA_NOTE
    }


def test_the_imi_task_folder_nesting_is_found(tmp_path: Path) -> None:
    make_trial(tmp_path / "task" / "trials", "trial_1", 1, 1)
    assert [t.name for t in find_trials(tmp_path / "task")] == ["trial_1"]


def test_layout_errors_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TrialFolderError, match="trials folder not found"):
        find_trials(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrialFolderError, match="no trial_N folders in"):
        find_trials(tmp_path / "empty")
    make_trial(tmp_path / "a", "trial_1", 2, 2)
    os.remove(tmp_path / "a" / "trial_1" / "queries" / "min.png")
    with pytest.raises(TrialFolderError, match=r"query image missing: .*trial_1/queries/min\.png"):
        find_trials(tmp_path / "a")
    make_trial(tmp_path / "b", "trial_1", 2, 0)
    with pytest.raises(TrialFolderError, match=r"no min_K\.png references in .*trial_1"):
        find_trials(tmp_path / "b")


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    make_trial(tmp_path, "trial_1", 2, 2)
    (tmp_path / "trial_1" / "references" / "max_1.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(TrialFolderError, match=r"not a readable image: .*references/max_1\.png"):
        read_images(find_trials(tmp_path))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: root / "absent", "trials folder not found"),
        (lambda root: (os.remove(root / "trial_2" / "queries" / "max.png"), root)[1],
         "query image missing"),
        (lambda root: ((root / "trial_3" / "queries" / "min.png").write_bytes(b"GIF89a"), root)[1],
         "not a readable image"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_trials_in_one_line_and_writes_nothing(
    trials_dir: Path, tmp_path: Path, damage, message: str
) -> None:
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        fvlab, ["machine", "score", "--trials", str(damage(trials_dir)), "-o", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    assert not (tmp_path / "var" / "embeddings").exists()


@pytest.mark.slow
def test_cli_scores_trials_with_lite2_to_csv_and_parquet(trials_dir: Path, tmp_path: Path) -> None:
    csv = tmp_path / "scores.csv"
    args = ["machine", "score", "--trials", str(trials_dir), "-o", str(csv), "--batch-size", "4"]
    result = CliRunner().invoke(fvlab, args)
    assert result.exit_code == 0, result.output
    assert "scored 3 trials with efficientnet_lite2" in result.output
    assert "uncalibrated α" in result.output
    frame = pd.read_csv(csv)
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["trial"]) == ["trial_2", "trial_3", "trial_10"]
    assert frame.loc[0, "delta"] > 0 and frame.loc[1, "delta"] < 0  # trial_3's queries swapped
    cached = list((tmp_path / "var" / "embeddings" / "efficientnet_lite2").glob("*.npy"))
    assert len(cached) == len({p.read_bytes() for p in trials_dir.rglob("*.png")})

    parquet = tmp_path / "scores.parquet"
    again = CliRunner().invoke(
        fvlab, ["machine", "score", "--trials", str(trials_dir), "-o", str(parquet), "--alpha", "3"]
    )
    assert again.exit_code == 0, again.output
    scored = pd.read_parquet(parquet)
    np.testing.assert_allclose(scored["delta"], frame["delta"], atol=1e-6)
    assert set(scored["alpha"]) == {3.0} and set(scored["alpha_note"]) == {GIVEN_ALPHA_NOTE}

