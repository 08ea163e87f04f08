"""results.json, figures/*.png and a self-contained report.html for a paper's supplement.

The numbers come from an `AnalysisResult` (see `analysis.results`, which also writes the JSON:
no NaN or infinity ever reaches the file).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from analysis import figures
from analysis.exclusions import (
    FALSE_POSITIVE_COMMAND,
    SIMULATED_FALSE_POSITIVES,
    ExclusionRule,
)
from analysis.results import AnalysisResult, Interval, Rate, json_safe
from analysis.verdict import level_label


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _ci(pair: Interval) -> str:
    return f"[{_fmt(pair[0])}, {_fmt(pair[1])}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _rates_rows(rates: dict[str, Rate]) -> list[list[str]]:
    return [[name, _fmt(r.p), _ci(r.ci), str(r.n)] for name, r in rates.items()]


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _exclusions(result: AnalysisResult) -> list[str]:
    """Who was excluded by which rule, and why some exclusions are expected of attentive
    people too (the rules' false-positive rate, measured by simulation)."""
    excluded = result.exclusions
    parts = []
    if excluded.annotators:
        parts += ["<h3>Who was excluded, and why</h3>",
                  _table(["annotator", "rules", "what they did"], [
                      [str(a), ", ".join(excluded.broken(a)), html.escape(excluded.why(a))]
                      for a in excluded.annotators])]
    fp = SIMULATED_FALSE_POSITIVES
    n_annotators = len(excluded.reasons)
    by_chance = n_annotators * fp["total"]
    catch_trials = (float(excluded.evidence["n_catch"].mean())
                    if excluded.evidence is not None and len(excluded.evidence) else 0.0)
    other = ("" if excluded.rule == ExclusionRule() else
             " These figures are for the default thresholds; this analysis used others, so "
             "run the command with the same options to measure them.")
    parts.append(
        "<p>The rules also exclude attentive people now and then, at a rate measured by "
        "simulation: in crowds of <code>fvlab simulate</code>'s default design with no careless "
        "annotators at all (60 annotators, 400 stimuli rated 5 times each, a catch trial in "
        "every 10, one catch answer in 20 wrong), they excluded "
        f"{_pct(fp['total'])} of annotators: catch {_pct(fp['catch'])}, too fast "
        f"{_pct(fp['fast'])}, one button {_pct(fp['one_button'])} "
        f"(<code>{html.escape(FALSE_POSITIVE_COMMAND)}</code>, 60,000 simulated annotators; "
        "<code>fvlab power</code> measures it for any design). Nearly all come from the catch "
        f"rule: an annotator sees few catch trials (here {catch_trials:.1f} on average), so two "
        f"slips among three already exceed the {excluded.rule.max_catch_fail:.0%} limit. Among "
        f"this study's {n_annotators} annotators about {by_chance:.1f} would be excluded by "
        f"chance alone; {len(excluded.annotators)} were.{other}</p>")
    return parts


def _html(result: AnalysisResult, pictures: dict[str, Path]) -> str:
    v, d, o, m = result.verdict, result.difference, result.odds_ratio, result.mixed_model
    sec = result.secondary
    level = level_label(result.settings["level"])
    ci = f"{level} CI"
    parts = [
        "<h1>fvlab: are basis directions more interpretable than random directions?</h1>",
        f"<p class='verdict'>{html.escape(v.explanation)}</p>",
        _table(["criterion", "met"], [[k, _fmt(v[k])] for k in (
            "random_often_interpretable", "basis_more_often", "finding_reproduced")]),
        "<h2>Data</h2>",
        f"<p>{result.n_ratings} ratings by {result.n_annotators} annotators of "
        f"{result.n_stimuli} stimuli after exclusions "
        f"({sec.n_ratings_before_exclusions} before).</p>",
        f"<h2>Rates ({level} percentile bootstrap over stimuli)</h2>",
        _table(["condition", "rate", ci, "ratings"], _rates_rows(result.rates)),
        "<h2>Basis − random</h2>",
        _table(["statistic", "estimate", ci, "p", "method"], [
            ["difference", _fmt(d.estimate), _ci(d.ci), _fmt(d.p_value),
             html.escape(d.method)],
            ["odds ratio", _fmt(o.estimate), _ci(o.ci), _fmt(o.p_value),
             html.escape(o.method)]]),
        "<h2>Crossed mixed model (secondary)</h2>",
        f"<p>Conditional log-odds ratio basis vs random {_fmt(m.log_odds)}; annotator SD "
        f"{_fmt(m.annotator_sd)}, stimulus SD {_fmt(m.stimulus_sd)} (logit scale), from "
        f"{m.n_ratings_used} ratings. {html.escape(m.note)}"
        "; the intervals of record are the bootstrap and the clustered GLM above.</p>",
        "<h2>Per layer (p-values Holm-corrected across layers)</h2>",
        _table(["layer", "basis", "random", "difference [CI]", "perm. p (Holm)",
                "odds ratio [CI]", "alpha"], [
            [html.escape(e.layer), _fmt(e.rates["basis"].p), _fmt(e.rates["random"].p),
             f"{_fmt(e.difference.estimate)} {_ci(e.difference.ci)}",
             f"{_fmt(e.difference.p_value)} ({_fmt(e.difference.p_value_holm)})",
             f"{_fmt(e.odds_ratio.estimate)} {_ci(e.odds_ratio.ci)}",
             _fmt(e.agreement.krippendorff_alpha)] for e in result.per_layer]),
        "<h2>Confidence (1–5, secondary outcome)</h2>",
        _table(["condition", "mean", ci, "ratings"], _rates_rows(sec.confidence.mean)),
        f"<p>Basis − random mean confidence: {_fmt(sec.confidence.difference.estimate)}"
        f" {_ci(sec.confidence.difference.ci)}.</p>",
        "<h2>Agreement</h2>",
        f"<p>Krippendorff's alpha (nominal, basis and random stimuli): "
        f"{_fmt(result.agreement.krippendorff_alpha)}; share of rating pairs agreeing: "
        f"{_fmt(result.agreement.pair_agreement)}.</p>",
        _table(["condition", "alpha", "pairs agreeing"], [
            [k, _fmt(a.krippendorff_alpha), _fmt(a.pair_agreement)]
            for k, a in result.agreement.by_condition.items()]),
        "<h2>Exclusions (declared before analysis)</h2>",
        f"<p>Rule: {html.escape(result.exclusion_rule)}.</p>",
        _table(["rule", "annotators"], [[k, str(n)] for k, n in sec.exclusion_counts.items()]),
        *_exclusions(result),
    ]
    without = sec.without_exclusions
    if without is not None:
        parts += ["<h3>Without exclusions</h3>",
                  _table(["condition", "rate", ci, "ratings"], _rates_rows(without.rates)),
                  f"<p>Difference {_fmt(without.difference.estimate)} "
                  f"{_ci(without.difference.ci)}; "
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
    stimuli; the CLI passes them when it analyses a study straight from the database.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    items = result.item_table
    pictures = {
        "rates": figures.rates(result, out / "figures" / "rates.png"),
        "per_layer": figures.per_layer(result, out / "figures" / "per_layer.png"),
        "stimulus_rates": figures.stimulus_distribution(
            items, out / "figures" / "stimulus_rates.png"),
        "agreement": figures.agreement(result, out / "figures" / "agreement.png"),
    }
    if images:
        sheet = figures.contact_sheet(items, images, out / "figures" / "contact_sheet.png")
        if sheet is not None:
            pictures["contact_sheet"] = sheet
    (out / "results.json").write_text(result.to_json())
    (out / "report.html").write_text(_html(result, pictures), encoding="utf-8")
    return {"results": out / "results.json", "report": out / "report.html", **pictures}
