"""PNGs an annotation-site process keeps in memory, by what they show.

A stored PNG is addressed by its sha256 and never changes, and a composed 2-AFC picture is
determined by the images it shows and their order, so both can be kept for as long as memory
allows and served without reading the database's image bytes again. Each process keeps its own
cache (gunicorn workers share nothing); the least recently used PNGs go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

CACHE_BYTES = 64 * 1024 * 1024  # PNGs kept per process


class PngCache:
    """PNGs by what they show, least recently used dropped beyond `limit` bytes; safe to
    share between a process' threads."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._kept: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], make: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        made = make()  # outside the lock: reading or composing takes milliseconds
        with self._lock:
            if key not in self._kept:
                self._kept[key] = made
                self._bytes += len(made)
            while self._bytes > self.limit and len(self._kept) > 1:
                _, dropped = self._kept.popitem(last=False)
                self._bytes -= len(dropped)
        return made

