"""Numbers from URLs and forms, read so that crafted text gets a 4xx instead of a server error.

`str.isdigit` accepts "²", "¹" or "①", which `int` then refuses; and a URL may carry an id larger
than any database integer, which the driver refuses. Both shapes stop here.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter
from werkzeug.routing.map import Map

MAX_ID = 2**31 - 1  # ids are INTEGER columns, 32-bit on PostgreSQL


def is_plain_number(raw: str) -> bool:
    """ASCII digits only: `str.isdigit` also accepts "²" or "①", which `int` refuses."""
    return raw.isascii() and raw.isdigit()


def parse_id(raw: str) -> int | None:
    """The text as a database id, or None when it cannot be one (not digits, or too large)."""
    raw = raw.strip()
    return int(raw) if is_plain_number(raw) and int(raw) <= MAX_ID else None


class DatabaseId(IntegerConverter):
    """The `int` converter of every route, bounded to what an id column holds: a larger number
    in a URL is simply not found (404), instead of overflowing the database driver."""

    def __init__(self, url_map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(url_map, fixed_digits, min, max, signed)
