"""Public tokens: the only names an annotator ever sees for sessions, trials and images.

They come from `secrets.token_urlsafe`, never from a counter or a hash of the item, so a token
says nothing about which item, condition or order it stands for, and two sessions showing the same
image get unrelated tokens.
"""

from __future__ import annotations

import re
import secrets

from service.store.models import TOKEN_LENGTH

# 24 random bytes are 32 URL-safe characters, exactly the width of the token columns.
TOKEN_BYTES = TOKEN_LENGTH * 3 // 4
TOKEN_PATTERN = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")


def new_token() -> str:
    """A fresh random token of `TOKEN_LENGTH` URL-safe characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: str) -> bool:
    """Whether `value` has the shape of a token (checked before any database lookup)."""
    return bool(TOKEN_PATTERN.match(value))
