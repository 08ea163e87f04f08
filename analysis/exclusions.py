"""Pre-declared exclusion rules: who is dropped, why, and how many.

The rules and their thresholds are fixed before anyone looks at the estimates (they are options
with stated defaults, recorded in results.json), and the report shows the result both with and
without them, so an exclusion can never be the reason a finding appears.

An annotator is excluded when any of these holds:
- catch: they answered more than `max_catch_fail` of their catch trials wrongly (rating task:
  not the `expected_answer`, yes on a negative item or no on a positive one; 2-AFC: the wrong
  query), given at least `min_catch_trials` catch trials;
- fast: more than `max_fast_share` of their answers came faster than `min_rt_ms`, by the page's
  clock (`rt_ms`) or, where the file has it, the server's (`server_rt_ms`): a page that reports
  a slow `rt_ms` for an instant answer is still caught;
- one-button: every one of their (at least `min_ratings_for_same`) answers is the same (rating:
  the same yes or no; 2-AFC: the same centre position); `None` turns the rule off;
- total time / instructions time (from the sessions export, only when one is given): a session
  shorter than `min_total_seconds` or longer than `max_total_seconds`, or less than
  `min_instructions_seconds` on the instructions.

Each task has its default rule set (`ExclusionRule.default`): the rating task's pre-registered
one, and for 2-AFC IMI's (Zimmermann, Klein & Brendel 2023): catch trials at least 80% right,
135–2,500 s in total, at least 15 s on the instructions, with the too-fast rule every fvlab
analysis applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from analysis.load import machine_rows
from analysis.tasks import AFC, RATING
from service.studies.ratings_file import CATCH_CONDITIONS, expected_answer

# Catch conditions an attentive annotator answers yes to (the rule lives in ratings_file).
_YES_EXPECTED = [condition.value for condition in CATCH_CONDITIONS if expected_answer(condition)]


@dataclass(frozen=True)
class ExclusionRule:
    """Thresholds of the rules; the defaults are the rating task's pre-registered ones."""

    max_catch_fail: float = 0.4
    min_catch_trials: int = 3
    min_rt_ms: int = 500
    max_fast_share: float = 0.5
    min_ratings_for_same: int | None = 10
    min_total_seconds: float | None = None
    max_total_seconds: float | None = None
    min_instructions_seconds: float | None = None

    @classmethod
    def default(cls, task: str = RATING) -> ExclusionRule:
        """The task's pre-declared rule set (2-AFC: IMI's, see the module's docstring)."""
        if task == AFC:
            return cls(max_catch_fail=0.2, min_catch_trials=1, min_ratings_for_same=None,
                       min_total_seconds=135, max_total_seconds=2500,
                       min_instructions_seconds=15)
        return cls()

    def time_rules(self) -> tuple[str, ...]:
        """The rules that need the sessions export, of those this rule set declares."""
        declared = {"total_time": (self.min_total_seconds, self.max_total_seconds),
                    "instructions_time": (self.min_instructions_seconds,)}
        return tuple(name for name, limits in declared.items()
                     if any(limit is not None for limit in limits))

    def rules(self, with_sessions: bool = False) -> tuple[str, ...]:
        """The names of the rules that run: the time rules only with a sessions export."""
        answers = RULES if self.min_ratings_for_same is not None else RULES[:2]
        return answers + (self.time_rules() if with_sessions else ())

    def describe(self, with_sessions: bool = False, server_clock: bool = False) -> str:
        """The rule in one sentence, for results.json and the report; it says which time rules
        did not run for want of a sessions export, and when the server's clock counted too."""
        clock = " (by the page's or the server's clock)" if server_clock else ""
        clauses = [
            f"fails more than {self.max_catch_fail:.0%} of their catch trials (when they saw "
            f"at least {self.min_catch_trials})",
            f"answers faster than {self.min_rt_ms} ms{clock} on more than "
            f"{self.max_fast_share:.0%} of trials",
        ]
        if self.min_ratings_for_same is not None:
            clauses.append(f"gives the same answer to all of at least "
                           f"{self.min_ratings_for_same} trials")
        timed = self._time_clauses()
        if with_sessions:
            clauses += timed
        joined = (" or ".join(clauses) if len(clauses) == 2 else
                  ", ".join(clauses[:-1]) + ", or " + clauses[-1])
        text = "exclude an annotator who " + joined
        if timed and not with_sessions:
            text += ("; the time rules (" + "; ".join(c.removeprefix("had ") for c in timed)
                     + ") did not run: no sessions export was given")
        return text

    def _time_clauses(self) -> list[str]:
        clauses = []
        low, high = self.min_total_seconds, self.max_total_seconds
        if low is not None or high is not None:
            bounds = [f"shorter than {low:g} s" if low is not None else "",
                      f"longer than {high:g} s" if high is not None else ""]
            clauses.append("had a session " + " or ".join(b for b in bounds if b) + " in total")
        if self.min_instructions_seconds is not None:
            clauses.append(f"had a session with less than {self.min_instructions_seconds:g} s "
                           "on the instructions")
        return clauses

    def as_dict(self) -> dict[str, float | int | None]:
        """The thresholds; time limits only when the rule set declares them."""
        out = asdict(self)
        for name in ("min_total_seconds", "max_total_seconds", "min_instructions_seconds"):
            if out[name] is None:
                del out[name]
        return out


RULES = ("catch", "fast", "one_button")  # rules on the answers; the time rules need sessions

# How often the default rules exclude an attentive annotator, measured by simulation: in crowds
# of `fvlab simulate`'s default design with no careless annotators (60 annotators, 400 stimuli,
# 5 ratings each, a catch trial in every 10, catch items answered right 95% of the time),
# FALSE_POSITIVE_COMMAND (60,000 simulated annotators) printed these shares of annotators
# excluded. The report quotes them; tests/analysis/test_exclusions.py keeps them true.
SIMULATED_FALSE_POSITIVES = {"catch": 0.0048, "fast": 0.0, "one_button": 0.0001, "total": 0.0049}
FALSE_POSITIVE_COMMAND = "fvlab power --careless 0 --studies 1000"
# The same for the 2-AFC task's default rules, in crowds of `fvlab simulate --task 2afc`'s
# default design (60 annotators, 400 directions × 3 reference kinds × 5 answers, a catch trial
# in every 10 answered right 95% of the time): the catch rule (at least 80% right) on about 10
# catch trials per annotator. Session times are not simulated, so the time rules are not in it.
SIMULATED_FALSE_POSITIVES_AFC = {"catch": 0.0364, "fast": 0.0, "total": 0.0364}
FALSE_POSITIVE_COMMAND_AFC = "fvlab power --task 2afc --careless 0 --studies 1000"


def quoted_false_positives(task: str) -> tuple[dict[str, float], str]:
    """The default rules' simulated false-positive rates for `task`, and the command that
    measured them."""
    if task == AFC:
        return SIMULATED_FALSE_POSITIVES_AFC, FALSE_POSITIVE_COMMAND_AFC
    return SIMULATED_FALSE_POSITIVES, FALSE_POSITIVE_COMMAND


@dataclass(frozen=True)
class Exclusions:
    """Excluded annotators with the rules each one broke, and the counts the rules looked at."""

    reasons: pd.DataFrame  # index annotator_id; a bool column per rule that ran
    # index annotator_id; n (ratings), n_catch, n_wrong (catch answers), n_fast, n_yes (yes, or
    # 2-AFC choices of position 1) and, with session times, shortest_total, longest_total,
    # shortest_instructions
    evidence: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    rule: ExclusionRule = field(default_factory=ExclusionRule, compare=False)

    @property
    def annotators(self) -> list[int]:
        return sorted(int(a) for a in self.reasons.index[self.reasons.any(axis=1)])

    def broken(self, annotator_id: int) -> list[str]:
        """The rules this annotator broke (empty when kept)."""
        row = self.reasons.loc[annotator_id]
        return [rule for rule in self.reasons.columns if bool(row[rule])]

    def why(self, annotator_id: int) -> str:
        """What the annotator did that broke the rules, in words, e.g. "2 of 3 catch trials
        wrong (more than 40%)"."""
        if self.evidence is None:
            return ", ".join(self.broken(annotator_id))
        e = cast(pd.Series, self.evidence.loc[annotator_id])  # one row: ids are unique
        rule = self.rule
        said = {
            "catch": f"{int(e['n_wrong'])} of {int(e['n_catch'])} catch trials wrong (more than "
                     f"{rule.max_catch_fail:.0%})",
            "fast": f"{int(e['n_fast'])} of {int(e['n'])} answers faster than {rule.min_rt_ms} ms "
                    f"(more than {rule.max_fast_share:.0%})",
            "one_button": f"the same answer to all {int(e['n'])} trials",
        }
        if "total_time" in self.reasons.columns:
            low, high = rule.min_total_seconds, rule.max_total_seconds
            short = low is not None and e["shortest_total"] < low
            said["total_time"] = (
                f"a session of {e['shortest_total']:.0f} s (less than {low:g} s)" if short else
                f"a session of {e['longest_total']:.0f} s (more than {high:g} s)")
        if "instructions_time" in self.reasons.columns:
            said["instructions_time"] = (
                f"{e['shortest_instructions']:.0f} s on the instructions (less than "
                f"{rule.min_instructions_seconds:g} s)")
        return "; ".join(said[name] for name in self.broken(annotator_id))

    def counts(self) -> dict[str, int]:
        """Annotators broken per rule (one may break several) and in total."""
        counts = {rule: int(self.reasons[rule].sum()) for rule in self.reasons.columns}
        counts["total"] = len(self.annotators)
        return counts


def _answers(ratings: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: is it a catch trial, was it answered wrongly, and the answer the one-button rule
    compares (rating: yes/no; 2-AFC: the centre position chosen)."""
    condition = ratings["condition"].to_numpy(dtype=object)
    is_catch = np.isin(condition, [c.value for c in CATCH_CONDITIONS])
    if task == AFC:
        wrong = is_catch & (ratings["correct"].to_numpy(dtype=np.int64) == 0)
        return is_catch, wrong, ratings["choice"].to_numpy(dtype=np.int64)
    yes = ratings["interpretable"].to_numpy(dtype=np.int64)
    return is_catch, is_catch & (yes != np.isin(condition, _YES_EXPECTED)), yes


def _too_fast(ratings: pd.DataFrame, limit: int) -> np.ndarray:
    """Faster than `limit` by the page's clock, or by the server's where the file has it."""
    # a machine annotator's rows have no page time: never too fast by that clock
    fast = (ratings["rt_ms"].astype("Float64") < limit).fillna(False).to_numpy(dtype=bool)
    if "server_rt_ms" in ratings.columns:
        server = ratings["server_rt_ms"].astype("Float64")
        fast |= (server < limit).fillna(False).to_numpy(dtype=bool)
    return fast


def session_times(ratings: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Per annotator of `ratings`, the extremes of their sessions' times (empty: unknown).

    Sessions are matched on `session_id`; a sessions export that shares no session with the
    ratings is refused (it is another study's), since applying its times would exclude nobody
    and say nothing. The machine annotator's sessions are left unknown: it reads no instructions
    and answers in no time, and the time rules are about people's attention.
    """
    mine = sessions[sessions["session_id"].isin(ratings["session_id"].dropna().unique())]
    if mine.empty:
        raise ValueError("the sessions export holds none of the ratings' sessions; export the "
                         "sessions of the same study")
    machine = ratings.loc[machine_rows(ratings), "annotator_id"].unique()
    mine = mine[~mine["annotator_id"].isin(machine)]
    seconds = pd.DataFrame({
        "annotator_id": mine["annotator_id"].to_numpy(dtype=np.int64),
        "total": mine["total_seconds"].astype("float64").to_numpy(),
        "instructions": mine["instructions_seconds"].astype("float64").to_numpy(),
    })
    return seconds.groupby("annotator_id").agg(
        shortest_total=("total", "min"), longest_total=("total", "max"),
        shortest_instructions=("instructions", "min"))


def find_exclusions(ratings: pd.DataFrame, rule: ExclusionRule, task: str = RATING,
                    sessions: pd.DataFrame | None = None) -> Exclusions:
    """Apply `rule` to every annotator; vectorised over ratings with one groupby.

    Args:
        ratings: validated rows of one task (2-AFC rows need `correct` and `choice`).
        rule: the thresholds; `rule.rules(...)` names the rules that run.
        task: `rating` or `2afc`: how a catch trial is scored and what one-button means.
        sessions: the sessions export, for the time rules; without it they do not run.
    """
    is_catch, wrong, answer = _answers(ratings, task)
    per = pd.DataFrame({
        "annotator_id": ratings["annotator_id"].to_numpy(dtype=np.int64),
        "catch": is_catch,
        "wrong": wrong,
        "fast": _too_fast(ratings, rule.min_rt_ms),
        "yes": answer,
    }).groupby("annotator_id").agg(
        n=("yes", "size"), n_catch=("catch", "sum"), n_wrong=("wrong", "sum"),
        n_fast=("fast", "sum"), n_yes=("yes", "sum"),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        fail_share = per["n_wrong"] / per["n_catch"]
    found = {
        "catch": (per["n_catch"] >= rule.min_catch_trials) & (fail_share > rule.max_catch_fail),
        "fast": per["n_fast"] / per["n"] > rule.max_fast_share,
    }
    if rule.min_ratings_for_same is not None:
        found["one_button"] = (per["n"] >= rule.min_ratings_for_same) & (
            (per["n_yes"] == 0) | (per["n_yes"] == per["n"]))
    if sessions is not None and rule.time_rules():
        per = per.join(session_times(ratings, sessions))
        low, high = rule.min_total_seconds, rule.max_total_seconds
        if "total_time" in rule.time_rules():  # a bound not declared never breaks
            found["total_time"] = (per["shortest_total"] < (-np.inf if low is None else low)) | (
                per["longest_total"] > (np.inf if high is None else high))
        if "instructions_time" in rule.time_rules():
            found["instructions_time"] = (per["shortest_instructions"]
                                          < rule.min_instructions_seconds)
    reasons = pd.DataFrame(found, index=per.index)
    return Exclusions(reasons=reasons.fillna(False).astype(bool), evidence=per, rule=rule)


def apply_exclusions(ratings: pd.DataFrame, exclusions: Exclusions) -> pd.DataFrame:
    """The ratings without the excluded annotators' rows."""
    drop = ratings["annotator_id"].isin(exclusions.annotators).to_numpy(dtype=bool)
    return ratings.loc[~drop].reset_index(drop=True)
