"""A kept value is reused until its time is up, and a value `keep` refuses is made again."""

from __future__ import annotations

import pytest

from annotate import kept as kept_module
from annotate.kept import Kept


def test_values_are_reused_for_their_time_then_made_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(kept_module.time, "monotonic", lambda: clock[0])
    kept: Kept[int] = Kept(seconds=60)
    made: list[str] = []

    def make(key: str) -> int:
        made.append(key)
        return len(made)

    assert kept.get("a", lambda: make("a")) == 1
    clock[0] += 59
    assert kept.get("a", lambda: make("a")) == 1
    assert kept.get("b", lambda: make("b")) == 2
    clock[0] += 1  # a's minute is up, b's is not
    assert kept.get("a", lambda: make("a")) == 3
    assert kept.get("b", lambda: make("b")) == 2
    assert made == ["a", "b", "a"]


def test_a_value_keep_refuses_is_made_every_time() -> None:
    kept: Kept[int] = Kept(seconds=60)
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return len(made)

    assert [kept.get("x", make, keep=lambda value: value > 2) for _ in range(4)] == [1, 2, 3, 3]
