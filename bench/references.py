"""Reference-render benchmark: what the diversity term costs a batch of one direction's images.

A direction's K references of one sign are one batch and one diversity group. This times, in one
process on EfficientNet-Lite0 ``blocks.10`` (128 px), the optimization steps of that batch with
the diversity term (weight W) and without it (W = 0), interleaved round by round so that load
from other processes hits both alike, and reports images per second of each and their ratio
(diverse / plain; 1.0 means diversity is free). It also times ``--diversity auto``'s batch
(every candidate weight as its own group: K × 5 images) per image kept.

Not a test: it prints a table, and its last line is ``RESULT diverse_ratio=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.featurevis import RenderRequest, RenderSettings, load_model, render  # noqa: E402
from service.featurevis.directions import sample_directions  # noqa: E402
from service.generation.reference_renders import AUTO_DIVERSITY_WEIGHTS  # noqa: E402

LAYER = "blocks.10"
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def step_times(model, requests, settings, device, autocast, clock) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of each optimization step after the first (through the progress hook)."""
    stamps: list[float] = []

    def progress(_step: int, _total: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(clock())

    render(model, requests, settings, 0, device, progress, autocast)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=9, help="K: images per batch")
    parser.add_argument("--weight", type=float, default=10.0, help="diversity weight W")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="steps timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = CLOCKS[args.clock]
    autocast = (contextlib.nullcontext if args.precision == "32-true"
                else lambda: torch.autocast(device.type, torch.bfloat16))
    model = load_model("efficientnet_lite0").to(device)
    vector = sample_directions(model.channels(LAYER), LAYER, "random", 1, seed=0).vectors[0]
    settings = RenderSettings(image_size=args.size, steps=args.steps + 1)
    k = args.references

    def batch(weights: tuple[float, ...]) -> list[RenderRequest]:
        return [RenderRequest(LAYER, vector, seed=r, sign=-1, group=g, diversity=w)
                for g, w in enumerate(weights) for r in range(k)]

    runs = {"plain": batch((0.0,)), "diverse": batch((args.weight,)),
            "auto": batch(AUTO_DIVERSITY_WEIGHTS)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, requests in runs.items():
            times[name] += step_times(model, requests, settings, device, autocast, clock)
    print(f"EfficientNet-Lite0 {LAYER}, {args.size} px, K = {k} references of one direction "
          f"and sign, {args.device} {args.precision}, {args.clock} clock, median of "
          f"{args.rounds} × {args.steps} steps")
    rate = {}
    for name, requests in runs.items():
        step = statistics.median(times[name])
        kept = k  # auto keeps one group of K
        rate[name] = kept / step
        print(f"  {name:8} batch {len(requests):3}  step {step * 1000:8.1f} ms   "
              f"{rate[name]:8.2f} kept image-steps/s")
    ratio = rate["diverse"] / rate["plain"]
    print(f"  diverse / plain {ratio:.3f}   auto / plain {rate['auto'] / rate['plain']:.3f}")
    print(f"RESULT diverse_ratio={ratio:.3f} auto_ratio={rate['auto'] / rate['plain']:.3f}")


if __name__ == "__main__":
    main()
