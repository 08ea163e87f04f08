"""2-AFC trials stored as folders of images, in the layout of the IMI dataset and its experiments.

    DIR/trial_N/references/max_K.png, min_K.png   (any number of references a side)
    DIR/trial_N/queries/max.png, min.png

(``DIR/trials/trial_N/…``, as the IMI task folders nest them, is found too.) Every trial and
image is checked before anything is embedded, so a bad folder is reported by its file name and
nothing is written.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from service.featurevis.embeddings import EmbeddingCache
from service.studies.machine.score import DEFAULT_ALPHA_RULE, default_alpha, deltas, p_correct

TRIAL_FOLDER = re.compile(r"trial_(\d+)")
REFERENCE_FILE = re.compile(r"(max|min)_(\d+)\.png")
NESTED = "trials"
GIVEN_ALPHA_NOTE = "α given, not fitted by fvlab"
COLUMNS = ("trial", "n_max_references", "n_min_references", "delta", "p_correct", "alpha",
           "alpha_note", "embedding")  # fmt: skip


class TrialFolderError(ValueError):
    """A trials folder that does not follow the layout, or an image that cannot be read."""


@dataclass(frozen=True)
class TrialImages:
    """One trial's image files: references of each side (in K order) and the two queries."""

    name: str
    refs_max: tuple[Path, ...]
    refs_min: tuple[Path, ...]
    query_max: Path
    query_min: Path

    def paths(self) -> tuple[Path, ...]:
        return (self.query_max, self.query_min, *self.refs_max, *self.refs_min)


def find_trials(root: Path) -> list[TrialImages]:
    """Every ``trial_N`` folder under ``root``, in N order, checked for the layout."""
    if not root.is_dir():
        raise TrialFolderError(f"trials folder not found: {root}")
    folders = _trial_folders(root) or _trial_folders(root / NESTED)
    if not folders:
        raise TrialFolderError(f"no trial_N folders in {root}")
    return [_read_trial(folder) for folder in folders]


def _trial_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [(m, p) for p in root.iterdir() if p.is_dir() and (m := TRIAL_FOLDER.fullmatch(p.name))]
    return [p for m, p in sorted(found, key=lambda mp: int(mp[0][1]))]


def _read_trial(folder: Path) -> TrialImages:
    queries = {side: folder / "queries" / f"{side}.png" for side in ("max", "min")}
    for path in queries.values():
        if not path.is_file():
            raise TrialFolderError(f"query image missing: {path}")
    references = folder / "references"
    if not references.is_dir():
        raise TrialFolderError(f"references folder missing: {references}")
    sides: dict[str, list[tuple[int, Path]]] = {"max": [], "min": []}
    for path in references.iterdir():
        if path.is_file() and (m := REFERENCE_FILE.fullmatch(path.name)):
            sides[m[1]].append((int(m[2]), path))
    for side, found in sides.items():
        if not found:
            raise TrialFolderError(f"no {side}_K.png references in {references}")
    return TrialImages(
        folder.name,
        tuple(p for _, p in sorted(sides["max"])),
        tuple(p for _, p in sorted(sides["min"])),
        queries["max"],
        queries["min"],
    )


def read_images(trials: list[TrialImages]) -> dict[Path, bytes]:
    """Every image's bytes, each one decoded once here so an unreadable file stops the run."""
    images: dict[Path, bytes] = {}
    for trial in trials:
        for path in trial.paths():
            if path in images:
                continue
            data = path.read_bytes()
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
                raise TrialFolderError(f"not a readable image: {path} ({exc})") from exc
            images[path] = data
    return images


def score_trials(
    trials: list[TrialImages],
    images: dict[Path, bytes],
    cache: EmbeddingCache,
    alpha: float | None = None,
) -> list[dict[str, object]]:
    """One row per trial (``COLUMNS``): Δ, P(correct) and the α used, with how it was set.

    ``images`` is ``read_images(trials)``; each distinct image is embedded once.
    """
    paths = list(images)
    row = {path: i for i, path in enumerate(paths)}
    vectors = cache.embed([images[p] for p in paths], labels=[str(p) for p in paths])
    delta = deltas(
        vectors,
        [row[t.query_max] for t in trials],
        [row[t.query_min] for t in trials],
        [[row[p] for p in t.refs_max] for t in trials],
        [[row[p] for p in t.refs_min] for t in trials],
    )
    used = default_alpha(delta) if alpha is None else alpha
    note = DEFAULT_ALPHA_RULE if alpha is None else GIVEN_ALPHA_NOTE
    p = p_correct(delta, used)
    return [
        {
            "trial": t.name,
            "n_max_references": len(t.refs_max),
            "n_min_references": len(t.refs_min),
            "delta": float(d),
            "p_correct": float(pc),
            "alpha": used,
            "alpha_note": note,
            "embedding": cache.embedder.name,
        }
        for t, d, pc in zip(trials, delta, p, strict=True)
    ]

