"""Assignment invariants under random histories of starts, answers and lapsed reservations.

Hypothesis draws a study and a history; after every step the database must show: no item over k
(ratings plus open reservations) except by ratings given on reservations that had lapsed (those
are stored all the same: a rating is never lost), no item twice in a session or for one person,
and basis and random within one of each other in every session.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from annotate.assign import Identity, StartRefused, start_session
from annotate.reservations import item_loads, reservation_lapsed
from service.store.db import make_engine, unit_of_work, utcnow
from service.store.models import AnnotationSession, Direction, Rating, Stimulus, Trial
from tests.annotate.conftest import make_study
from tests.conftest import create_schema

RESERVATION = timedelta(minutes=30)
steps_st = st.lists(
    st.tuples(st.sampled_from(["start", "answer", "lapse"]), st.integers(0, 5)),
    min_size=1, max_size=12,
)


def _answer(engine: Engine, person: int, now: datetime, late: Counter[int]) -> None:
    """Answer all of the person's open trials; count those answered after their lapse."""
    with unit_of_work(engine) as db:
        session = db.scalars(
            select(AnnotationSession).join(AnnotationSession.annotator)
            .where(AnnotationSession.status == "active")
            .where(AnnotationSession.annotator.has(external_id=f"p{person}"))
        ).first()
        if session is None:
            return
        lapsed = reservation_lapsed(session.reserved_until, now)
        for trial in session.trials:
            if trial.rating is None:
                if lapsed and trial.stimulus_id is not None:
                    late[trial.stimulus_id] += 1
                db.add(Rating(trial_id=trial.id, interpretable=False, confidence=1, rt_ms=700))
        session.status = "completed"


def _check(engine: Engine, study_id: int, k: int, now: datetime, late: Counter[int]) -> None:
    with unit_of_work(engine) as db:
        for (stimulus_id, reference), (done, reserved) in item_loads(db, study_id, now).items():
            assert reference is None  # a rating study's items are its images
            assert done + reserved <= k + late[stimulus_id]
        rows = db.execute(
            select(AnnotationSession.id, AnnotationSession.annotator_id, Trial.stimulus_id,
                   Direction.kind)
            .join(Trial, Trial.session_id == AnnotationSession.id)
            .join(Stimulus, Trial.stimulus_id == Stimulus.id)
            .join(Direction, Stimulus.direction_id == Direction.id)
        ).all()
    per_person = Counter((person, stimulus) for _, person, stimulus, _ in rows)
    assert max(per_person.values(), default=1) == 1
    balance = Counter((session, kind) for session, _, _, kind in rows)
    for session in {s for s, *_ in rows}:
        assert abs(balance[(session, "basis")] - balance[(session, "random")]) <= 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_basis=st.integers(0, 5), n_random=st.integers(1, 5), k=st.integers(1, 3),
       trials=st.integers(1, 6), steps=steps_st)
def test_invariants_hold_for_any_history(n_basis: int, n_random: int, k: int, trials: int,
                                         steps: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'p.db'}")
        create_schema(engine)
        info = make_study(engine, n_basis=n_basis, n_random=n_random, k=k, trials=trials,
                          catch_every=2, practice=1, size=32)
        # 32 px, not smaller: catch items must reach the stimuli's PNG lengths, and these
        # patterns at 16 px are incompressible (852 bytes, past any photo's reach)
        now = utcnow()
        late: Counter[int] = Counter()
        for action, person in steps:
            if action == "start":
                try:
                    identity = Identity("prolific", f"p{person}",
                                        external_session_id=f"s{person}")
                    start_session(engine, info.slug, identity, now=now,
                                  reservation=RESERVATION)
                except StartRefused as exc:
                    assert exc.reason in ("full", "already_done")
            elif action == "answer":
                _answer(engine, person, now, late)
            else:
                now += RESERVATION + timedelta(seconds=1)
            _check(engine, info.id, k, now, late)
        engine.dispose()
