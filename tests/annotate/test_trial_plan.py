"""Properties of the trial plan, on plain data (no database), checked with hypothesis."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.trial_plan import (
    Candidate,
    CatchChoice,
    balanced_counts,
    catch_count,
    choose_stimuli,
    plan_session,
)

candidates_st = st.lists(
    st.tuples(st.sampled_from(["basis", "random"]), st.integers(0, 4)), max_size=40
).map(lambda rows: [Candidate(i, cond, load) for i, (cond, load) in enumerate(rows)])
pool_st = st.lists(st.sampled_from(["positive", "negative"]), max_size=12).map(
    lambda kinds: [CatchChoice(1000 + i, kind) for i, kind in enumerate(kinds)]
)


@given(candidates_st, st.integers(1, 50), st.integers(0, 2**32))
def test_choice_is_balanced_without_repeats_and_least_loaded(
    candidates: list[Candidate], wanted: int, seed: int
) -> None:
    chosen = choose_stimuli(candidates, wanted, random.Random(seed))
    assert len(chosen) == len(set(chosen)) <= wanted
    by_id = {c.stimulus_id: c for c in candidates}
    n_basis = sum(by_id[s].condition == "basis" for s in chosen)
    n_random = len(chosen) - n_basis
    assert abs(n_basis - n_random) <= 1
    few, many = sorted(sum(c.condition == cond for c in candidates) for cond in ("basis", "random"))
    # As many as balance allows: nothing left out that could have been added.
    best = min(wanted, 2 * few + (many > few))
    assert len(chosen) == best
    for condition in ("basis", "random"):
        taken = [by_id[s].load for s in chosen if by_id[s].condition == condition]
        left = [c.load for c in candidates
                if c.condition == condition and c.stimulus_id not in chosen]
        if taken and left:
            assert max(taken) <= min(left)


@given(st.integers(0, 30), st.integers(0, 30), st.integers(1, 60), st.integers(0, 2**32))
def test_balanced_counts(basis: int, random_: int, wanted: int, seed: int) -> None:
    b, r = balanced_counts(basis, random_, wanted, random.Random(seed))
    assert b <= basis and r <= random_ and b + r <= wanted and abs(b - r) <= 1


@settings(max_examples=200)
@given(candidates_st, st.integers(1, 40), st.integers(0, 12), st.integers(0, 5), pool_st,
       st.integers(0, 2**32))
def test_plan_has_practice_first_and_catch_spread(
    candidates: list[Candidate], wanted: int, every: int, practice: int,
    pool: list[CatchChoice], seed: int,
) -> None:
    plan = plan_session(candidates, wanted, every, practice, pool, random.Random(seed))
    kinds = [t.kind for t in plan]
    n_practice = kinds.count("practice")
    assert kinds[:n_practice] == ["practice"] * n_practice
    assert n_practice == (practice if pool else 0)
    rated = plan[n_practice:]
    stimuli = [t.stimulus_id for t in rated if t.kind == "stimulus"]
    assert len(stimuli) == len(set(stimuli))
    n_catch = kinds.count("catch")
    assert n_catch == (catch_count(len(stimuli), every) if pool else 0)
    if n_catch:
        # One catch item in each of n_catch consecutive blocks of stimuli.
        positions, seen = [], 0
        for trial in rated:
            if trial.kind == "catch":
                positions.append(seen)
            else:
                seen += 1
        for block, at in enumerate(positions):
            assert block * len(stimuli) // n_catch <= at <= (block + 1) * len(stimuli) // n_catch
        kinds_used = [next(c.kind for c in pool if c.catch_item_id == t.catch_item_id)
                      for t in rated if t.kind == "catch"]
        if {c.kind for c in pool} == {"positive", "negative"}:
            assert abs(kinds_used.count("positive") - kinds_used.count("negative")) <= 1


def test_order_is_random_per_session() -> None:
    candidates = [Candidate(i, "basis" if i % 2 else "random", 0) for i in range(20)]
    orders = {tuple(choose_stimuli(candidates, 20, random.Random(seed))) for seed in range(20)}
    assert len(orders) == 20
