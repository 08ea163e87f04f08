"""The annotator's browser is known by one signed cookie that holds only its session token.

Nothing else goes into the cookie (no study id, no position, no condition), and the token is
random, so the cookie tells an annotator nothing they could not see on the page.
"""

from __future__ import annotations

from flask import session as cookie
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from service.store.models import AnnotationSession
from service.store.tokens import is_token

COOKIE_KEY = "t"


def remember(token: str) -> None:
    """Tie this browser to the session, replacing any earlier one (a researcher trying their own
    study stays signed in to /admin).

    A browser-session cookie, not a permanent one: Flask re-sends a permanent cookie with a new
    expiry on every response, which would make image responses differ by the second they were
    served. People who return from elsewhere are recognised by their Prolific or MTurk id.
    """
    cookie[COOKIE_KEY] = token


def session_token() -> str | None:
    """The session token this browser's cookie holds, or None when it holds no well-formed one;
    hot routes match it in their own query instead of loading the session first."""
    token = cookie.get(COOKIE_KEY)
    return token if isinstance(token, str) and is_token(token) else None


def current_session(db: Session) -> AnnotationSession | None:
    """The session this browser holds, or None when the cookie is missing, forged or stale;
    with its study in the same query, which every page that finds the session reads."""
    token = session_token()
    if token is None:
        return None
    return db.scalars(select(AnnotationSession).options(joinedload(AnnotationSession.study))
                      .where(AnnotationSession.token == token)).first()
