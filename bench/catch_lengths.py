"""Catch items' PNG byte lengths against the stimuli's, on the demo job's real renders.

Renders the demo job's directions (`fvlab demo`'s EfficientNet-Lite0 job: its layers, basis and
random counts and steps, at 128 px) or reads renders saved before (`--renders DIR`), then prints
the byte range of the stimuli's PNGs, of each catch picture as drawn (before fitting), and of the
catch items `ensure_catch_items` makes for these stimuli (after), in a throwaway SQLite store.
It also compares 2-AFC queries pictures: two built-in photos (a stimulus trial) against two
renders (a catch trial with synthetic references), compressed as before and as served now.

Not a test: it prints a table, and its last line is ``RESULT catch_inside=N/M …``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotate.compose import decode, queries_png  # noqa: E402
from service.store.db import make_engine, unit_of_work  # noqa: E402
from service.store.images import encode_png  # noqa: E402
from service.store.models import Base  # noqa: E402
from service.studies.catch import (  # noqa: E402
    NEGATIVE_SOURCES,
    POSITIVE_SOURCES,
    ensure_catch_items,
    negative_pixels,
    positive_pixels,
)

SIDE = 128


def demo_renders(steps: int | None) -> list[np.ndarray]:
    """The demo job's max renders, one per direction, as a worker would make them."""
    from service.featurevis import RenderRequest, RenderSettings, load_model, render
    from service.featurevis.directions import sample_directions
    from service.generation.jobs import demo_request

    job = demo_request()
    model = load_model(job.model)
    requests = []
    for layer in job.layers:
        for kind, count in (("basis", job.n_basis), ("random", job.n_random)):
            for vector in sample_directions(model.channels(layer), layer, kind, count, 0).vectors:
                requests.append(RenderRequest(layer, vector, seed=len(requests)))
    settings = RenderSettings(image_size=SIDE, steps=steps or job.steps)
    results = render(model, requests, settings, seed=job.seed)
    return [decode(encode_png(result.image).png) for result in results]  # as stored: uint8


def span(lengths: list[int]) -> str:
    return f"{min(lengths):>7,}–{max(lengths):<7,} (n={len(lengths)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, help="read *.png renders from here")
    parser.add_argument("--save", type=Path, help="save the renders here")
    parser.add_argument("--steps", type=int, help="steps per render (default: the demo job's)")
    args = parser.parse_args()
    if args.renders:
        renders = [np.asarray(PILImage.open(path).convert("RGB"))
                   for path in sorted(args.renders.glob("*.png"))]
    else:
        renders = demo_renders(args.steps)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for index, pixels in enumerate(renders):
            (args.save / f"{index:02d}.png").write_bytes(encode_png(pixels).png)
    stimuli = [len(encode_png(pixels).png) for pixels in renders]
    before = {name: len(encode_png(positive_pixels(name, SIDE)).png) for name in POSITIVE_SOURCES}
    before |= {name: len(encode_png(negative_pixels(name, SIDE)).png)
               for name in NEGATIVE_SOURCES}
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        Base.metadata.create_all(engine)
        with unit_of_work(engine) as db:
            after = {item.source.split(":", 1)[1]: len(item.image.png)
                     for item in ensure_catch_items(db, SIDE, stimuli)}
        engine.dispose()
    low, high = min(stimuli), max(stimuli)
    print(f"stimuli ({SIDE} px renders)      {span(stimuli)}")
    for label, lengths in (("before", before), ("after", after)):
        for kind, names in (("positive", POSITIVE_SOURCES), ("negative", NEGATIVE_SOURCES)):
            found = [lengths[name] for name in names]
            inside = sum(low <= n <= high for n in found)
            print(f"catch {kind:8s} {label:6s}      {span(found)} inside: {inside}/{len(found)}")

    from service.store.image_sets import decode_member
    from service.store.photos import builtin_photos, crops, to_member

    members = [decode_member(to_member(crop)) for _, photo in builtin_photos()
               for crop in crops(photo)]
    rng = random.Random(0)

    def compressed(first: np.ndarray, second: np.ndarray) -> int:
        """The same picture with the store's usual compression, as it was served before."""
        return len(encode_png(decode(queries_png(first, second))).png)

    for label, measure in (("compressed (before)", compressed),
                           ("as served (after)", lambda a, b: len(queries_png(a, b)))):
        photo_pairs = [measure(*rng.sample(members, 2)) for _ in range(200)]
        render_pairs = [measure(*rng.sample(renders, 2)) for _ in range(60)]
        print(f"2afc queries {label:20s} photos {span(photo_pairs)} renders {span(render_pairs)}")
    inside = sum(low <= n <= high for n in after.values())
    print(f"RESULT catch_inside={inside}/{len(after)} stimuli={low}-{high} "
          f"catch_after={min(after.values())}-{max(after.values())}")


if __name__ == "__main__":
    main()
