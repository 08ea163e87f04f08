"""Which items a session sees, and in what order: pure functions, no database.

Kept apart from the database code (`annotate/assign.py`) so the properties that make a study
valid — balance between conditions, no repeats, random interleaving, catch items spread through
the session — can be checked exhaustively with hypothesis on plain data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from service.featurevis.kinds import DirectionKind
from service.store.models import CatchKind, TrialKind


@dataclass(frozen=True)
class Candidate:
    """A stimulus this annotator may still rate, with its current load (rated + reserved)."""

    stimulus_id: int
    condition: DirectionKind
    load: int


@dataclass(frozen=True)
class CatchChoice:
    catch_item_id: int
    kind: CatchKind


@dataclass(frozen=True)
class PlannedTrial:
    """A trial to insert; the last three are set on 2-AFC trials only (see `annotate.afc_plan`)."""

    kind: TrialKind
    stimulus_id: int | None = None
    catch_item_id: int | None = None
    reference: str | None = None
    query_task: int | None = None
    max_position: int | None = None


def _least_loaded(candidates: Sequence[Candidate], count: int, rng: random.Random) -> list[int]:
    """The `count` candidates with the smallest load, ties broken at random."""
    keyed = sorted(candidates, key=lambda c: (c.load, rng.random()))
    return [c.stimulus_id for c in keyed[:count]]


def balanced_counts(available_basis: int, available_random: int, wanted: int,
                    rng: random.Random) -> tuple[int, int]:
    """How many basis and random items to take: as many as possible up to `wanted`, differing
    by at most one, the odd one out going to a random condition when both could take it."""
    common = min(available_basis, available_random, wanted // 2)
    basis = random_ = common
    if basis + random_ < wanted:
        can_basis = available_basis > basis
        can_random = available_random > random_
        if can_basis and can_random:
            if rng.random() < 0.5:
                basis += 1
            else:
                random_ += 1
        elif can_basis:
            basis += 1
        elif can_random:
            random_ += 1
    return basis, random_


def choose_stimuli(candidates: Sequence[Candidate], wanted: int, rng: random.Random) -> list[int]:
    """Least-loaded stimuli, conditions balanced, returned in a random interleaved order."""
    by_condition = {
        condition: [c for c in candidates if c.condition == condition]
        for condition in DirectionKind
    }
    basis, random_ = by_condition[DirectionKind.BASIS], by_condition[DirectionKind.RANDOM]
    n_basis, n_random = balanced_counts(len(basis), len(random_), wanted, rng)
    chosen = _least_loaded(basis, n_basis, rng) + _least_loaded(random_, n_random, rng)
    rng.shuffle(chosen)
    return chosen


def catch_count(n_stimuli: int, catch_every: int) -> int:
    """About one catch trial per `catch_every` stimuli, at least one when catch trials are on."""
    if catch_every <= 0 or n_stimuli == 0:
        return 0
    return max(1, round(n_stimuli / catch_every))


def _pick_catch(pool: Sequence[CatchChoice], count: int, rng: random.Random) -> list[CatchChoice]:
    """`count` catch items, half positive and half negative (odd one random), no repeats while
    the pool lasts."""
    positives = [c for c in pool if c.kind == CatchKind.POSITIVE]
    negatives = [c for c in pool if c.kind == CatchKind.NEGATIVE]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    both = [CatchKind.POSITIVE, CatchKind.NEGATIVE]
    kinds = both * (count // 2)
    if count % 2:
        kinds.append(rng.choice(both))
    rng.shuffle(kinds)
    picked: list[CatchChoice] = []
    used = dict.fromkeys(both, 0)
    for kind in kinds:
        source = positives if kind == CatchKind.POSITIVE else negatives
        if not source:
            source = negatives or positives
        picked.append(source[used[source[0].kind] % len(source)])
        used[source[0].kind] += 1
    return picked


def interleave(trials: Sequence[PlannedTrial], catch: Sequence[PlannedTrial],
               rng: random.Random) -> list[PlannedTrial]:
    """Insert one catch trial at a random place in each of len(catch) equal blocks of trials."""
    result = list(trials)
    n, c = len(trials), len(catch)
    # Insert from the last block backwards so earlier insertion points keep their meaning.
    for block in reversed(range(c)):
        start, end = block * n // c, (block + 1) * n // c
        result.insert(rng.randint(start, end), catch[block])
    return result


def interleave_catch(stimuli: Sequence[int], catch: Sequence[CatchChoice],
                     rng: random.Random) -> list[PlannedTrial]:
    """Insert one catch item at a random place in each of len(catch) equal blocks of stimuli."""
    return interleave([PlannedTrial(TrialKind.STIMULUS, stimulus_id=s) for s in stimuli],
                      [PlannedTrial(TrialKind.CATCH, catch_item_id=c.catch_item_id)
                       for c in catch], rng)


def plan_session(candidates: Sequence[Candidate], trials_per_session: int, catch_every: int,
                 practice_count: int, catch_pool: Sequence[CatchChoice],
                 rng: random.Random) -> list[PlannedTrial]:
    """The whole ordered trial list of a new session: practice first, then the rated trials.

    Practice items come from the catch pool, preferring items not used as catch trials in the
    same session, because they are shown for training and must not be in the study.
    """
    stimuli = choose_stimuli(candidates, trials_per_session, rng)
    n_catch = catch_count(len(stimuli), catch_every) if catch_pool else 0
    catch = _pick_catch(catch_pool, n_catch, rng)
    used = {c.catch_item_id for c in catch}
    spare = [c for c in catch_pool if c.catch_item_id not in used]
    practice_source = list(spare if len(spare) >= practice_count else catch_pool)
    practice_items = _pick_catch(practice_source, practice_count, rng) if practice_source else []
    practice = [PlannedTrial(TrialKind.PRACTICE, catch_item_id=c.catch_item_id)
                for c in practice_items]
    return practice + interleave_catch(stimuli, catch, rng)
