"""Exemplar pass benchmark: scoring images on every direction against a plain forward pass.

One process, one model and layer (EfficientNet-Lite0 ``blocks.10`` by default), the same images
(224 px members made from the built-in photos, decoded once beforehand) and the same batches:

* forward: a batched no-grad forward pass of the network truncated at the layer;
* exemplars: ``ExemplarScorer.update`` on the same batches with D directions of that layer
  (8 and 256 by default), keeping the depth a 50,000-image set needs for the default selection.

The passes take turns batch by batch (the first of each batch rotating), so a change in machine
load hits all of them alike; each one's median images/s over several rounds is reported, and a
ratio is exemplar images/s over forward images/s. The last line is
``RESULT exemplar_ratio=<the lower ratio>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.featurevis.exemplar_selection import required_depth  # noqa: E402
from service.featurevis.exemplars import ExemplarScorer, images01  # noqa: E402
from service.featurevis.zoo import load_model  # noqa: E402
from service.store.photos import builtin_photos, crops, decode_member, to_member  # noqa: E402

SET_SIZE = 50_000  # the depth kept is what a set this large needs
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def member_pixels(count: int) -> np.ndarray:
    """`count` 224 px members of the built-in photos (cycled when more are asked for)."""
    members: list[np.ndarray] = []
    for _source, photo in builtin_photos():
        for crop in crops(photo):
            members.append(decode_member(to_member(crop)))
            if len(members) == count:
                return np.stack(members)
    return np.stack([members[i % len(members)] for i in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="blocks.10")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--directions", type=int, nargs="+", default=[8, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="cpu: this process's CPU time, steadier on a shared machine")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model).to(args.device)
    channels = model.channels(args.layer)
    pixels = member_pixels(args.images)
    batches = [images01(pixels[i : i + args.batch], args.device)
               for i in range(0, len(pixels), args.batch)]
    depth = required_depth(SET_SIZE)
    rng = np.random.default_rng(0)
    vectors = {d: rng.standard_normal((d, channels)).astype(np.float32) for d in args.directions}

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def forward(batch: torch.Tensor) -> None:
        with torch.no_grad():
            model.activations(batch, [args.layer])

    counts = {f"exemplars D={d}": d for d in args.directions}
    names = ["forward", *counts]
    seconds = {name: [0.0] * args.rounds for name in names}
    for round_ in range(-1, args.rounds):  # round -1 warms up allocator, kernels, first calls
        scorers = {name: ExemplarScorer(model, {args.layer: vectors[d]}, depth=depth)
                   for name, d in counts.items()}
        for i, batch in enumerate(batches):
            for name in names[i % len(names):] + names[: i % len(names)]:  # rotate who is first
                sync()
                start = clock()
                if name == "forward":
                    forward(batch)
                else:
                    scorers[name].update(batch)
                sync()
                if round_ >= 0:
                    seconds[name][round_] += clock() - start
        for name, scorer in scorers.items():
            start = clock()
            scorer.results()
            if round_ >= 0:
                seconds[name][round_] += clock() - start
    rates = {name: [args.images / t for t in values] for name, values in seconds.items()}

    print(f"{args.model} {args.layer} ({channels} channels) on {args.device}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock; {args.images} images of "
          f"224 px in batches of {args.batch}; depth kept {depth} per end; "
          f"median of {args.rounds} rounds")
    base = statistics.median(rates["forward"])
    print(f"  {'pass':<18}{'images/s':>10}{'ratio':>8}")
    ratios = []
    for name, values in rates.items():
        rate = statistics.median(values)
        ratio = rate / base
        if name != "forward":
            ratios.append(ratio)
        print(f"  {name:<18}{rate:>10.1f}{ratio:>8.3f}")
    print(f"RESULT exemplar_ratio={min(ratios):.2f}")


if __name__ == "__main__":
    main()
