"""The answer to the question fvlab exists for, decided by rules fixed in advance.

- `random_often_interpretable`: the lower bound of the random rate's interval exceeds both the
  yes-rate on negative catch items (what people say to noise) and `min_rate` (a floor for
  "often", default 0.2). Without negative catch items only the floor applies, and the
  explanation says so.
- `basis_more_often`: the interval of basis − random excludes 0 on the positive side AND the
  stimulus-level permutation p-value is below `alpha`.
- `finding_reproduced`: both, i.e. "random directions are often interpretable, but less often
  than basis directions".
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

    estimate, (lo, hi), p_value = difference["estimate"], difference["ci"], difference["p_value"]
    if estimate is None or lo is None or p_value is None:
        more = False
        sentences.append("The basis − random difference cannot be tested: "
                         f"{difference['method']}.")
    else:
        more = lo > 0 and p_value < alpha
        sentences.append(
            f"Basis directions were rated interpretable {_pct(rates['basis']['p'])} of the "
            f"time, {100 * estimate:+.1f} points versus random ({ci} {100 * lo:+.1f} to "
            f"{100 * hi:+.1f}, permutation p = {p_value:.3g}); basis directions "
            f"{'are' if more else 'are not shown to be'} interpretable more often "
            f"(criterion: interval above 0 and p < {alpha}).")
    reproduced = often and more
    outcome = "reproduced" if reproduced else "not reproduced"
    sentences.append("The finding \"random directions are often interpretable, but less often "
                     f"than basis directions\" is {outcome}.")
    return Verdict(random_often_interpretable=bool(often), basis_more_often=bool(more),
                   finding_reproduced=bool(reproduced), explanation=" ".join(sentences))
