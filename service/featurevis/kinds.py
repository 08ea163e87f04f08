"""The engine's fixed value sets: direction kinds, random kinds and objectives.

They live here, with no import beyond the standard library, because the database stores them
too: `service.store.models` builds its check constraints from these enums, and a web process or
`fvlab analyze` can name them without loading torch. A new value is added here (with a
migration for the constraint), nowhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class DirectionKind(StrEnum):
    """The two conditions of the study: a one-hot channel, or a random unit vector."""

    BASIS = "basis"
    RANDOM = "random"


class RandomKind(StrEnum):
    """How a random direction is drawn: a Gaussian unit vector, or a row of a random rotation."""

    GAUSSIAN = "gaussian"
    ORTHOGONAL = "orthogonal"


class Objective(StrEnum):
    """What the optimizer maximizes: activation · direction, or Lucid's cosine-weighted dot."""

    DOT = "dot"
    COSSIM = "cossim"


E = TypeVar("E", bound=StrEnum)


def names(values: type[StrEnum]) -> str:
    """The values of an enum as a comma-separated list, for error messages."""
    return ", ".join(member.value for member in values)


def parse(values: type[E], value: str, what: str) -> E:
    """`value` as a member of `values`, or ValueError "unknown <what> …" listing the choices."""
    try:
        return values(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}; choices: {names(values)}") from None
