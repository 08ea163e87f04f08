"""The exemplar pass: a job's image set scored on every direction of one layer, as one shard.

An `exemplars` shard reads every member of the job's image set in batches, scores each batch on
all the layer's directions with one truncated forward (`ExemplarScorer`), and keeps per direction
only the extremes that selection needs. Selection (`exemplar_selection.select`) then picks, per
direction, K references of each sign and the source-disjoint 2-AFC queries past them.

Writing is one transaction under the shard's row lock (`shards.open_shard`): the exemplar rows
of both signs with their activations, a store PNG of every member shown, each direction's
activation SD over the set and how many source-disjoint tasks it allows. A worker killed
mid-pass has written nothing, and a pass finished twice (after a lost lease) is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.generation import shards
from service.generation.shards import ClaimedShard
from service.store.db import unit_of_work
from service.store.images import store
from service.store.models import Direction, Exemplar, ExemplarRole, ImageSet, ImageSetMember, Sign

if TYPE_CHECKING:
    from service.featurevis import LoadedModel
    from service.featurevis.exemplar_selection import Selection

Check = Callable[[int, int], None]
INSERT_CHUNK = 1000  # exemplar rows per INSERT (SQLite caps the parameters of one statement)


@dataclass(frozen=True)
class ExemplarPick:
    """One exemplar row to write: a member (by position in its set) at one end of a direction."""

    position: int
    sign: str
    rank: int
    activation: float
    role: str


@dataclass(frozen=True)
class DirectionExemplars:
    direction_id: int
    activation_sd: float | None
    tasks_available: int
    picks: tuple[ExemplarPick, ...]


@dataclass(frozen=True)
class ScoredLayer:
    """What an exemplar shard produced; its length is the number of images scored."""

    set_id: int
    images: int
    directions: tuple[DirectionExemplars, ...]

    def __len__(self) -> int:
        return self.images


def _picks(selection: Selection) -> tuple[ExemplarPick, ...]:
    groups = (
        (Sign.MAX, ExemplarRole.REFERENCE, selection.max_references),
        (Sign.MIN, ExemplarRole.REFERENCE, selection.min_references),
        (Sign.MAX, ExemplarRole.QUERY, selection.max_queries),
        (Sign.MIN, ExemplarRole.QUERY, selection.min_queries),
    )
    return tuple(ExemplarPick(p.index, sign, p.rank, p.activation, role)
                 for sign, role, picks in groups for p in picks)


def _set_size(engine: Engine, shard: ClaimedShard) -> tuple[int, int]:
    """The job's image set id and member count; RuntimeError when the set was removed."""
    if shard.image_set_id is not None:
        with unit_of_work(engine) as session:
            count = session.scalar(select(ImageSet.count).where(ImageSet.id == shard.image_set_id))
        if count:
            return shard.image_set_id, count
    raise RuntimeError(f"job {shard.job_id}'s image set was removed; its exemplars cannot be "
                       "computed")


def score_layer(engine: Engine, shard: ClaimedShard, model: LoadedModel, batch_size: int,
                check: Check | None = None) -> ScoredLayer:
    """Score the job's image set on the shard's layer and select every direction's exemplars.

    `check(images_done, images)` is called after every batch and may raise to stop.
    """
    import numpy as np

    from service.featurevis.exemplar_selection import DEFAULT_TASKS, required_depth, select
    from service.featurevis.exemplars import ExemplarScorer, images01
    from service.store.image_sets import member_batches, member_sources

    assert shard.layer is not None and shard.references is not None
    set_id, count = _set_size(engine, shard)
    depth = required_depth(count, shard.references, DEFAULT_TASKS, shard.query_percentile)
    matrix = np.stack([d.vector for d in shard.directions])
    scorer = ExemplarScorer(model, {shard.layer: matrix}, depth=depth)
    done = 0
    for batch in member_batches(engine, set_id, batch_size):
        scorer.update(images01(batch.pixels, model.device), batch.positions)
        done += len(batch.positions)
        if check is not None:
            check(done, count)
    extremes = scorer.results()[shard.layer]
    if extremes.count != count:
        raise RuntimeError(f"image set has {extremes.count} members, expected {count}")
    sources = member_sources(engine, set_id)
    found = []
    for row, direction in enumerate(shard.directions):
        selection = select(extremes, row, sources, references=shard.references,
                           tasks=DEFAULT_TASKS, query_percentile=shard.query_percentile)
        sd = float(extremes.sd[row])
        found.append(DirectionExemplars(direction.id, sd if np.isfinite(sd) else None,
                                        selection.tasks_available, _picks(selection)))
    return ScoredLayer(set_id, count, tuple(found))


def _member_pngs(session: Session, set_id: int, positions: Iterable[int]) -> dict[int, tuple]:
    """Per position, the member's id and the sha256 of its store PNG (written here if new)."""
    from service.store.photos import decode_member

    rows = session.execute(
        select(ImageSetMember.position, ImageSetMember.id, ImageSetMember.data)
        .where(ImageSetMember.set_id == set_id, ImageSetMember.position.in_(sorted(positions)))
    ).all()
    return {r.position: (r.id, store(session, decode_member(r.data)).sha256) for r in rows}


def write_exemplars(engine: Engine, shard_id: int, scored: ScoredLayer) -> int | None:
    """Write a scored layer's exemplars in one transaction and mark its shard done.

    Returns the number of exemplar rows written, or None when the shard was cancelled or
    already settled (nothing written).
    """
    with unit_of_work(engine, lock=True) as session:
        shard = shards.open_shard(session, shard_id)
        if shard is None:
            return None
        positions = {p.position for d in scored.directions for p in d.picks}
        members = _member_pngs(session, scored.set_id, positions)
        insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
                  else sqlite_insert)
        rows = [
            {"direction_id": d.direction_id, "member_id": members[p.position][0],
             "image_sha256": members[p.position][1], "sign": p.sign, "rank": p.rank,
             "activation": p.activation, "role": p.role}
            for d in scored.directions for p in d.picks
        ]
        written = 0
        for start in range(0, len(rows), INSERT_CHUNK):
            statement = (insert(Exemplar).values(rows[start : start + INSERT_CHUNK])
                         .on_conflict_do_nothing(index_elements=["direction_id", "sign", "rank"])
                         .returning(Exemplar.id))
            written += len(session.execute(statement).all())
        for d in scored.directions:
            session.execute(
                update(Direction).where(Direction.id == d.direction_id)
                .values(activation_sd=d.activation_sd, tasks_available=d.tasks_available)
            )
        shards.settle(session, shard, 0)
        return written
