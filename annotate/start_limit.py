"""How many sessions of one study a single client address may start within a window.

Every start reserves items, so a script posting the consent form in a loop could otherwise make
a study "full" in a fraction of a second. The count lives in the database (`session_starts`),
like the sign-in throttle's, so every web process on every machine shares it. It is read and
written inside the start's locked transaction: starts of a study are serialised there, so the
limit holds exactly however many requests arrive at once, and a refused start writes nothing.
Rows older than the window are deleted as new starts arrive (before the lock: nothing there
needs them), so no address is kept longer than the count needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from service.store.models import CLIENT_ADDRESS_MAX_CHARS, SessionStart


@dataclass(frozen=True)
class StartLimit:
    """At most `count` new sessions per study from one address within `seconds`."""

    count: int
    seconds: float

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def reached(self, db: Session, study_id: int, address: str, now: datetime) -> bool:
        started = db.scalar(select(func.count()).select_from(SessionStart).where(
            SessionStart.study_id == study_id,
            SessionStart.address == _stored(address),
            SessionStart.started_at > now - self.window,
        ))
        return int(started or 0) >= self.count

    def record(self, db: Session, study_id: int, address: str, now: datetime) -> None:
        """Count one start."""
        db.execute(insert(SessionStart), [
            {"study_id": study_id, "address": _stored(address), "started_at": now}])

    def forget_expired(self, db: Session, now: datetime) -> None:
        """Drop every study's rows older than the window (rows another transaction is already
        deleting are skipped, not waited for)."""
        expired = (select(SessionStart.id)
                   .where(SessionStart.started_at <= now - self.window)
                   .with_for_update(skip_locked=True))
        db.execute(delete(SessionStart).where(SessionStart.id.in_(expired)))


def _stored(address: str) -> str:
    return address[:CLIENT_ADDRESS_MAX_CHARS]
