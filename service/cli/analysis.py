"""`fvlab analyze`, `fvlab simulate`, `fvlab power`: the analysis part of the command line.

The analysis package (pandas, statsmodels, matplotlib) is imported inside each command so that
`fvlab --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.context import CliContext, pass_cli

_DESIGN_OPTIONS = [
    click.option("--annotators", type=click.IntRange(1), default=60, show_default=True),
    click.option("--stimuli", type=click.IntRange(2), default=400, show_default=True,
                 help="Basis + random stimuli, split evenly over layers and conditions."),
    click.option("--ratings-per-item", "k", type=click.IntRange(1), default=5,
                 show_default=True),
    click.option("--layers", type=int, default=2, show_default=True,
                 help="Number of layers (named layer0, layer1, …)."),
    click.option("--p-basis", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=0.6, show_default=True, help="True marginal basis rate."),
    click.option("--p-random", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=0.4, show_default=True, help="True marginal random rate."),
    click.option("--annotator-sd", type=click.FloatRange(0), default=0.8, show_default=True,
                 help="SD of annotator bias (logit)."),
    click.option("--stimulus-sd", type=click.FloatRange(0), default=1.0, show_default=True,
                 help="SD of stimulus difficulty (logit)."),
    click.option("--careless", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                 help="Share of careless (fast, random) annotators."),
    click.option("--seed", type=int, default=0, show_default=True),
]


# The pre-declared exclusion rules: `analyze` applies them, and `power` applies the same ones to
# every simulated study, so that it measures the analysis fvlab runs.
_EXCLUSION_OPTIONS = [
    click.option("--max-catch-fail", type=click.FloatRange(0, 1), default=0.4, show_default=True,
                 help="Exclude annotators failing more than this share of catch trials."),
    click.option("--min-rt-ms", type=click.IntRange(0), default=500, show_default=True,
                 help="Responses faster than this are 'too fast'."),
    click.option("--max-fast-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                 help="Exclude annotators with more than this share of too-fast responses."),
]


def _options(options: list):  # type: ignore[no-untyped-def, type-arg]
    def apply(function):  # type: ignore[no-untyped-def]
        for option in reversed(options):
            function = option(function)
        return function
    return apply


_design = _options(_DESIGN_OPTIONS)
_exclusions = _options(_EXCLUSION_OPTIONS)


def _rule(max_catch_fail: float, min_rt_ms: int, max_fast_share: float):  # type: ignore[no-untyped-def]
    from analysis.exclusions import ExclusionRule

    return ExclusionRule(max_catch_fail=max_catch_fail, min_rt_ms=min_rt_ms,
                         max_fast_share=max_fast_share)


def _spec(annotators: int, stimuli: int, k: int, layers: int, p_basis: float, p_random: float,
          annotator_sd: float, stimulus_sd: float, careless: float, seed: int):  # type: ignore[no-untyped-def]
    from analysis.simulate import CrowdSpec

    spec = CrowdSpec(n_annotators=annotators, n_stimuli=stimuli, ratings_per_item=k,
                     layers=tuple(f"layer{i}" for i in range(layers)), p_basis=p_basis,
                     p_random=p_random, annotator_sd=annotator_sd, stimulus_sd=stimulus_sd,
                     careless_share=careless, seed=seed)
    try:
        spec.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return spec


@click.command()
@click.option("--ratings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ratings export (CSV or Parquet). Give this or --study.")
@click.option("--study", "study_id", type=int,
              help="Analyse this study straight from the database. Give this or --ratings.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True)
@click.option("--permutations", "n_perm", type=click.IntRange(100), default=10_000,
              show_default=True)
@click.option("--two-way", is_flag=True, help="Bootstrap annotators as well as stimuli.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-rate", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Floor for 'random directions are often interpretable'.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05,
              show_default=True)
@_exclusions
@pass_cli
def analyze(cli: CliContext, ratings: Path | None, study_id: int | None, output: Path,
            n_boot: int, n_perm: int,
            two_way: bool, seed: int, min_rate: float, alpha: float, max_catch_fail: float,
            min_rt_ms: int, max_fast_share: float) -> None:
    """Analyse ratings (exactly one of --ratings FILE or --study ID): results.json, report.html
    and figures/ in OUTPUT."""
    from analysis.estimate import Options
    from analysis.load import RatingsError, read_ratings, validate
    from analysis.pipeline import AnalysisConfig
    from analysis.pipeline import analyze as run_analysis
    from analysis.report import write_report

    if (ratings is None) == (study_id is None):
        raise click.UsageError("give exactly one of --ratings FILE or --study ID")
    config = AnalysisConfig(
        options=Options(n_boot=n_boot, n_perm=n_perm, seed=seed, two_way=two_way),
        rule=_rule(max_catch_fail, min_rt_ms, max_fast_share),
        min_rate=min_rate, alpha=alpha)
    engine = None
    try:
        if ratings is not None:
            frame = read_ratings(ratings)
        else:
            from service.studies.export import ExportError, ratings_frame

            engine = cli.engine()
            try:
                frame = validate(ratings_frame(engine, study_id))
            except ExportError as exc:
                raise RatingsError(str(exc)) from exc
        result = run_analysis(frame, config, log=lambda line: click.echo(line, err=True))
    except (RatingsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    images = None
    if engine is not None:
        from analysis.figures import sheet_rows
        from service.studies.export import stimulus_pngs

        ids = {int(i) for _, chosen in sheet_rows(result.item_table) for i in chosen["item"]}
        images = stimulus_pngs(engine, sorted(ids))
    written = write_report(result, output, images)
    click.echo(result.verdict.explanation)
    excluded = result.exclusions
    if excluded.annotators:
        from analysis.exclusions import SIMULATED_FALSE_POSITIVES

        rules = ", ".join(f"{rule} {n}" for rule, n in excluded.counts().items()
                          if n and rule != "total")
        chance = len(excluded.reasons) * SIMULATED_FALSE_POSITIVES["total"]
        rate = SIMULATED_FALSE_POSITIVES["total"]
        click.echo(f"excluded {len(excluded.annotators)} of {len(excluded.reasons)} annotators "
                   f"({rules}); the rules also exclude attentive people, about {rate:.1%} of "
                   f"them ({chance:.1f} of {len(excluded.reasons)} on average): report.html "
                   "says who, why, and how that rate was measured")
    click.echo(f"wrote {written['results']} and {written['report']}")


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_design
def simulate(output: Path, **design: object) -> None:
    """Write a synthetic crowd's ratings (export format) with a known truth."""
    from analysis.simulate import simulate as draw
    from service.studies.export import write_frame
    from service.studies.ratings_file import format_for

    frame, truth = draw(_spec(**design))  # type: ignore[arg-type]
    write_frame(frame, output, format_for(output))
    click.echo(f"wrote {len(frame)} ratings to {output}; true basis − random difference "
               f"{truth.difference:+.3f}; careless annotators {len(truth.careless_annotators)}")


@click.command()
@_design
@click.option("--studies", type=click.IntRange(1), default=200, show_default=True,
              help="Simulated studies (more = less simulation error).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=500, show_default=True)
@click.option("--permutations", "n_perm", type=click.IntRange(100), default=500,
              show_default=True)
@_exclusions
def power(studies: int, n_boot: int, n_perm: int, max_catch_fail: float, min_rt_ms: int,
          max_fast_share: float, **design: object) -> None:
    """Power of a planned study to detect the given basis − random difference.

    Every simulated study is analysed as `fvlab analyze` would: the same exclusion rules first.
    """
    from analysis.estimate import Options
    from analysis.power import CRITERIA
    from analysis.power import power as estimate_power

    spec = _spec(**design)  # type: ignore[arg-type]
    found = estimate_power(spec, studies, Options(n_boot=n_boot, n_perm=n_perm, seed=spec.seed),
                           rule=_rule(max_catch_fail, min_rt_ms, max_fast_share))
    click.echo(f"design: {spec.n_stimuli} stimuli, {spec.n_annotators} annotators, "
               f"k={spec.ratings_per_item}, true difference {spec.p_basis - spec.p_random:+.3f}")
    for key in CRITERIA:
        click.echo(f"power {key}: {found[key]:.3f} "
                   f"(± {found.margin(key):.3f}, the 95% margin of {studies} simulated studies)")
    width = "n/a" if found.mean_ci_width is None else f"{found.mean_ci_width:.3f}"
    click.echo(f"interval covers truth: {found.interval_covers_truth:.3f}; mean CI width "
               f"{width}")
    fp = found.attentive_excluded
    click.echo(f"attentive annotators excluded (the rules' false positives): {fp['total']:.2%} "
               f"(catch {fp['catch']:.2%}, fast {fp['fast']:.2%}, "
               f"one-button {fp['one_button']:.2%})")
