"""Exemplar activations and the choice of references and queries, on a network with planted
directions: channel 0 of layer `colour` is the red of the image, channel 1 its green."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from service.featurevis import objectives
from service.featurevis.exemplar_selection import (
    query_gap,
    query_start,
    required_depth,
    select,
)
from service.featurevis.exemplars import ExemplarScorer, Extremes, images01
from service.featurevis.zoo import LoadedModel, ModelError


class ColourTrunk(nn.Module):
    """`colour`: R, G, B and R − G per pixel; `mix`: a seeded random convolution on top."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = nn.Conv2d(3, 4, 1, bias=False)
        with torch.no_grad():
            self.colour.weight.copy_(
                torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0]], dtype=torch.float32)
                .view(4, 3, 1, 1)
            )
        torch.manual_seed(0)
        self.mix = nn.Conv2d(4, 6, 3, padding=1)
        self.forwards = 0

    def layer_names(self) -> tuple[str, ...]:
        return ("colour", "mix")

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        return images

    def features(self, x: torch.Tensor, last: str):  # type: ignore[no-untyped-def]
        self.forwards += 1
        x = self.colour(x)
        yield "colour", x
        if last != "colour":
            yield "mix", torch.relu(self.mix(x))


N = 60
RED = np.array([1, 0, 0, 0], np.float32)
GREEN = np.array([0, 1, 0, 0], np.float32)


@pytest.fixture
def model() -> LoadedModel:
    return LoadedModel("colour", ColourTrunk())  # type: ignore[arg-type]


@pytest.fixture
def photos() -> tuple[np.ndarray, list[str], np.ndarray]:
    """N noisy flat-colour images; three crops of each 'photo' share a source and a colour."""
    rng = np.random.default_rng(1)
    base = rng.random((N // 3, 3))
    colours = np.repeat(base, 3, axis=0) + rng.normal(0, 0.02, (N, 3))
    pixels = np.clip(colours[:, None, None, :] + rng.normal(0, 0.05, (N, 12, 12, 3)), 0, 1)
    pixels = np.rint(pixels * 255).astype(np.uint8)
    sources = [f"photo{i // 3}" for i in range(N)]
    return pixels, sources, pixels.reshape(N, -1, 3).mean(1) / 255.0


def _score(model: LoadedModel, pixels: np.ndarray, directions: dict[str, np.ndarray],
           depth: int, batch: int = 16, keep_all: bool = False) -> dict[str, Extremes]:
    scorer = ExemplarScorer(model, directions, depth=depth, keep_all=keep_all)
    for start in range(0, len(pixels), batch):
        scorer.update(images01(pixels[start : start + batch]))
    return scorer.results()


def test_red_direction_ranks_red_images_on_top(model: LoadedModel, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, mean_rgb = photos
    result = _score(model, pixels, {"colour": np.stack([RED, GREEN])}, depth=10)["colour"]
    red_order = np.argsort(-mean_rgb[:, 0], kind="stable")
    green_order = np.argsort(mean_rgb[:, 1], kind="stable")
    assert result.top_index[0].tolist() == red_order[:10].tolist()
    assert result.bottom_index[1].tolist() == green_order[:10].tolist()
    np.testing.assert_allclose(result.top_values[0], mean_rgb[red_order[:10], 0], atol=1e-5)
    assert (np.diff(result.top_values[0]) <= 0).all()
    assert (np.diff(result.bottom_values[1]) >= 0).all()


def test_activation_is_the_render_objective_and_moments_cover_every_image(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    vectors = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    result = _score(model, pixels, {"mix": vectors}, depth=4, batch=7, keep_all=True)["mix"]
    with torch.no_grad():
        acts = model.activations(images01(pixels), ["mix"])["mix"]
        expected = np.stack([
            objectives.evaluate("dot", acts, torch.from_numpy(v).expand(N, -1)).numpy()
            for v in vectors
        ], axis=1)
    assert result.full is not None and result.full_index is not None
    assert result.full_index.tolist() == list(range(N))
    np.testing.assert_allclose(result.full, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.mean, expected.mean(0), rtol=1e-5)
    np.testing.assert_allclose(result.sd, expected.std(0, ddof=1), rtol=1e-4)


def test_one_forward_per_batch_whatever_the_number_of_directions(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    trunk = model.trunk
    for d in (1, 64):
        trunk.forwards = 0  # type: ignore[attr-defined]
        vectors = np.random.default_rng(d).standard_normal((d, 6))
        _score(model, pixels, {"mix": vectors, "colour": np.eye(4)}, depth=3, batch=20)
        assert trunk.forwards == 3  # type: ignore[attr-defined]


def test_memory_is_bounded_unless_the_full_matrix_is_asked_for(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    big = np.concatenate([pixels] * 5)  # 300 images
    scorer = ExemplarScorer(model, {"mix": np.ones((3, 6))}, depth=4)
    for start in range(0, len(big), 25):
        scorer.update(images01(big[start : start + 25]))
        held = [v.numel() if isinstance(v, torch.Tensor) else len(v)
                for state in scorer.layers.values() for v in vars(state).values()
                if isinstance(v, torch.Tensor | list)]
        assert held and max(held) <= 3 * 6  # the vectors (3×6) are the largest thing held
    result = scorer.results()["mix"]
    assert result.count == 300 and result.top_values.shape == (3, 4) and result.full is None


def test_shards_merge_to_the_same_extremes(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    vectors = {"mix": np.random.default_rng(3).standard_normal((4, 6))}
    whole = _score(model, pixels, vectors, depth=8)["mix"]
    parts = []
    for lo, hi in ((0, 25), (25, N)):
        scorer = ExemplarScorer(model, vectors, depth=8)
        scorer.update(images01(pixels[lo:hi]), np.arange(lo, hi))
        parts.append(scorer.results()["mix"])
    merged = parts[0].merge(parts[1])
    assert merged.count == N
    np.testing.assert_array_equal(merged.top_index, whole.top_index)
    np.testing.assert_array_equal(merged.bottom_index, whole.bottom_index)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(merged.sd, whole.sd, rtol=1e-5)


def test_scorer_refuses_bad_input(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    with pytest.raises(ModelError, match="unknown layer"):
        ExemplarScorer(model, {"nope": np.ones((1, 4))}, depth=3)
    with pytest.raises(ValueError, match="depth"):
        ExemplarScorer(model, {"colour": np.ones((1, 4))}, depth=0)
    with pytest.raises(ValueError, match="finite"):
        ExemplarScorer(model, {"colour": np.full((1, 4), np.nan)}, depth=3)
    scorer = ExemplarScorer(model, {"colour": np.ones((2, 5))}, depth=3)
    with pytest.raises(ModelError, match="4 channels; the directions have 5"):
        scorer.update(images01(pixels[:4]))
    with pytest.raises(ValueError, match="uint8"):
        images01(pixels.astype(np.float32))


def test_queries_never_share_a_photo_with_the_references(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, sources, mean_rgb = photos
    extremes = _score(model, pixels, {"colour": np.stack([RED, GREEN])}, depth=N)["colour"]
    for direction in (0, 1):
        sel = select(extremes, direction, sources, references=4, tasks=5)
        shown = {sources[p.index] for p in sel.max_references + sel.min_references}
        assert len(shown) < 8  # crops of one photo do crowd the extremes
        queries = sel.max_queries + sel.min_queries
        assert sel.tasks == 5 and not {sources[p.index] for p in queries} & shown
        assert [p.rank for p in sel.max_references] == [0, 1, 2, 3]
        assert all(q.rank >= 4 for q in queries)
        assert [p.rank for p in sel.max_queries] == sorted(p.rank for p in sel.max_queries)
        assert min(p.activation for p in sel.max_queries) > max(
            p.activation for p in sel.min_queries)
        assert query_gap(sel, 0, float(extremes.sd[direction])) > 0
    red = select(extremes, 0, sources, references=4, tasks=5)
    assert red.max_references[0].index == int(np.argmax(mean_rgb[:, 0]))
    naive = [sources[i] for i in extremes.top_index[0][4:9]]
    assert {sources[p.index] for p in red.max_references} & set(naive)  # what the rule prevents


def test_bounded_depth_selects_as_the_whole_set_does(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, sources, _ = photos
    directions = {"mix": np.random.default_rng(4).standard_normal((6, 6))}
    depth = required_depth(N, references=3, tasks=2)
    assert depth < N
    bounded = _score(model, pixels, directions, depth=depth)["mix"]
    whole = _score(model, pixels, directions, depth=N)["mix"]
    for d in range(6):
        a = select(bounded, d, sources, references=3, tasks=2)
        b = select(whole, d, sources, references=3, tasks=2)
        assert (a.max_references, a.min_references) == (b.max_references, b.min_references)
        assert (a.max_queries, a.min_queries) == (b.max_queries, b.min_queries)


def test_shortfall_and_percentile(model, photos) -> None:  # type: ignore[no-untyped-def]
    pixels, _, _ = photos
    extremes = _score(model, pixels, {"colour": np.stack([RED])}, depth=N)["colour"]
    reddest = extremes.top_index[0]  # depth N: every image, reddest first
    few = ["b"] * N  # the 28 reddest are crops of one photo, the 28 least red of another
    for rank, index in enumerate(reddest):
        few[index] = "a" if rank < 28 else "c" if rank >= N - 28 else "b"
    sel = select(extremes, 0, few, references=4, tasks=3)
    assert sel.tasks == sel.tasks_available == 2
    assert {few[p.index] for p in sel.max_queries + sel.min_queries} == {"b"}
    assert sel.shortfall == (f"only {sel.tasks_available} of 3 tasks have queries from photos "
                             "other than the references'")
    unique = [str(i) for i in range(N)]
    assert select(extremes, 0, unique, references=4, tasks=3).shortfall is None
    assert query_start(N, 4, 90) == 6 and query_start(N, 9, 99) == 9
    hard = select(extremes, 0, unique, references=4, tasks=3, query_percentile=85)
    assert [p.rank for p in hard.max_queries] == [9, 10, 11]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"references": 31}, "31 references per side need at least 62 images; the set has 60"),
        ({"references": 0}, "references must be at least 1"),
        ({"tasks": 0}, "tasks must be at least 1"),
        ({"query_percentile": 50}, "between 50 and 100"),
        ({"query_percentile": 100}, "between 50 and 100"),
        ({"query_percentile": 101.5}, "between 50 and 100"),
    ],
)
def test_selection_refuses_bad_settings(model, photos, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    pixels, sources, _ = photos
    extremes = _score(model, pixels, {"colour": np.stack([RED])}, depth=N)["colour"]
    with pytest.raises(ValueError, match=message):
        select(extremes, 0, sources, **kwargs)
    with pytest.raises(ValueError, match="one source per scored image"):
        select(extremes, 0, sources[:-1])


def test_benchmark_runs_tiny_and_ends_with_its_result_line() -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench" / "exemplars.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--model", "tiny", "--layer", "conv3", "--images", "16",
         "--batch", "8", "--rounds", "1", "--directions", "2", "4", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    rows = [line.rsplit(None, 2) for line in lines[2:5]]
    assert [row[0].strip() for row in rows] == ["forward", "exemplars D=2", "exemplars D=4"]
    assert float(rows[0][2]) == 1.0
    ratios = [float(row[2]) for row in rows[1:]]
    assert re.fullmatch(r"RESULT exemplar_ratio=\d+\.\d\d", lines[-1])
    assert lines[-1] == f"RESULT exemplar_ratio={min(ratios):.2f}"
