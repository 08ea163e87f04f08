"""A start counts the study's loads before it takes the lock and, under it, only the sessions
started since; together they must be every load there is."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Engine, func, select

from annotate import assign
from annotate.assign import Identity, StartRefused, start_session
from annotate.reservations import Loads, item_loads
from annotate.start_loads import study_loads, with_newer_sessions
from service.store.db import snapshot, unit_of_work, utcnow
from service.store.models import AnnotationSession, Rating, SessionStatus, Study, Trial
from tests.annotate.conftest import make_study


def _study(engine: Engine, slug: str) -> Study:
    with unit_of_work(engine) as db:
        return db.scalars(select(Study).where(Study.slug == slug)).one()


def _newest_session(engine: Engine) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(select(func.max(AnnotationSession.id))) or 0)


def test_a_start_sees_the_sessions_started_while_it_waited_for_the_lock(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    info = make_study(engine, n_basis=2, n_random=2, k=1, trials=4, catch_every=0, practice=0)
    counted_before_lock = assign._prepare

    def someone_else_starts_meanwhile(engine_, slug, identity, *rest):  # type: ignore[no-untyped-def]
        prepared = counted_before_lock(engine_, slug, identity, *rest)
        if identity.external_id == "late":
            start_session(engine, slug, Identity("prolific", "early"))
        return prepared

    monkeypatch.setattr(assign, "_prepare", someone_else_starts_meanwhile)
    with pytest.raises(StartRefused) as refused:
        start_session(engine, info.slug, Identity("prolific", "late"))
    assert refused.value.reason == "full"  # "early" holds all four items, each of k = 1
    with unit_of_work(engine) as db:
        per_item = Counter(db.scalars(select(Trial.stimulus_id).where(Trial.kind == "stimulus")))
    assert sorted(per_item.values()) == [1, 1, 1, 1]


def test_under_the_lock_only_newer_sessions_are_read(engine: Engine) -> None:
    info = make_study(engine, n_basis=3, n_random=3, k=5, trials=4, catch_every=0, practice=0)
    study = _study(engine, info.slug)
    for person in ("a", "b"):
        start_session(engine, info.slug, Identity("prolific", person))
    now = utcnow()
    with unit_of_work(engine) as db:
        before = study_loads(db, study, now)
    assert before.through == _newest_session(engine)
    assert sum(reserved for _, reserved in before.items.values()) == 8
    with unit_of_work(engine) as db:
        assert with_newer_sessions(db, Loads(through=before.through), study.id, now).items == {}
    start_session(engine, info.slug, Identity("prolific", "c"))
    with unit_of_work(engine) as db:
        newer = with_newer_sessions(db, Loads(through=before.through), study.id, now).items
        merged = with_newer_sessions(db, before, study.id, now)
        everything = study_loads(db, study, now)
    assert sorted(newer.values()) == [(0, 1)] * 4  # the third session's four trials alone
    assert merged.items == everything.items and merged.through is None


def test_loads_that_count_everything_cannot_be_extended(engine: Engine) -> None:
    info = make_study(engine, trials=2, catch_every=0, practice=0)
    with unit_of_work(engine) as db, pytest.raises(ValueError, match="every session"):
        with_newer_sessions(db, Loads(), _study(engine, info.slug).id, utcnow())


def _answer(engine: Engine, token: str, count: int | None = None) -> None:
    """Rate the session's first `count` trials (all of them, and complete it, without)."""
    with unit_of_work(engine) as db:
        session = db.scalars(
            select(AnnotationSession).where(AnnotationSession.token == token)).one()
        trials = sorted(session.trials, key=lambda t: t.position)
        for trial in trials[:count]:
            db.add(Rating(trial_id=trial.id, interpretable=True, confidence=3, rt_ms=500))
        if count is None:
            session.status = SessionStatus.COMPLETED


def _both_counts(engine: Engine, study: Study) -> tuple[Loads, dict]:
    now = utcnow()
    with unit_of_work(snapshot(engine)) as db:
        return study_loads(db, study, now), item_loads(db, study.id, now)


def test_completed_sessions_counted_once_still_count(engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, k=9, trials=4, catch_every=0, practice=0)
    study = _study(engine, info.slug)
    tokens = [start_session(engine, info.slug, Identity("prolific", f"p{n}")) for n in range(4)]
    _answer(engine, tokens[0])
    _answer(engine, tokens[1], 2)
    expected = [(6, 10), (6, 10), (10, 6)]  # (answers, reservations) at each count
    for step, (answers, reservations) in enumerate(expected):
        # the completed session is read, then kept; then another completes and is read too
        loads, everything = _both_counts(engine, study)
        assert loads.items == everything
        assert sum(done for done, _ in everything.values()) == answers
        assert sum(reserved for _, reserved in everything.values()) == reservations
        if step == 1:
            _answer(engine, tokens[2])
    _answer(engine, tokens[3], 1)
    loads, everything = _both_counts(engine, study)
    assert loads.items == everything and sum(d for d, _ in everything.values()) == 11


def test_a_count_from_an_older_snapshot_ignores_what_newer_ones_kept(engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, k=9, trials=4, catch_every=0, practice=0)
    study = _study(engine, info.slug)
    first, second = (start_session(engine, info.slug, Identity("prolific", p)) for p in "ab")
    _answer(engine, first)
    now = utcnow()
    with unit_of_work(snapshot(engine)) as older:
        before = item_loads(older, study.id, now)  # the snapshot is taken here
        _answer(engine, second)  # completed after it, and kept by a newer count
        newer, everything = _both_counts(engine, study)
        assert newer.items == everything != before
        assert study_loads(older, study, now).items == before
