from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from annotate.assign import Identity, StartRefused, start_session
from service.store.db import make_engine, unit_of_work, utcnow
from service.store.models import AnnotationSession, Annotator, CatchItem, Image, Rating, Trial
from tests.annotate.conftest import make_study
from tests.conftest import create_schema


def _trials(engine: Engine, token: str) -> list[Trial]:
    with unit_of_work(engine) as db:
        session = db.scalars(
            select(AnnotationSession).where(AnnotationSession.token == token)
        ).one()
        return list(db.scalars(select(Trial).where(Trial.session_id == session.id)
                               .order_by(Trial.position)))


def _rate_all(engine: Engine, token: str) -> None:
    with unit_of_work(engine) as db:
        session = db.scalars(
            select(AnnotationSession).where(AnnotationSession.token == token)
        ).one()
        for trial in session.trials:
            db.add(Rating(trial_id=trial.id, interpretable=True, confidence=3, rt_ms=500))
        session.status = "completed"


def test_session_plan_in_the_database(engine: Engine) -> None:
    info = make_study(engine, n_basis=5, n_random=5, trials=7, catch_every=3, practice=2)
    trials = _trials(engine, start_session(engine, info.slug, Identity("prolific", "p1")))
    kinds = [t.kind for t in trials]
    assert kinds[:2] == ["practice", "practice"]
    assert kinds.count("catch") == 2 and kinds.count("stimulus") == 7
    basis = sum(t.stimulus_id in info.stimulus_ids["basis"] for t in trials)
    random_ = sum(t.stimulus_id in info.stimulus_ids["random"] for t in trials)
    assert abs(basis - random_) <= 1
    catch_and_practice = {t.catch_item_id for t in trials if t.catch_item_id is not None}
    assert len(catch_and_practice) == 4  # no catch item shown twice in a session
    with unit_of_work(engine) as db:
        sizes = set(db.execute(select(Image.width, Image.height)
                               .join(CatchItem, CatchItem.image_sha256 == Image.sha256)).all())
    assert sizes == {(32, 32)}
    tokens = [t.token for t in trials]
    assert len(set(tokens)) == len(tokens) and all(len(t) == 32 for t in tokens)


def test_items_stop_at_k_and_annotators_never_repeat(engine: Engine) -> None:
    info = make_study(engine, n_basis=3, n_random=3, k=2, trials=4, catch_every=0, practice=0)
    starts = 0
    while True:
        try:
            token = start_session(engine, info.slug, Identity("prolific", f"p{starts}"))
        except StartRefused as exc:
            assert exc.reason == "full"
            break
        starts += 1
        _rate_all(engine, token)
        assert starts < 20
    with unit_of_work(engine) as db:
        per_item = Counter(db.scalars(select(Trial.stimulus_id).where(Trial.kind == "stimulus")))
        per_session = Counter(db.execute(select(Trial.session_id, Trial.stimulus_id)).all())
    assert set(per_item.values()) == {2}  # every item got exactly k, none more
    assert max(per_session.values()) == 1


def test_fewest_ratings_first(engine: Engine) -> None:
    info = make_study(engine, n_basis=4, n_random=4, k=5, trials=4, catch_every=0, practice=0)
    first = {t.stimulus_id for t in _trials(engine, start_session(
        engine, info.slug, Identity("prolific", "a")))}
    second = {t.stimulus_id for t in _trials(engine, start_session(
        engine, info.slug, Identity("prolific", "b")))}
    assert first.isdisjoint(second) and len(first | second) == 8


def test_reservations_expire_and_items_return(engine: Engine) -> None:
    info = make_study(engine, n_basis=2, n_random=2, k=1, trials=4, catch_every=0, practice=0)
    t0 = utcnow()
    start_session(engine, info.slug, Identity("prolific", "slow"), now=t0,
                  reservation=timedelta(minutes=30))
    with pytest.raises(StartRefused):
        start_session(engine, info.slug, Identity("prolific", "early"),
                      now=t0 + timedelta(minutes=5))
    later = start_session(engine, info.slug, Identity("prolific", "late"),
                          now=t0 + timedelta(minutes=31))
    assert len([t for t in _trials(engine, later) if t.kind == "stimulus"]) == 4


def test_returning_person_gets_the_same_session(engine: Engine) -> None:
    info = make_study(engine)
    token = start_session(engine, info.slug, Identity("mturk", "W9", assignment_id="A9"))
    assert start_session(engine, info.slug, Identity("mturk", "W9", assignment_id="A9")) == token
    _rate_all(engine, token)
    with pytest.raises(StartRefused) as refused:
        start_session(engine, info.slug, Identity("mturk", "W9", assignment_id="A9"))
    assert refused.value.reason == "already_done"


def test_fifty_annotators_at_once_never_exceed_k(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=20, max_overflow=40)
    create_schema(engine)
    k = 3
    info = make_study(engine, n_basis=10, n_random=10, k=k, trials=6, catch_every=3, practice=1)
    barrier = threading.Barrier(50)
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

    threads = [threading.Thread(target=annotator, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert Counter(outcomes) == Counter({"started": 10, "full": 40})
    with unit_of_work(engine) as db:
        per_item = Counter(db.scalars(select(Trial.stimulus_id).where(Trial.kind == "stimulus")))
        catch_items = db.scalars(select(CatchItem.source)).all()
    assert sorted(per_item.values()) == [k] * 20
    assert len(catch_items) == len(set(catch_items))  # created once, under the lock
    engine.dispose()


def test_refused_start_writes_nothing(engine: Engine) -> None:
    info = make_study(engine, n_basis=1, n_random=1, k=1, trials=2, catch_every=0, practice=0)
    _rate_all(engine, start_session(engine, info.slug, Identity("prolific", "first")))
    with unit_of_work(engine) as db:
        before = db.scalars(select(Annotator.external_id)).all()
    with pytest.raises(StartRefused) as refused:
        start_session(engine, info.slug, Identity("prolific", "late"))
    assert refused.value.reason == "full"
    with unit_of_work(engine) as db:
        assert db.scalars(select(Annotator.external_id)).all() == before == ["first"]
