"""The 2-AFC session plan on plain data (hypothesis), and in the database under many starts."""

from __future__ import annotations

import random
import threading
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from annotate.afc_plan import AfcCandidate, AfcStudy, choose_items, least_used, plan_afc_session
from annotate.assign import Identity, StartRefused, start_session
from service.store.db import make_engine, unit_of_work
from service.store.models import Stimulus, Trial
from service.studies.afc_items import Shape
from tests.annotate.afc_support import make_afc_study
from tests.conftest import create_schema

KINDS = ("synthetic", "natural", "none")


def _candidates(n_basis: int, n_random: int, kinds: tuple[str, ...],
                loads: list[int]) -> list[AfcCandidate]:
    found, at = [], 0
    for condition, count, first in (("basis", n_basis, 0), ("random", n_random, 1000)):
        for sid in range(first, first + count):
            for kind in kinds:
                found.append(AfcCandidate(sid, condition, kind, loads[at % len(loads)]))
                at += 1
    return found


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(1, 3), st.integers(1, 20),
       st.lists(st.integers(0, 4), min_size=1, max_size=30), st.integers(0, 10**6))
def test_items_are_least_loaded_one_per_direction(n_basis: int, n_random: int, n_kinds: int,
                                                  wanted: int, loads: list[int],
                                                  seed: int) -> None:
    candidates = _candidates(n_basis, n_random, KINDS[:n_kinds], loads)
    chosen = choose_items(candidates, wanted, random.Random(seed))
    directions = [c.stimulus_id for c in chosen]
    assert len(directions) == len(set(directions)) == min(wanted, n_basis + n_random)
    taken = set(directions)
    for cell in {(c.condition, c.reference) for c in candidates}:
        picked = [c.load for c in chosen if (c.condition, c.reference) == cell]
        passed = [c.load for c in candidates if (c.condition, c.reference) == cell
                  and c.stimulus_id not in taken]
        if picked and passed:
            assert max(picked) <= min(passed), cell


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.integers(0, 10**6))
def test_cells_are_balanced_when_every_cell_can_fill(n_kinds: int, wanted: int,
                                                     seed: int) -> None:
    candidates = _candidates(40, 40, KINDS[:n_kinds], [0])
    chosen = choose_items(candidates, wanted, random.Random(seed))
    per_cell = Counter((c.condition, c.reference) for c in chosen)
    counts = [per_cell[(condition, kind)] for condition in ("basis", "random")
              for kind in KINDS[:n_kinds]]
    assert sum(counts) == wanted and max(counts) - min(counts) <= 1


@given(st.integers(1, 6), st.dictionaries(st.integers(0, 5), st.integers(0, 9)),
       st.integers(0, 10**6))
def test_the_least_used_pair(count: int, used: dict[int, int], seed: int) -> None:
    pick = least_used(count, used, random.Random(seed))
    assert 0 <= pick < count
    assert used.get(pick, 0) == min(used.get(i, 0) for i in range(count))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6))
def test_starts_one_after_another_fill_the_study_in_the_fewest_sessions(seed: int) -> None:
    """8 directions × 2 reference kinds × k=2 is 32 answers: 8 full sessions of 4, never a
    ninth short one left with two items of one direction."""
    rng, loads, sessions = random.Random(seed), Counter[tuple[int, str]](), []
    while True:
        open_items = [AfcCandidate(sid, "basis" if sid < 4 else "random", kind, loads[sid, kind])
                      for sid in range(8) for kind in KINDS[:2] if loads[sid, kind] < 2]
        chosen = choose_items(open_items, 4, rng)
        if not chosen:
            break
        sessions.append(len(chosen))
        loads.update((c.stimulus_id, c.reference) for c in chosen)
    assert sessions == [4] * 8


def test_session_plan_practice_catch_and_pairs() -> None:
    shapes = {sid: Shape(pairs=3, synthetic=4, natural=2) for sid in range(10)}
    study = AfcStudy(("synthetic", "natural", "none"), shapes, check_item_id=77)
    candidates = [AfcCandidate(sid, "basis" if sid < 5 else "random", kind, 0)
                  for sid in range(10) for kind in study.reference_kinds]
    loads = {(sid, kind): {0: 1, 1: 1} for sid in range(10) for kind in study.reference_kinds}
    for seed in range(30):
        plan = plan_afc_session(candidates, study, loads, list(range(10)), 6, 3, 2,
                                random.Random(seed))
        kinds = [t.kind for t in plan]
        assert kinds[:2] == ["practice"] * 2 and kinds.count("catch") == 2
        assert [t.query_task for t in plan[:2]] == [0, 1]
        items = [t for t in plan if t.kind == "stimulus"]
        assert {t.query_task for t in items} == {2}  # the one pair nobody answered yet
        catch = [t for t in plan if t.kind == "catch"]
        assert {t.stimulus_id for t in catch}.isdisjoint({t.stimulus_id for t in items})
        for trial in catch:
            assert trial.catch_item_id == 77 and trial.reference in ("synthetic", "natural")
            assert trial.query_task < shapes[trial.stimulus_id].references(trial.reference)
        assert all(t.max_position in (0, 1) for t in plan)


def test_a_study_of_no_references_has_no_catch_trials() -> None:
    study = AfcStudy(("none",), {1: Shape(2, 0, 0)}, check_item_id=5)
    plan = plan_afc_session([AfcCandidate(1, "basis", "none", 0)], study, {}, [1], 4, 1, 0,
                            random.Random(1))
    assert [t.kind for t in plan] == ["stimulus"]


def test_thirty_annotators_at_once_never_exceed_k(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=20, max_overflow=40)
    create_schema(engine)
    k = 2
    info = make_afc_study(engine, reference_kinds=("synthetic", "natural"), k=k, trials=4,
                          catch_every=2, practice=1, n_basis=4, n_random=4, pairs=3)
    barrier = threading.Barrier(30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def annotator(number: int) -> None:
        barrier.wait()
        try:
            start_session(engine, info.slug, Identity("prolific", f"crowd{number}"))
            result = "started"
        except StartRefused as exc:
            result = exc.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=annotator, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # 8 directions × 2 references × k = 32 items' answers, 4 a session, one direction each
    assert Counter(outcomes) == Counter({"started": 8, "full": 22})
    with unit_of_work(engine) as db:
        rows = db.execute(select(Trial.session_id, Trial.stimulus_id, Trial.reference,
                                 Trial.query_task, Stimulus.direction_id)
                          .join(Stimulus, Trial.stimulus_id == Stimulus.id)
                          .where(Trial.kind == "stimulus")).all()
    per_item = Counter((sid, ref) for _, sid, ref, _, _ in rows)
    assert sorted(per_item.values()) == [k] * 16
    per_session = Counter((session, direction) for session, _, _, _, direction in rows)
    assert max(per_session.values()) == 1  # nobody sees a direction twice
    per_pair = Counter((sid, ref, task) for _, sid, ref, task, _ in rows)
    assert max(per_pair.values()) == 1  # an item's k answers are on k different pairs
    engine.dispose()
