"""Which 2-AFC trials a session gets, and in what order: pure functions, no database.

An item of a 2-AFC study is a direction shown with one reference kind; it needs k answers, as an
image of a rating study does. A session takes the least-answered items (answered + reserved),
balanced over the cells condition × reference kind (counts within one of each other while the
cells last), and never two items of one direction: a person who saw a direction's natural
references would bring that knowledge to its synthetic trial. Each item gets the query pair of
its direction and reference kind that has the fewest answers and reservations so far, so the k
answers of an item spread over its pairs; which centre position shows the max query is drawn
per trial. Catch trials (IMI's) show a direction's references and take both queries from them,
at one reference index; practice trials show drawn examples (`annotate.afc_examples`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from annotate.trial_plan import PlannedTrial, catch_count, interleave
from service.store.models import ReferenceKind, TrialKind
from service.studies.afc_items import SHOWN_REFERENCES, Shape

POSITIONS = 2  # the two centre places, 0 first in reading order


@dataclass(frozen=True)
class AfcCandidate:
    """An item this annotator may still answer, with its load (answered + reserved)."""

    stimulus_id: int  # names the direction
    condition: str
    reference: str
    load: int


@dataclass(frozen=True)
class AfcStudy:
    """What planning needs to know of a study beyond its candidates."""

    reference_kinds: tuple[str, ...]
    shapes: Mapping[int, Shape]  # stimulus id → the direction's counts
    check_item_id: int | None  # the reference check catch item; None: no catch trials


def choose_items(candidates: Sequence[AfcCandidate], wanted: int,
                 rng: random.Random) -> list[AfcCandidate]:
    """Up to `wanted` items, least-loaded first, cells taken in turn (in an order drawn once),
    at most one item per direction; returned in a random order.

    Among items of equal load, those of directions with more items still open come first: the
    directions then fill evenly, so a study's last sessions are not left with a few directions'
    items that no session may take more than one of (which would need more, shorter sessions).
    """
    open_items = Counter(c.stimulus_id for c in candidates)
    cells: dict[tuple[str, str], list[AfcCandidate]] = {}
    for candidate in sorted(candidates, key=lambda c: (c.load, -open_items[c.stimulus_id],
                                                       rng.random())):
        cells.setdefault((candidate.condition, candidate.reference), []).append(candidate)
    order = sorted(cells)
    rng.shuffle(order)
    chosen: list[AfcCandidate] = []
    taken: set[int] = set()
    while len(chosen) < wanted:
        progress = False
        for cell in order:
            queue = cells[cell]
            while queue and queue[0].stimulus_id in taken:
                queue.pop(0)
            if queue and len(chosen) < wanted:
                item = queue.pop(0)
                chosen.append(item)
                taken.add(item.stimulus_id)
                progress = True
        if not progress:
            break
    rng.shuffle(chosen)
    return chosen


def least_used(count: int, used: Mapping[int, int], rng: random.Random) -> int:
    """The index in 0…count-1 with the fewest uses, ties broken at random."""
    return min(range(count), key=lambda index: (used.get(index, 0), rng.random()))


def _catch_trials(study: AfcStudy, n: int, spare: Sequence[int], chosen: Sequence[int],
                  rng: random.Random) -> list[PlannedTrial]:
    """`n` catch trials on directions this session does not otherwise show, when there are
    such (else on its own), each with one shown reference kind and one reference index."""
    kinds = [kind for kind in study.reference_kinds if kind in SHOWN_REFERENCES]
    if study.check_item_id is None or not kinds or n == 0:
        return []
    pool = list(spare) or list(chosen)
    rng.shuffle(pool)
    trials = []
    for index in range(n):
        stimulus_id = pool[index % len(pool)]
        kind = rng.choice(kinds)
        trials.append(PlannedTrial(
            TrialKind.CATCH, stimulus_id=stimulus_id, catch_item_id=study.check_item_id,
            reference=kind, query_task=rng.randrange(study.shapes[stimulus_id].references(kind)),
            max_position=rng.randrange(POSITIONS)))
    return trials


def plan_afc_session(candidates: Sequence[AfcCandidate], study: AfcStudy,
                     pair_loads: Mapping[tuple[int, str], Mapping[int, int]],
                     spare: Sequence[int],
                     trials_per_session: int, catch_every: int, practice_count: int,
                     rng: random.Random) -> list[PlannedTrial]:
    """The ordered trials of a new 2-AFC session: practice, then items with catch trials spread
    through them.

    Args:
        pair_loads: {(stimulus id, reference kind): {query pair: answers and reservations}}.
        spare: directions (stimulus ids) of the study this person has not seen, for catch
            trials; the session's own directions are used when there are none.
    """
    items = choose_items(candidates, trials_per_session, rng)
    trials = []
    for item in items:
        used = pair_loads.get((item.stimulus_id, item.reference), {})
        task = least_used(study.shapes[item.stimulus_id].pairs, used, rng)
        trials.append(PlannedTrial(TrialKind.STIMULUS, stimulus_id=item.stimulus_id,
                                   reference=item.reference, query_task=task,
                                   max_position=rng.randrange(POSITIONS)))
    chosen = [item.stimulus_id for item in items]
    unused = [sid for sid in spare if sid not in set(chosen)]
    catch = _catch_trials(study, catch_count(len(items), catch_every), unused, chosen, rng)
    practice = [PlannedTrial(TrialKind.PRACTICE, reference=ReferenceKind.SYNTHETIC,
                             query_task=index, max_position=rng.randrange(POSITIONS))
                for index in range(practice_count)]
    return practice + interleave(trials, catch, rng)
