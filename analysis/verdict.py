"""The answer to the question fvlab exists for, decided by rules fixed in advance.

- `random_often_interpretable`: the lower bound of the random rate's interval exceeds both the
  yes-rate on negative catch items (what people say to noise) and `min_rate` (a floor for
  "often", default 0.2). Without negative catch items only the floor applies, and the
  explanation says so.
- `basis_more_often`: the interval of basis − random excludes 0 on the positive side AND the
  stimulus-level permutation p-value is below `alpha`.
- `finding_reproduced`: both, i.e. "random directions are often interpretable, but less often
  than basis directions".

For the 2-AFC task (`verdict_afc`) the same three keys follow the task's rules, also fixed in
advance and printed in the report: random directions are interpretable when the lower bound of
their accuracy with synthetic references is above chance (0.5) and, when the study ran `none`
trials, above random directions' accuracy without references; basis directions are
interpretable more often when basis − random (synthetic references) has an interval above 0
and a permutation p-value below `alpha`. `natural` and `none` are controls.
"""

from __future__ import annotations

from collections.abc import Mapping

from analysis.results import Difference, Rate, Verdict
from service.studies.ratings_file import Condition


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def level_label(level: float) -> str:
    """A confidence level as people write it: 0.95 → "95%", 0.975 → "97.5%"."""
    return f"{100 * level:.10g}%"


AFC_RULES = (
    "Random directions are interpretable when the lower bound of their accuracy with synthetic "
    "references is above chance (50%) and, when the study ran trials without references, above "
    "random directions' accuracy without references.",
    "Basis directions are interpretable more often when the interval of basis − random accuracy "
    "with synthetic references lies above 0 and its permutation p-value is below alpha.",
    "The finding is reproduced when both hold; natural references (a positive control) and no "
    "references (a floor) are reported beside them, not decided on.",
)


def _more_often(difference: Difference, basis: Rate | None, *, alpha: float, ci: str,
                what: str) -> tuple[bool, str]:
    """Whether basis − random has an interval above 0 and p < alpha, with the sentence."""
    estimate, (lo, hi), p_value = difference["estimate"], difference["ci"], difference["p_value"]
    if estimate is None or lo is None or hi is None or p_value is None or basis is None:
        return False, f"The basis − random difference cannot be tested: {difference['method']}."
    more = lo > 0 and p_value < alpha
    return more, (
        f"Basis directions {what} {_pct(basis['p'])} of the time, {100 * estimate:+.1f} points "
        f"versus random ({ci} {100 * lo:+.1f} to {100 * hi:+.1f}, permutation p = "
        f"{p_value:.3g}); basis directions {'are' if more else 'are not shown to be'} "
        f"interpretable more often (criterion: interval above 0 and p < {alpha}).")


def verdict(
    rates: Mapping[str, Rate], difference: Difference, *, min_rate: float = 0.2,
    alpha: float = 0.05, level: float = 0.95,
) -> Verdict:
    """Decide both criteria and explain them in words.

    Args:
        rates: rate per condition (a condition without ratings may be missing).
        difference: basis − random with its interval and permutation p-value.
        min_rate: the floor for "often"; alpha: the permutation test's level.
        level: the confidence level the intervals were built at; the explanation names it.
    """
    ci = f"{level_label(level)} CI"
    random = rates.get(Condition.RANDOM)
    negative = rates.get(Condition.CATCH_NEGATIVE)
    random_lo = None if random is None else random["ci"][0]
    noise_rate = None if negative is None else negative["p"]
    sentences = []

    if random is None or random_lo is None:
        often = False
        sentences.append("The random-direction rate has no interval, so whether random "
                         "directions are often interpretable cannot be decided.")
    else:
        floor = max(min_rate, noise_rate) if noise_rate is not None else min_rate
        often = random_lo > floor
        against = (f"the yes-rate on noise catch images ({_pct(noise_rate)}) and the "
                   f"{_pct(min_rate)} floor" if noise_rate is not None else
                   f"the {_pct(min_rate)} floor (no negative catch items to compare with)")
        sentences.append(
            f"Random directions were rated interpretable {_pct(random['p'])} of the time "
            f"({ci} {_pct(random_lo)}–{_pct(random['ci'][1])}); the lower bound is "
            f"{'above' if often else 'not above'} {against}, so random directions "
            f"{'are' if often else 'are not shown to be'} often interpretable.")

    more, sentence = _more_often(difference, rates.get(Condition.BASIS), alpha=alpha, ci=ci,
                                 what="were rated interpretable")
    sentences.append(sentence)
    reproduced = often and more
    outcome = "reproduced" if reproduced else "not reproduced"
    sentences.append("The finding \"random directions are often interpretable, but less often "
                     f"than basis directions\" is {outcome}.")
    return Verdict(random_often_interpretable=bool(often), basis_more_often=bool(more),
                   finding_reproduced=bool(reproduced), explanation=" ".join(sentences))


def verdict_afc(
    per_reference: Mapping[str, Mapping[str, Rate]], difference: Difference, *,
    alpha: float = 0.05, level: float = 0.95, chance: float = 0.5,
) -> Verdict:
    """Decide the 2-AFC rules (`AFC_RULES`) and explain them in words.

    Args:
        per_reference: accuracy per reference kind and condition (kinds not run are absent).
        difference: basis − random accuracy with synthetic references, with its interval and
            permutation p-value.
        alpha: the permutation test's level; level: the intervals' confidence level.
        chance: the accuracy of guessing.
    """
    ci = f"{level_label(level)} CI"
    synthetic = per_reference.get("synthetic", {})
    random = synthetic.get(Condition.RANDOM)
    none = per_reference.get("none", {}).get(Condition.RANDOM)
    floor_none = None if none is None else none["p"]
    random_lo = None if random is None else random["ci"][0]
    sentences = []
    if random is None or random_lo is None:
        often = False
        sentences.append("Random directions' accuracy with synthetic references has no interval, "
                         "so whether they are interpretable cannot be decided.")
    else:
        floor = max(chance, floor_none) if floor_none is not None else chance
        often = random_lo > floor
        against = (f"chance ({_pct(chance)}) and their accuracy without references "
                   f"({_pct(floor_none)})" if floor_none is not None else
                   f"chance ({_pct(chance)}; the study ran no trials without references)")
        sentences.append(
            f"With synthetic references, annotators picked the right query for random directions "
            f"{_pct(random['p'])} of the time ({ci} {_pct(random_lo)}–{_pct(random['ci'][1])}); "
            f"the lower bound is {'above' if often else 'not above'} {against}, so random "
            f"directions {'are' if often else 'are not shown to be'} interpretable.")
    more, sentence = _more_often(difference, synthetic.get(Condition.BASIS), alpha=alpha, ci=ci,
                                 what="were predicted correctly")
    sentences.append(sentence)
    reproduced = often and more
    sentences.append("The finding \"random directions are interpretable, but less often than "
                     f"basis directions\" is {'reproduced' if reproduced else 'not reproduced'}.")
    return Verdict(random_often_interpretable=bool(often), basis_more_often=bool(more),
                   finding_reproduced=bool(reproduced), explanation=" ".join(sentences))
