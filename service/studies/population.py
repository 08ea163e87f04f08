"""People and the machine annotator are two populations that never share a count: a study's k,
its fullness and its progress are people's; the machine annotator's sessions are capped by k
among its own sessions and reported apart."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from service.store.models import Annotator, AnnotatorSource


def of_population(machine: bool) -> ColumnElement[bool]:
    """The condition on `annotators` (joined) that keeps the machine annotator's rows, or
    people's."""
    if machine:
        return Annotator.source == AnnotatorSource.MACHINE
    return Annotator.source != AnnotatorSource.MACHINE
