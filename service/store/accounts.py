"""Researcher accounts and their sign-ins.

Passwords are stored only as salted hashes (werkzeug's scrypt). Each sign-in is a row of
`researcher_logins`; the browser's cookie carries a random token of it, of which only a hash is
stored, so the sign-in can be ended on the server (sign-out, password change, idle time)
whatever copies of the cookie exist, and the database alone cannot be used to sign in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Engine, delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from service.store.db import unit_of_work, utcnow
from service.store.models import ResearcherLogin, User

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD_LENGTH = 8
LOGIN_TOKEN_BYTES = 32
SEEN_RESOLUTION = timedelta(minutes=1)  # a sign-in's last use is rewritten at most this often


class AccountError(ValueError):
    """Bad name or password, or the name is taken."""


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no such user")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")


def create_user(engine: Engine, name: str, password: str) -> User:
    if not NAME_PATTERN.match(name):
        raise AccountError("user names are 1–100 letters, digits or _ . @ -")
    _check_password(password)
    with unit_of_work(engine) as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise AccountError(f"user {name!r} already exists")
        user = User(name=name, password_hash=generate_password_hash(password))
        session.add(user)
    return user


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user when name and password match, else None (same cost either way)."""
    if not NAME_PATTERN.match(name):  # no account has it; and PostgreSQL refuses NUL in text
        check_password_hash(_dummy_hash(), password)
        return None
    with unit_of_work(engine) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            check_password_hash(_dummy_hash(), password)
            return None
        return user if check_password_hash(user.password_hash, password) else None


def set_password(engine: Engine, name: str, password: str) -> None:
    """Give the account a new password and end every one of its sign-ins (a password is changed
    because it, or a signed-in browser, may be in someone else's hands)."""
    _check_password(password)
    with unit_of_work(engine) as session:
        user = session.scalar(select(User).where(User.name == name)) if NAME_PATTERN.match(
            name) else None
        if user is None:
            raise AccountError(f"no user {name!r}")
        user.password_hash = generate_password_hash(password)
        session.execute(delete(ResearcherLogin).where(ResearcherLogin.user_id == user.id))


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login(engine: Engine, user_id: int) -> str:
    """Record a new sign-in of the user; returns the token for the browser's cookie."""
    token = secrets.token_urlsafe(LOGIN_TOKEN_BYTES)
    now = utcnow()
    with unit_of_work(engine) as session:
        session.add(ResearcherLogin(user_id=user_id, token_hash=_hashed(token), created_at=now,
                                    last_seen_at=now))
    return token


def signed_in_user(engine: Engine, token: str, idle_limit: timedelta,
                   now: datetime | None = None) -> User | None:
    """The user of the live sign-in `token` names, which counts as its use; None when it was
    ended or never existed, or when it went unused for `idle_limit` (then it is deleted)."""
    moment = now or utcnow()
    with unit_of_work(engine) as session:
        found = session.execute(
            select(ResearcherLogin, User).join(User, ResearcherLogin.user_id == User.id)
            .where(ResearcherLogin.token_hash == _hashed(token))
        ).first()
        if found is None:
            return None
        login, user = found
        if login.last_seen_at <= moment - idle_limit:
            session.delete(login)
            return None
        if login.last_seen_at <= moment - SEEN_RESOLUTION:
            login.last_seen_at = moment
        return user


def end_login(engine: Engine, token: str) -> None:
    """End the sign-in `token` names (signing out); unknown tokens are ignored."""
    with unit_of_work(engine) as session:
        session.execute(delete(ResearcherLogin)
                        .where(ResearcherLogin.token_hash == _hashed(token)))
