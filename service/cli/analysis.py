"""`fvlab analyze`, `fvlab simulate`, `fvlab power`: the analysis part of the command line.

The analysis package (pandas, statsmodels, matplotlib) is imported inside each command so that
`fvlab --help` stays fast; `analysis.tasks` holds only the fixed values offered as choices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from analysis.tasks import AFC, RATING, REFERENCES
from service.cli.context import CliContext, pass_cli

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from analysis.exclusions import ExclusionRule
    from analysis.simulate import CrowdSpec
    from analysis.simulate_afc import AfcSpec

# True rates a simulated study draws when not given: the rating task's yes-rates, and the 2-AFC
# task's accuracies (basis and random with synthetic references, natural and none for both)
_RATE_DEFAULTS = {RATING: {"p_basis": 0.6, "p_random": 0.4},
                  AFC: {"p_basis": 0.8, "p_random": 0.7, "p_natural": 0.9, "p_none": 0.5}}
_OPEN_UNIT = click.FloatRange(0, 1, min_open=True, max_open=True)
# `power --from-machine`: the power it designs for unless --target-power is given, and the
# design options the study and its machine answers set instead
MACHINE_TARGET_POWER = 0.8
MACHINE_SETS = ("task", "stimuli", "annotators", "k", "layers", "p_basis", "p_random",
                "references", "stimulus_sd")

_DESIGN_OPTIONS = [
    click.option("--task", type=click.Choice([RATING, AFC]), default=RATING, show_default=True,
                 help="The study's task: yes/no ratings or the two-alternative forced choice."),
    click.option("--annotators", type=click.IntRange(1), default=60, show_default=True),
    click.option("--stimuli", type=click.IntRange(2), default=400, show_default=True,
                 help="Basis + random stimuli (2afc: directions, each shown with every "
                      "reference kind), split evenly over layers and conditions."),
    click.option("--ratings-per-item", "k", type=click.IntRange(1), default=5,
                 show_default=True,
                 help="Ratings per stimulus (2afc: answers per direction and reference kind)."),
    click.option("--layers", type=int, default=2, show_default=True,
                 help="Number of layers (named layer0, layer1, …)."),
    click.option("--p-basis", type=_OPEN_UNIT,
                 help="True marginal basis rate; 2afc: accuracy with synthetic references. "
                      "Default 0.6 (2afc: 0.8)."),
    click.option("--p-random", type=_OPEN_UNIT,
                 help="True marginal random rate; 2afc: accuracy with synthetic references. "
                      "Default 0.4 (2afc: 0.7)."),
    click.option("--p-natural", type=_OPEN_UNIT,
                 help="2afc: true accuracy with natural references, both conditions "
                      "(default 0.9)."),
    click.option("--p-none", type=_OPEN_UNIT,
                 help="2afc: true accuracy without references, both conditions (default 0.5)."),
    click.option("--reference", "references", multiple=True, type=click.Choice(REFERENCES),
                 help="2afc: a reference kind the study shows (repeat it; default all three)."),
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
    click.option("--max-catch-fail", type=click.FloatRange(0, 1),
                 help="Exclude annotators failing more than this share of catch trials. "
                      "Default 0.4 (2afc: 0.2, i.e. IMI's at least 80% right)."),
    click.option("--min-rt-ms", type=click.IntRange(0), default=500, show_default=True,
                 help="Responses faster than this, by the page's or the server's clock, are "
                      "'too fast'."),
    click.option("--max-fast-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                 help="Exclude annotators with more than this share of too-fast responses."),
]


def _options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def apply(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function
    return apply


_design = _options(_DESIGN_OPTIONS)
_exclusions = _options(_EXCLUSION_OPTIONS)


def _rule(task: str, max_catch_fail: float | None, min_rt_ms: int,
          max_fast_share: float) -> ExclusionRule:
    """The task's pre-declared rule set with the thresholds given on the command line."""
    from dataclasses import replace

    from analysis.exclusions import ExclusionRule

    default = ExclusionRule.default(task)
    return replace(default, min_rt_ms=min_rt_ms, max_fast_share=max_fast_share,
                   max_catch_fail=default.max_catch_fail if max_catch_fail is None
                   else max_catch_fail)


def _spec(task: str, annotators: int, stimuli: int, k: int, layers: int, p_basis: float | None,
          p_random: float | None, p_natural: float | None, p_none: float | None,
          references: tuple[str, ...], annotator_sd: float, stimulus_sd: float,
          careless: float, seed: int) -> CrowdSpec | AfcSpec:
    """The simulated study's design: a `CrowdSpec` (rating) or an `AfcSpec` (2afc)."""
    from analysis.simulate import CrowdSpec
    from analysis.simulate_afc import AfcSpec

    if task == RATING and (p_natural is not None or p_none is not None or references):
        raise click.UsageError("--p-natural, --p-none and --reference are for --task 2afc")
    given = {"p_basis": p_basis, "p_random": p_random, "p_natural": p_natural, "p_none": p_none}
    rates = {**_RATE_DEFAULTS[task], **{k: v for k, v in given.items() if v is not None}}
    names = tuple(f"layer{i}" for i in range(layers))
    spec: CrowdSpec | AfcSpec
    if task == AFC:
        spec = AfcSpec(n_annotators=annotators, n_stimuli=stimuli, ratings_per_item=k,
                       layers=names, references=tuple(references or REFERENCES),
                       p_basis=rates["p_basis"], p_random=rates["p_random"],
                       p_natural=rates["p_natural"], p_none=rates["p_none"],
                       annotator_sd=annotator_sd, stimulus_sd=stimulus_sd,
                       careless_share=careless, seed=seed)
    else:
        spec = CrowdSpec(n_annotators=annotators, n_stimuli=stimuli, ratings_per_item=k,
                         layers=names, p_basis=rates["p_basis"], p_random=rates["p_random"],
                         annotator_sd=annotator_sd, stimulus_sd=stimulus_sd,
                         careless_share=careless, seed=seed)
    try:
        spec.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return spec


def _study_sessions(engine: Engine, study_id: int) -> pd.DataFrame:
    from analysis.load import validate_sessions
    from service.studies.export import sessions_frame

    return validate_sessions(sessions_frame(engine, study_id))


@click.command()
@click.option("--ratings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ratings export (CSV or Parquet). Give this or --study.")
@click.option("--study", "study_id", type=int,
              help="Analyse this study straight from the database (its sessions too). Give "
                   "this or --ratings.")
@click.option("--sessions", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The study's sessions export, for the time rules (2afc: total 135–2,500 s, "
                   "instructions ≥ 15 s); without it they do not run.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True)
@click.option("--permutations", "n_perm", type=click.IntRange(100), default=10_000,
              show_default=True)
@click.option("--two-way", is_flag=True, help="Bootstrap annotators as well as stimuli.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-rate", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Floor for 'random directions are often interpretable' (rating task).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05,
              show_default=True)
@click.option("--machine", is_flag=True, help="Analyse only the machine annotator's answers.")
@click.option("--all", "everyone", is_flag=True,
              help="Analyse everyone's answers, people's and the machine annotator's.")
@_exclusions
@pass_cli
def analyze(cli: CliContext, ratings: Path | None, study_id: int | None,
            sessions: Path | None, output: Path, n_boot: int, n_perm: int, two_way: bool,
            seed: int, min_rate: float, alpha: float, machine: bool, everyone: bool,
            max_catch_fail: float | None, min_rt_ms: int, max_fast_share: float) -> None:
    """Analyse ratings (exactly one of --ratings FILE or --study ID): results.json, report.html
    and figures/ in OUTPUT. People's answers only, unless --machine or --all."""
    from analysis.estimate import Options
    from analysis.load import RatingsError, read_ratings, read_sessions, task_of, validate
    from analysis.pipeline import AnalysisConfig
    from analysis.pipeline import analyze as run_analysis
    from analysis.report import write_report

    if (ratings is None) == (study_id is None):
        raise click.UsageError("give exactly one of --ratings FILE or --study ID")
    if machine and everyone:
        raise click.UsageError("give at most one of --machine or --all")
    annotators = "machine" if machine else "all" if everyone else "human"
    engine = None
    try:
        times = read_sessions(sessions) if sessions is not None else None
        if ratings is not None:
            frame = read_ratings(ratings)
        else:
            from service.studies.export import ExportError, ratings_frame

            engine = cli.engine()
            try:
                frame = validate(ratings_frame(engine, study_id))
            except ExportError as exc:
                raise RatingsError(str(exc)) from exc
        task = task_of(frame)
        rule = _rule(task, max_catch_fail, min_rt_ms, max_fast_share)
        if times is not None and not rule.time_rules():
            click.echo("the rating task's exclusion rules use no session times; the sessions "
                       "were not used", err=True)
            times = None
        elif times is None and engine is not None and rule.time_rules():
            times = _study_sessions(engine, study_id)  # type: ignore[arg-type]
        config = AnalysisConfig(
            options=Options(n_boot=n_boot, n_perm=n_perm, seed=seed, two_way=two_way),
            rule=rule, min_rate=min_rate, alpha=alpha, annotators=annotators)
        result = run_analysis(frame, config, log=lambda line: click.echo(line, err=True),
                              sessions=times)
    except (RatingsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if engine is not None and study_id is not None and annotators != "human":
        note = _machine_alpha_note(engine, study_id, frame)
        if note is not None:
            result.notes.append(note)
            click.echo(note)
    images = None
    if engine is not None:
        from analysis.figures import sheet_rows
        from service.studies.export import stimulus_pngs

        ids = {int(i) for _, chosen in sheet_rows(result.item_table) for i in chosen["item"]}
        images = stimulus_pngs(engine, sorted(ids))
    written = write_report(result, output, images)
    click.echo(f"task {result.task}; annotators analysed: {result.annotators}")
    click.echo(result.verdict.explanation)
    excluded = result.exclusions
    if excluded.annotators:
        from analysis.exclusions import quoted_false_positives

        rules = ", ".join(f"{rule} {n}" for rule, n in excluded.counts().items()
                          if n and rule != "total")
        rate = quoted_false_positives(result.task)[0]["total"]
        chance = len(excluded.reasons) * rate
        click.echo(f"excluded {len(excluded.annotators)} of {len(excluded.reasons)} annotators "
                   f"({rules}); the rules also exclude attentive people, about {rate:.1%} of "
                   f"them ({chance:.1f} of {len(excluded.reasons)} on average): report.html "
                   "says who, why, and how that rate was measured")
    click.echo(f"wrote {written['results']} and {written['report']}")


def _machine_alpha_note(engine: Engine, study_id: int, frame: pd.DataFrame) -> str | None:
    """Whether the machine answers analysed came from a calibrated α (None: there are none)."""
    from analysis.load import machine_rows
    from service.studies.study import get_study

    if not machine_rows(frame).any():
        return None
    fitted = get_study(engine, study_id).machine_alpha
    if fitted is None:
        return (f"machine annotator: uncalibrated α (study {study_id}'s machine_alpha is not "
                f"fitted; fvlab machine calibrate --study {study_id} fits it to people's "
                "answers)")
    return f"machine annotator: calibrated α = {fitted:.4g} (fitted to this study's people)"


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_design
def simulate(output: Path, **design: object) -> None:
    """Write a synthetic crowd's ratings (export format) with a known truth."""
    from analysis.simulate import simulate as draw
    from analysis.simulate_afc import AfcSpec, simulate_afc
    from service.studies.export import write_frame
    from service.studies.ratings_file import format_for

    spec = _spec(**design)  # type: ignore[arg-type]
    frame, truth = simulate_afc(spec) if isinstance(spec, AfcSpec) else draw(spec)
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
@click.option("--target-power", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Search the fewest directions (annotators scaled to keep each one's number "
                   "of trials) whose power for basis_more_often reaches this.")
@click.option("--from-machine", "from_machine", type=int, metavar="STUDY_ID",
              help="Plan from the machine annotator's answers to this 2-AFC study: its basis "
                   "and random accuracies and stimulus SD, the study's layers, reference kinds, "
                   "k and trials per session; searches the design for --target-power "
                   f"(default {MACHINE_TARGET_POWER}).")
@_exclusions
@pass_cli
def power(cli: CliContext, studies: int, n_boot: int, n_perm: int, target_power: float | None,
          from_machine: int | None, max_catch_fail: float | None, min_rt_ms: int,
          max_fast_share: float, **design: object) -> None:
    """Power of a planned study to detect the given basis − random difference.

    Every simulated study is analysed as `fvlab analyze` would: the same exclusion rules first.
    """
    from analysis.estimate import Options
    from analysis.power import CRITERIA, PowerResult, design_for
    from analysis.power import power as estimate_power
    from analysis.simulate_afc import AfcSpec

    spec: CrowdSpec | AfcSpec
    if from_machine is not None:
        design["task"] = AFC
        spec = _machine_spec(cli, from_machine, design)
        target_power = MACHINE_TARGET_POWER if target_power is None else target_power
    else:
        spec = _spec(**design)  # type: ignore[arg-type]
    options = Options(n_boot=n_boot, n_perm=n_perm, seed=spec.seed)
    rule = _rule(str(design["task"]), max_catch_fail, min_rt_ms, max_fast_share)
    if target_power is not None:
        def show(tried: CrowdSpec | AfcSpec, found: PowerResult) -> None:
            click.echo(f"  {tried.n_stimuli} directions, {tried.n_annotators} annotators: "
                       f"power {found['basis_more_often']:.3f}", err=True)

        click.echo(f"searching for power ≥ {target_power:.2f} to see basis_more_often …",
                   err=True)
        chosen = design_for(spec, target_power, n_studies=studies, options=options, rule=rule,
                            log=show)
        if chosen is None:
            click.echo(f"no design up to 64 × {spec.n_stimuli} stimuli reaches power "
                       f"{target_power:.2f}")
            return
        spec, found = chosen
        click.echo(f"smallest design reaching power {target_power:.2f} (within 10%):")
    else:
        found = estimate_power(spec, studies, options, rule=rule)
    shown = (f"2afc with {', '.join(spec.references)} references, "
             if isinstance(spec, AfcSpec) else "")
    click.echo(f"design: {shown}{spec.n_stimuli} stimuli, {spec.n_annotators} annotators, "
               f"k={spec.ratings_per_item}, true difference {spec.p_basis - spec.p_random:+.3f}")
    if from_machine is not None:
        click.echo(f"the study needs {spec.n_stimuli} directions and {spec.n_annotators} "
                   f"people (k={spec.ratings_per_item} answers per direction and reference "
                   f"kind) for power ≥ {target_power:.2f} to see basis_more_often")
    for key in CRITERIA:
        click.echo(f"power {key}: {found[key]:.3f} "
                   f"(± {found.margin(key):.3f}, the 95% margin of {studies} simulated studies)")
    width = "n/a" if found.mean_ci_width is None else f"{found.mean_ci_width:.3f}"
    click.echo(f"interval covers truth: {found.interval_covers_truth:.3f}; mean CI width "
               f"{width}")
    fp = found.attentive_excluded
    rules = ", ".join(f"{rule.replace('_', '-')} {share:.2%}" for rule, share in fp.items()
                      if rule != "total")
    click.echo(f"attentive annotators excluded (the rules' false positives): {fp['total']:.2%} "
               f"({rules})")


def _machine_spec(cli: CliContext, study_id: int, design: dict[str, object]) -> AfcSpec:
    """The 2-AFC design planned from the machine's answers to `study_id` (printed), refusing
    the options those answers and the study set."""
    from analysis.machine_planning import (
        NoMachineAnswers,
        describe,
        plan_from_machine,
        study_design,
    )
    from analysis.simulate_afc import AfcSpec
    from service.studies.export import ExportError, ratings_frame
    from service.studies.study import StudyError, get_study

    context = click.get_current_context()
    flags = {param.name: max(param.opts, key=len) for param in context.command.params}
    given = [flags[name] for name in MACHINE_SETS
             if context.get_parameter_source(name) is not ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"{', '.join(given)}: --from-machine takes these from the study "
                               "and its machine answers")
    try:
        engine = cli.engine()
        study = get_study(engine, study_id)
        if study.task != AFC:
            raise click.ClickException(f"study {study_id} is a {study.task} study; "
                                       "--from-machine plans 2-AFC studies")
        plan = plan_from_machine(ratings_frame(engine, study_id))
        base = _spec(**design)  # type: ignore[arg-type]
        if not isinstance(base, AfcSpec):  # the task was set to 2afc above
            raise click.UsageError("--from-machine plans 2-AFC studies")
        spec = study_design(plan, base, tuple(study.reference_kinds or ()),
                            study.ratings_per_item, study.trials_per_session,
                            study.catch_every)
    except NoMachineAnswers as exc:
        raise click.ClickException(
            f"study {study_id} has {exc}: let the machine annotator answer it first "
            f"(fvlab machine rate --study {study_id})") from exc
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    except (ExportError, ValueError) as exc:
        raise click.ClickException(f"study {study_id}: {exc}") from exc
    calibrated = (f"calibrated α = {study.machine_alpha:.3g}" if study.machine_alpha is not None
                  else "uncalibrated α: the accuracies depend on an α not yet fitted to people "
                       f"(fvlab machine calibrate --study {study_id})")
    click.echo(f"planning from study {study_id}'s machine answers "
               f"({plan.machine_annotators} machine annotators; {calibrated}):")
    for line in describe(plan):
        click.echo(f"  {line}")
    return spec
