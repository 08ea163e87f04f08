"""What a 2-AFC trial of a direction can show, read from the store.

A direction's references come in two kinds: `synthetic` (its renders of +v and −v, the stimuli
of sign max and min, in replicate order) and `natural` (its most and least activating photos,
the exemplars with role reference, in rank order). Its queries are the exemplars with role
query: the t-th max query (in rank order) is paired with the t-th min query, as the exemplar
selection chose them, so pair t is the same two photos whichever references are shown.

A 2-AFC study names each direction by its first max render (the lowest replicate), so the
study's stimuli, a trial's `stimulus_id` and the ratings export identify directions the way
they identify images in a rating study.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.models import (
    Direction,
    Exemplar,
    ExemplarRole,
    ReferenceKind,
    Sign,
    Stimulus,
)

SHOWN_REFERENCES = (ReferenceKind.SYNTHETIC, ReferenceKind.NATURAL)  # kinds with images a side


@dataclass(frozen=True)
class Sides:
    """Store images (sha256) of one kind of reference, max side and min side, in order."""

    max_images: tuple[str, ...]
    min_images: tuple[str, ...]

    @property
    def count(self) -> int:
        """How many references both sides have (a catch trial's query index stays below it)."""
        return min(len(self.max_images), len(self.min_images))


@dataclass(frozen=True)
class QueryPair:
    """Task t of a direction: its t-th max and min query photos and their activations."""

    max_image: str
    min_image: str
    max_activation: float
    min_activation: float


@dataclass(frozen=True)
class DirectionItems:
    """Everything a 2-AFC trial of one direction may show."""

    direction_id: int
    synthetic: Sides
    natural: Sides
    pairs: tuple[QueryPair, ...]

    def references(self, kind: str) -> Sides | None:
        """The references a trial of `kind` shows; None for `none`."""
        if kind == ReferenceKind.SYNTHETIC:
            return self.synthetic
        if kind == ReferenceKind.NATURAL:
            return self.natural
        return None


@dataclass(frozen=True)
class Shape:
    """How many query pairs and references of each kind a direction has (counts only)."""

    pairs: int
    synthetic: int
    natural: int

    def references(self, kind: str) -> int:
        return {ReferenceKind.SYNTHETIC: self.synthetic, ReferenceKind.NATURAL: self.natural}.get(
            ReferenceKind(kind), 0)


@dataclass(frozen=True)
class NamedDirection:
    """A direction of a job and the first max render that names it in a 2-AFC study."""

    stimulus_id: int
    direction_id: int
    job_id: int
    condition: str


def first_max_renders(db: Session, job_ids: Iterable[int]) -> list[NamedDirection]:
    """Each direction of the jobs that has a max render, named by its first one, in direction
    order."""
    first = (
        select(Stimulus.direction_id, func.min(Stimulus.replicate).label("replicate"))
        .join(Direction, Stimulus.direction_id == Direction.id)
        .where(Direction.job_id.in_(list(job_ids)), Stimulus.sign == Sign.MAX)
        .group_by(Stimulus.direction_id)
        .subquery()
    )
    rows = db.execute(
        select(Stimulus.id, Direction.id, Direction.job_id, Direction.kind)
        .join(Direction, Stimulus.direction_id == Direction.id)
        .join(first, (first.c.direction_id == Stimulus.direction_id)
              & (first.c.replicate == Stimulus.replicate))
        .where(Stimulus.sign == Sign.MAX)
        .order_by(Direction.id)
    ).all()
    return [NamedDirection(int(sid), int(did), int(job), str(kind))
            for sid, did, job, kind in rows]


def direction_items(db: Session, direction_ids: Iterable[int]) -> dict[int, DirectionItems]:
    """The references and query pairs of each direction (directions without any still appear,
    with empty sides and no pairs)."""
    ids = sorted(set(direction_ids))
    renders: dict[tuple[int, str], list[str]] = defaultdict(list)
    for did, sign, sha in db.execute(
        select(Stimulus.direction_id, Stimulus.sign, Stimulus.image_sha256)
        .where(Stimulus.direction_id.in_(ids))
        .order_by(Stimulus.direction_id, Stimulus.sign, Stimulus.replicate)
    ):
        renders[(did, sign)].append(sha)
    photos: dict[tuple[int, str, str], list[tuple[str, float]]] = defaultdict(list)
    for did, sign, role, sha, activation in db.execute(
        select(Exemplar.direction_id, Exemplar.sign, Exemplar.role, Exemplar.image_sha256,
               Exemplar.activation)
        .where(Exemplar.direction_id.in_(ids))
        .order_by(Exemplar.direction_id, Exemplar.sign, Exemplar.rank)
    ):
        photos[(did, sign, role)].append((sha, float(activation)))
    items = {}
    for did in ids:
        def side(sign: Sign, role: ExemplarRole, did: int = did) -> list[tuple[str, float]]:
            return photos[(did, sign, role)]

        pairs = tuple(
            QueryPair(high[0], low[0], high[1], low[1])
            for high, low in zip(side(Sign.MAX, ExemplarRole.QUERY),
                                 side(Sign.MIN, ExemplarRole.QUERY), strict=False)
        )
        items[did] = DirectionItems(
            direction_id=did,
            synthetic=Sides(tuple(renders[(did, Sign.MAX)]), tuple(renders[(did, Sign.MIN)])),
            natural=Sides(tuple(sha for sha, _ in side(Sign.MAX, ExemplarRole.REFERENCE)),
                          tuple(sha for sha, _ in side(Sign.MIN, ExemplarRole.REFERENCE))),
            pairs=pairs,
        )
    return items


def shapes(db: Session, direction_ids: Iterable[int]) -> dict[int, Shape]:
    """Counts of query pairs and references per direction, without reading image keys."""
    ids = sorted(set(direction_ids))
    renders = dict(((did, sign), int(n)) for did, sign, n in db.execute(
        select(Stimulus.direction_id, Stimulus.sign, func.count())
        .where(Stimulus.direction_id.in_(ids))
        .group_by(Stimulus.direction_id, Stimulus.sign)
    ))
    photos = dict(((did, sign, role), int(n)) for did, sign, role, n in db.execute(
        select(Exemplar.direction_id, Exemplar.sign, Exemplar.role, func.count())
        .where(Exemplar.direction_id.in_(ids))
        .group_by(Exemplar.direction_id, Exemplar.sign, Exemplar.role)
    ))

    def both(count: Mapping[Any, int], *key: int | str) -> int:
        """The smaller of the max and min sides' counts (key: direction id, then the sign, then
        any further key parts)."""
        did, rest = key[0], key[1:]
        return min(count.get((did, Sign.MAX, *rest), 0), count.get((did, Sign.MIN, *rest), 0))

    return {
        did: Shape(pairs=both(photos, did, ExemplarRole.QUERY), synthetic=both(renders, did),
                   natural=both(photos, did, ExemplarRole.REFERENCE))
        for did in ids
    }


QUERIES = "queries"


def missing(shape: Shape, reference_kinds: Iterable[str]) -> str | None:
    """What a direction lacks for a 2-AFC study showing `reference_kinds`: `queries` (no query
    pair), a reference kind (no such references on both sides), or None."""
    if shape.pairs == 0:
        return QUERIES
    for kind in reference_kinds:
        if kind in SHOWN_REFERENCES and shape.references(kind) == 0:
            return str(kind)
    return None


def pair_gaps(db: Session, direction_ids: Iterable[int]) -> dict[int, list[float | None]]:
    """Each direction's query pairs' standardized gaps, (q+ − q−) / its activation SD over the
    image set, by pair; None where the SD is unknown or not positive."""
    ids = sorted(set(direction_ids))
    sds = dict(db.execute(select(Direction.id, Direction.activation_sd)
                          .where(Direction.id.in_(ids))).all())
    ends: dict[tuple[int, str], list[float]] = defaultdict(list)
    for did, sign, activation in db.execute(
        select(Exemplar.direction_id, Exemplar.sign, Exemplar.activation)
        .where(Exemplar.direction_id.in_(ids), Exemplar.role == ExemplarRole.QUERY)
        .order_by(Exemplar.direction_id, Exemplar.sign, Exemplar.rank)
    ):
        ends[(did, sign)].append(float(activation))
    gaps = {}
    for did in ids:
        sd = sds.get(did)
        pairs = zip(ends[(did, Sign.MAX)], ends[(did, Sign.MIN)], strict=False)
        gaps[did] = [None if sd is None or not math.isfinite(sd) or sd <= 0
                     else (high - low) / sd for high, low in pairs]
    return gaps
