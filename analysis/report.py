"""results.json, figures/*.png and a self-contained report.html for a paper's supplement.

The numbers come from an `AnalysisResult` (see `analysis.results`, which also writes the JSON:
no NaN or infinity ever reaches the file).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from analysis import figures
from analysis.exclusions import ExclusionRule, quoted_false_positives
from analysis.html_parts import ci_text, fmt, pct, rates_rows, table
from analysis.report_afc import afc_rules, afc_sections
from analysis.results import AnalysisResult, Rate, json_safe
from analysis.tasks import AFC
from analysis.verdict import level_label

WHOSE = {"human": "people only (machine annotators, if any, left out)",
         "machine": "the machine annotator only", "all": "everyone, people and machine"}


def _exclusions(result: AnalysisResult) -> list[str]:
    """Who was excluded by which rule, and why some exclusions are expected of attentive
    people too (the rules' false-positive rate, measured by simulation)."""
    excluded = result.exclusions
    parts = []
    if excluded.annotators:
        parts += ["<h3>Who was excluded, and why</h3>",
                  table(["annotator", "rules", "what they did"], [
                      [str(a), ", ".join(excluded.broken(a)), html.escape(excluded.why(a))]
                      for a in excluded.annotators])]
    fp, command = quoted_false_positives(result.task)
    n_annotators = len(excluded.reasons)
    by_chance = n_annotators * fp["total"]
    catch_trials = (float(excluded.evidence["n_catch"].mean())
                    if excluded.evidence is not None and len(excluded.evidence) else 0.0)
    other = ("" if excluded.rule == ExclusionRule.default(result.task) else
             " These figures are for the default thresholds; this analysis used others, so "
             "run the command with the same options to measure them.")
    if result.task == AFC:
        design = ("<code>fvlab simulate --task 2afc</code>'s default design with no careless "
                  "annotators at all (60 annotators, 400 directions shown with each of 3 "
                  "reference kinds and answered 5 times each, a catch trial in every 10, one "
                  "catch answer in 20 wrong; session times are not simulated)")
        rules = ", ".join(f"{name.replace('_', ' ')} {pct(share)}" for name, share in fp.items()
                          if name != "total")
    else:
        design = ("<code>fvlab simulate</code>'s default design with no careless annotators at "
                  "all (60 annotators, 400 stimuli rated 5 times each, a catch trial in every "
                  "10, one catch answer in 20 wrong)")
        rules = (f"catch {pct(fp['catch'])}, too fast {pct(fp['fast'])}, one button "
                 f"{pct(fp['one_button'])}")
    parts.append(
        "<p>The rules also exclude attentive people now and then, at a rate measured by "
        f"simulation: in crowds of {design}, they excluded {pct(fp['total'])} of annotators: "
        f"{rules} (<code>{html.escape(command)}</code>, 60,000 simulated annotators; "
        "<code>fvlab power</code> measures it for any design). Nearly all come from the catch "
        f"rule: an annotator sees few catch trials (here {catch_trials:.1f} on average), so "
        f"a few slips already exceed the {excluded.rule.max_catch_fail:.0%} limit. Among "
        f"this study's {n_annotators} annotators about {by_chance:.1f} would be excluded by "
        f"chance alone; {len(excluded.annotators)} were.{other}</p>")
    return parts


TITLES = {"rating": "fvlab: are basis directions more interpretable than random directions?",
          AFC: "fvlab, 2-AFC task: do visualizations predict basis and random directions' "
               "natural exemplars?"}


def _html(result: AnalysisResult, pictures: dict[str, Path]) -> str:
    v, d, o, m = result.verdict, result.difference, result.odds_ratio, result.mixed_model
    sec = result.secondary
    level = level_label(result.settings["level"])
    ci = f"{level} CI"
    afc = result.task == AFC
    answers, what = ("answers", "accuracy") if afc else ("ratings", "rate")

    def shown(rates: dict[str, Rate]) -> dict[str, Rate]:  # 2-AFC has no negative catch items
        return {k: r for k, r in rates.items() if not afc or k != "catch_negative"}

    parts = [
        f"<h1>{html.escape(TITLES[result.task])}</h1>",
        f"<p class='verdict'>{html.escape(v.explanation)}</p>",
        table(["criterion", "met"], [[k, fmt(v[k])] for k in (
            "random_often_interpretable", "basis_more_often", "finding_reproduced")]),
        *([afc_rules()] if afc else []),
        "<h2>Data</h2>",
        f"<p>{result.n_ratings} {answers} by {result.n_annotators} annotators of "
        f"{result.n_stimuli} {'directions' if afc else 'stimuli'} after exclusions "
        f"({sec.n_ratings_before_exclusions} before). Task: {html.escape(result.task)}. "
        f"Annotators analysed: {html.escape(WHOSE[result.annotators])} "
        f"(<code>{html.escape(result.annotators)}</code>).</p>",
        *(afc_sections(result, ci) if afc else []),
        f"<h2>{'Accuracy with synthetic references' if afc else 'Rates'} ({level} percentile "
        "bootstrap over stimuli)</h2>",
        table(["condition", what, ci, answers], rates_rows(shown(result.rates))),
        f"<h2>Basis − random{' (synthetic references)' if afc else ''}</h2>",
        table(["statistic", "estimate", ci, "p", "method"], [
            ["difference", fmt(d.estimate), ci_text(d.ci), fmt(d.p_value),
             html.escape(d.method)],
            ["odds ratio", fmt(o.estimate), ci_text(o.ci), fmt(o.p_value),
             html.escape(o.method)]]),
        "<h2>Crossed mixed model (secondary)</h2>",
        f"<p>Conditional log-odds ratio basis vs random {fmt(m.log_odds)}; annotator SD "
        f"{fmt(m.annotator_sd)}, stimulus SD {fmt(m.stimulus_sd)} (logit scale), from "
        f"{m.n_ratings_used} {answers}. {html.escape(m.note)}"
        "; the intervals of record are the bootstrap and the clustered GLM above.</p>",
        "<h2>Per layer (p-values Holm-corrected across layers)</h2>",
        table(["layer", "basis", "random", "difference [CI]", "perm. p (Holm)",
               "odds ratio [CI]", "alpha"], [
            [html.escape(e.layer), fmt(e.rates["basis"].p), fmt(e.rates["random"].p),
             f"{fmt(e.difference.estimate)} {ci_text(e.difference.ci)}",
             f"{fmt(e.difference.p_value)} ({fmt(e.difference.p_value_holm)})",
             f"{fmt(e.odds_ratio.estimate)} {ci_text(e.odds_ratio.ci)}",
             fmt(e.agreement.krippendorff_alpha)] for e in result.per_layer]),
        f"<h2>Confidence ({'1–3' if afc else '1–5'}, secondary outcome)</h2>",
        table(["condition", "mean", ci, answers], rates_rows(shown(sec.confidence.mean))),
        f"<p>Basis − random mean confidence: {fmt(sec.confidence.difference.estimate)}"
        f" {ci_text(sec.confidence.difference.ci)}.</p>",
        "<h2>Agreement</h2>",
        f"<p>Krippendorff's alpha (nominal, basis and random stimuli"
        f"{', on whether the answer was right' if afc else ''}): "
        f"{fmt(result.agreement.krippendorff_alpha)}; share of {answers[:-1]} pairs agreeing: "
        f"{fmt(result.agreement.pair_agreement)}.</p>",
        table(["condition", "alpha", "pairs agreeing"], [
            [k, fmt(a.krippendorff_alpha), fmt(a.pair_agreement)]
            for k, a in result.agreement.by_condition.items()]),
        "<h2>Exclusions (declared before analysis)</h2>",
        f"<p>Rule: {html.escape(result.exclusion_rule)}. Rules that ran: "
        f"{', '.join(k for k in sec.exclusion_counts if k != 'total')}.</p>",
        table(["rule", "annotators"], [[k, str(n)] for k, n in sec.exclusion_counts.items()]),
        *_exclusions(result),
    ]
    without = sec.without_exclusions
    if without is not None:
        parts += ["<h3>Without exclusions</h3>",
                  table(["condition", what, ci, answers], rates_rows(shown(without.rates))),
                  f"<p>Difference {fmt(without.difference.estimate)} "
                  f"{ci_text(without.difference.ci)}; "
                  f"{html.escape(without.verdict.explanation)}</p>"]
    else:
        parts.append("<p>No annotator was excluded.</p>")
    if result.notes:
        parts += ["<h2>What could not be estimated</h2><ul>"]
        parts += [f"<li>{html.escape(n)}</li>" for n in result.notes] + ["</ul>"]
    parts.append("<h2>Figures</h2>")
    for name, path in pictures.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{name}</figcaption></figure>")
    parts += ["<h2>Settings and versions</h2>",
              f"<pre>{html.escape(json.dumps(json_safe(result.settings), indent=2))}</pre>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:.2em .6em;text-align:left}.verdict{font-size:1.1em;background:#f4f4f4;"
             "padding:1em}img{max-width:100%}")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>fvlab analysis"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(
    result: AnalysisResult, out_dir: str | Path, images: dict[int, bytes] | None = None,
) -> dict[str, Path]:
    """Write results.json, figures/*.png and report.html under `out_dir`; returns their paths.

    `images` (stimulus id → PNG) adds a contact sheet of the most and least interpretable
    stimuli; the CLI passes them when it analyses a study straight from the database. A 2-AFC
    study's report also draws accuracy by condition × reference with chance marked.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    items = result.item_table
    pictures = {}
    if result.task == AFC:
        pictures["accuracy"] = figures.accuracy_by_reference(
            result, out / "figures" / "accuracy.png")
    pictures.update({
        "rates": figures.rates(result, out / "figures" / "rates.png"),
        "per_layer": figures.per_layer(result, out / "figures" / "per_layer.png"),
        "stimulus_rates": figures.stimulus_distribution(
            items, out / "figures" / "stimulus_rates.png", result.task),
        "agreement": figures.agreement(result, out / "figures" / "agreement.png"),
    })
    if images:
        sheet = figures.contact_sheet(items, images, out / "figures" / "contact_sheet.png")
        if sheet is not None:
            pictures["contact_sheet"] = sheet
    (out / "results.json").write_text(result.to_json())
    (out / "report.html").write_text(_html(result, pictures), encoding="utf-8")
    return {"results": out / "results.json", "report": out / "report.html", **pictures}
