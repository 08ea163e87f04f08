"""Benchmarks of the analysis: speed on a million ratings, and the statistics' calibration.

Speed (default): 1,000,000 ratings (10,000 stimuli, 2,000 annotators, 4 layers) are simulated
in a child process and written as Parquet; this process then loads, validates and analyses them
with 2,000 bootstrap resamples and 10,000 permutations and writes the report. Each stage's time
is printed, with the ratio against a baseline run in the same process (reading the file and
computing the plain per-condition rates). The last line is
`RESULT seconds=<x> peak_gb=<x>` (peak resident memory of this process).

Calibration (`--coverage N`): N simulated studies with a true difference (share of 95%
intervals covering it; target 92–98%) and N under the null (share claiming `basis_more_often`;
target ≤ 6%). `--task 2afc` does the same for 2-AFC studies (accuracy with synthetic
references, 80% vs 70%; under the null 70% vs 70%), each analysed as `fvlab analyze` would.

    .venv/bin/python bench/analysis.py
    .venv/bin/python bench/analysis.py --coverage 200
    .venv/bin/python bench/analysis.py --coverage 500 --task 2afc
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# Run as a script, this file's own folder comes first on sys.path, and this file (analysis.py)
# would shadow the `analysis` package it measures; the repository root goes there instead.
REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    sys.path[0] = str(REPO_ROOT)

SPEED_SPEC = dict(n_annotators=2000, n_stimuli=10_000, ratings_per_item=91,
                  layers=("blocks.4", "blocks.8", "blocks.10", "blocks.14"), careless_share=0.02)


def _simulate_to(path: Path) -> None:
    """In a child process, so that the simulator's memory does not count as the analysis'."""
    code = (
        "import sys; from analysis.simulate import CrowdSpec, simulate; "
        "from service.studies.export import write_frame; "
        f"frame, _ = simulate(CrowdSpec(**{SPEED_SPEC!r})); "
        "write_frame(frame, sys.argv[1], 'parquet'); print(len(frame))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                          capture_output=True, text=True, cwd=REPO_ROOT)
    print(f"simulated {done.stdout.strip()} ratings", flush=True)


def speed() -> None:
    import pandas as pd

    from analysis.estimate import Options
    from analysis.load import read_ratings
    from analysis.pipeline import AnalysisConfig, analyze
    from analysis.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.parquet"
        _simulate_to(path)
        start = time.perf_counter()
        raw = pd.read_parquet(path)
        raw.groupby("condition")["interpretable"].mean()
        baseline = time.perf_counter() - start
        print(f"baseline (read + plain rates): {baseline:.2f} s", flush=True)

        total = time.perf_counter()
        cpu = time.process_time()
        clock = time.perf_counter()
        ratings = read_ratings(path)
        print(f"load + validate: {time.perf_counter() - clock:.2f} s", flush=True)
        config = AnalysisConfig(options=Options(n_boot=2000, n_perm=10_000, seed=1))
        result = analyze(ratings, config, log=lambda line: print(line, flush=True))
        clock = time.perf_counter()
        write_report(result, Path(tmp) / "out")
        print(f"report: {time.perf_counter() - clock:.2f} s", flush=True)
        seconds = time.perf_counter() - total
        cpu_seconds = time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"n_ratings={result.n_ratings} excluded={len(result.excluded_annotators)} "
          f"difference={result.difference.estimate:.4f} ci={list(result.difference.ci)}")
    print(f"ratio to baseline: {seconds / baseline:.1f}x")
    # wall time suffers when other work shares the cores; CPU time shows what the analysis needs
    print(f"cpu seconds (all threads of this process): {cpu_seconds:.1f}")
    print(f"RESULT seconds={seconds:.1f} peak_gb={peak_gb:.2f}")


def calibration(n_studies: int, task: str) -> None:
    from analysis.estimate import Options
    from analysis.power import power
    from analysis.simulate import CrowdSpec
    from analysis.simulate_afc import AfcSpec

    spec: CrowdSpec | AfcSpec
    if task == "2afc":
        spec = AfcSpec(n_annotators=40, n_stimuli=200, ratings_per_item=5,
                       references=("synthetic", "none"), p_basis=0.8, p_random=0.7, seed=11)
    else:
        spec = CrowdSpec(n_annotators=40, n_stimuli=200, ratings_per_item=5, p_basis=0.55,
                         p_random=0.4, seed=11)
    options = Options(n_boot=1000, n_perm=1000)
    start = time.perf_counter()
    with_effect = power(spec, n_studies, options)
    null = power(replace(spec, p_basis=spec.p_random, seed=12), n_studies, options)
    print(f"task {task}: {spec.n_stimuli} stimuli, {spec.n_annotators} annotators, "
          f"k={spec.ratings_per_item}, {options.n_boot} resamples, {options.n_perm} permutations")
    print(f"{n_studies} studies with a true difference of {spec.p_basis - spec.p_random:+.2f}: "
          f"95% interval covers it in {with_effect.interval_covers_truth:.3f} "
          f"(target 0.92-0.98); power {with_effect.basis_more_often:.3f}")
    print(f"{n_studies} studies under the null: basis_more_often claimed in "
          f"{null.basis_more_often:.3f} (target <= 0.06); interval covers 0 in "
          f"{null.interval_covers_truth:.3f}")
    print(f"RESULT seconds={time.perf_counter() - start:.1f} "
          f"coverage={with_effect.interval_covers_truth:.3f} "
          f"null_claims={null.basis_more_often:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=int, metavar="N",
                        help="run the calibration over N simulated studies instead of speed")
    parser.add_argument("--task", choices=("rating", "2afc"), default="rating",
                        help="the task the calibration simulates (default rating)")
    args = parser.parse_args()
    if args.coverage:
        calibration(args.coverage, args.task)
    else:
        speed()


if __name__ == "__main__":
    main()
