"""Two SQLite writers at once wait for each other instead of failing with 'database is locked'."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from service.store.db import make_engine, unit_of_work
from service.store.models import Annotator, Base


def test_concurrent_inserts_do_not_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engines = [make_engine(url) for _ in range(2)]
    Base.metadata.create_all(engines[0])
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(index: int) -> None:
        start.wait()
        try:
            for n in range(150):
                with unit_of_work(engines[index]) as s:
                    s.add(Annotator(external_id=f"w{index}-{n}", source="lab"))
                with unit_of_work(engines[index], lock=True) as s:
                    count = s.scalar(select(func.count()).select_from(Annotator))
                    s.add(Annotator(external_id=f"r{index}-{n}-{count}", source="lab"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with unit_of_work(engines[0]) as s:
        assert s.scalar(select(func.count()).select_from(Annotator)) == 600
