"""Researcher accounts: passwords are stored only as salted hashes (werkzeug's scrypt)."""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy import Engine, select
from werkzeug.security import check_password_hash, generate_password_hash

from service.store.db import unit_of_work
from service.store.models import User

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """Bad name or password, or the name is taken."""


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no such user")


def create_user(engine: Engine, name: str, password: str) -> User:
    if not NAME_PATTERN.match(name):
        raise AccountError("user names are 1–100 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
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
