"""Helpers for the researcher-console tests: an account, signing in, and reading CSRF tokens."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import Engine

from service.store.accounts import AccountError, create_user

RESEARCHER = "ada"
PASSWORD = "correct-horse-battery"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient, page: str = "/admin/login") -> str:
    """The CSRF token the page's forms carry for this browser."""
    match = CSRF_INPUT.search(client.get(page).text)
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def sign_in(client: FlaskClient, engine: Engine, name: str = RESEARCHER) -> str:
    """Create the researcher (once) and sign this browser in; returns its CSRF token."""
    try:
        create_user(engine, name, PASSWORD)
    except AccountError:
        pass  # already made by an earlier sign-in in the same test
    response = client.post("/admin/login", data={"name": name, "password": PASSWORD,
                                                 "csrf_token": csrf(client)})
    assert response.status_code == 302, response.text
    return csrf(client, "/admin/studies")
