"""The report's 2-AFC sections: the verdict's rules, accuracy by condition × reference against
chance, and whether the query pairs were equally hard in both conditions."""

from __future__ import annotations

import html

from analysis.html_parts import ci_text, fmt, table
from analysis.results import AnalysisResult, QueryDifficulty
from analysis.verdict import AFC_RULES

ROLES = {"synthetic": "primary: the verdict is decided here",
         "natural": "positive control: the direction's own natural exemplars",
         "none": "floor: no references, only the queries"}


def afc_rules() -> str:
    """The 2-AFC verdict's rules, printed as fixed before the data were seen."""
    items = "".join(f"<li>{html.escape(rule)}</li>" for rule in AFC_RULES)
    return f"<h2>Verdict rules (fixed before the data were seen)</h2><ol>{items}</ol>"


def _by_reference(result: AnalysisResult, ci: str) -> str:
    rows = []
    comparisons = result.secondary.by_reference or {}
    for kind, rates in result.per_reference.items():
        compared = comparisons.get(kind)
        cells = [f"{fmt(rates[c].p)} {ci_text(rates[c].ci)} ({rates[c].n})"
                 for c in ("basis", "random")]
        if compared is None:
            cells += ["—", "—", "—"]
        else:
            d, o = compared.difference, compared.odds_ratio
            cells += [f"{fmt(d.estimate)} {ci_text(d.ci)}", fmt(d.p_value),
                      f"{fmt(o.estimate)} {ci_text(o.ci)}"]
        rows.append([html.escape(kind), *cells, html.escape(ROLES.get(kind, ""))])
    return table(["reference", f"basis [{ci}] (answers)", f"random [{ci}] (answers)",
                  f"basis − random [{ci}]", "perm. p", f"odds ratio [{ci}]", "role"], rows)


def _difficulty_sentence(found: QueryDifficulty, alpha: float) -> str:
    d, size = found.difference, found.standardized_difference
    if d.estimate is None or d.ci[0] is None or d.ci[1] is None:
        return f"The query gaps cannot be compared: {html.escape(d.method)}."
    differ = (d.ci[0] > 0 or d.ci[1] < 0) and d.p_value is not None and d.p_value < alpha
    easier = "basis" if d.estimate > 0 else "random"
    if differ:
        return (f"The query pairs differ: {easier} directions' pairs had the larger gap (easier "
                f"to tell apart) by {fmt(abs(d.estimate))} SD of activation, a standardized "
                f"difference of {fmt(size)}; part of an accuracy difference may come from "
                "easier queries rather than better visualizations.")
    return (f"No difference in query difficulty was detected (basis − random "
            f"{fmt(d.estimate)}, standardized {fmt(size)}); the interval bounds how large an "
            "undetected difference could be.")


def _difficulty(found: QueryDifficulty, ci: str, alpha: float) -> list[str]:
    d = found.difference
    return [
        "<h2>Query difficulty</h2>",
        "<p>Each trial's query gap is (q+ − q−) divided by the direction's activation SD over "
        "the image set: how far apart the two centre images are for that direction. A larger "
        "gap is an easier trial, so the conditions must be compared on similar gaps.</p>",
        table(["condition", "mean gap", "SD over directions", "directions"], [
            [name, fmt(g.mean), fmt(g.sd), str(g.n_directions)]
            for name, g in found.by_condition.items()]),
        table(["statistic", "estimate", ci, "p", "method"], [
            ["basis − random mean gap", fmt(d.estimate), ci_text(d.ci), fmt(d.p_value),
             html.escape(d.method)],
            ["standardized (Cohen's d)", fmt(found.standardized_difference), "", "", ""]]),
        f"<p>{_difficulty_sentence(found, alpha)}</p>",
    ]


def afc_sections(result: AnalysisResult, ci: str) -> list[str]:
    """Accuracy per condition × reference kind, and the query-difficulty check."""
    parts = [f"<h2>Accuracy by condition × reference (chance {fmt(result.chance)})</h2>",
             "<p>Share of trials on which the query that belongs with the direction's max "
             "references was chosen; intervals from the stimulus bootstrap over directions, "
             "p-values from the permutation test, odds ratios from the two-way clustered "
             "GLM.</p>",
             _by_reference(result, ci)]
    if result.secondary.query_difficulty is not None:
        parts += _difficulty(result.secondary.query_difficulty, ci, result.settings["alpha"])
    return parts
