"""Values a site process reuses for a while instead of reading them again: things that do not
change once made (a study's items, a direction's references and queries) but that every session
start or every picture request would otherwise read from the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.store.models import Study

V = TypeVar("V")
KEPT_SECONDS = 60.0  # how long a process reuses what it read: a change shows within a minute


class Kept(Generic[V]):
    """Values by key, each reused for `seconds` after it was made; safe to share between a
    process' threads (two threads may both make a missing value; either result is kept)."""

    def __init__(self, seconds: float = KEPT_SECONDS) -> None:
        self.seconds = seconds
        self._values: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V],
            keep: Callable[[V], bool] = lambda _value: True) -> V:
        """The value kept for `key`, or a new one from `make` (kept only when `keep` says so)."""
        now = time.monotonic()
        with self._lock:
            found = self._values.get(key)
        if found is not None and now - found[0] < self.seconds:
            return found[1]
        value = make()
        if keep(value):
            with self._lock:
                self._values[key] = (time.monotonic(), value)
                for stale in [k for k, (made, _) in self._values.items()
                              if now - made >= self.seconds]:
                    del self._values[stale]
        return value


def study_key(db: Session, study: Study) -> tuple[Hashable, ...]:
    """What a process keeps a study's values under: the database and the study's creation as
    well as its id, so that a process serving several databases, or one made afresh (the
    tests), never mixes them up."""
    return (str(db.get_bind().engine.url), study.id, study.slug, study.created_at)
