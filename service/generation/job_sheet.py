"""What a researcher sees of a job with an image set: the exemplar pass's progress, how many
references beat their best natural exemplar, which directions allow fewer source-disjoint
2-AFC tasks than asked, and the contact sheet of min and max references beside the natural
extremes. Researchers only: conditions, layers and channels are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, or_, select

from service.store.db import unit_of_work
from service.store.models import (
    Direction,
    Exemplar,
    ExemplarRole,
    Image,
    ImageSet,
    Job,
    Shard,
    ShardKind,
    ShardStatus,
    Sign,
    Stimulus,
)


@dataclass(frozen=True)
class ShortDirection:
    """A direction whose image set allows fewer source-disjoint tasks than asked."""

    id: int
    layer: str
    kind: str
    channel: int | None
    tasks_available: int


@dataclass(frozen=True)
class ReferenceReport:
    image_set: str | None  # None once the set was removed
    references: int
    diversity: float | None  # None: searched per direction and sign
    query_percentile: float | None
    exemplar_layers: int
    exemplar_layers_done: int
    exemplar_layers_running: int
    references_rendered: int
    references_passing: int  # objective above the best natural exemplar's
    tasks_asked: int
    short: list[ShortDirection] = field(default_factory=list)


def reference_report(engine: Engine, job_id: int) -> ReferenceReport | None:
    """The image-set side of a job; None for a job without one."""
    from service.featurevis.exemplar_selection import DEFAULT_TASKS  # torch: not at import

    with unit_of_work(engine) as session:
        job = session.get(Job, job_id)
        if job is None or job.n_references is None:
            return None
        set_name = session.scalar(select(ImageSet.name).where(ImageSet.id == job.image_set_id))
        states = dict(session.execute(
            select(Shard.status, func.count()).where(Shard.job_id == job_id,
                                                     Shard.kind == ShardKind.EXEMPLARS)
            .group_by(Shard.status)).all())
        rendered, passing = session.execute(
            select(func.count(Stimulus.id),
                   func.count(Stimulus.id).filter(Stimulus.objective > Stimulus.natural_max))
            .join(Direction, Direction.id == Stimulus.direction_id)
            .where(Direction.job_id == job_id)).one()
        short = [
            ShortDirection(d.id, d.layer, d.kind, d.channel, d.tasks_available or 0)
            for d in session.scalars(
                select(Direction).where(Direction.job_id == job_id,
                                        Direction.tasks_available < DEFAULT_TASKS)
                .order_by(Direction.id))
        ]
        return ReferenceReport(
            image_set=set_name, references=job.n_references, diversity=job.diversity,
            query_percentile=job.query_percentile, exemplar_layers=sum(states.values()),
            exemplar_layers_done=states.get(ShardStatus.DONE, 0),
            exemplar_layers_running=states.get(ShardStatus.RUNNING, 0),
            references_rendered=rendered, references_passing=passing, tasks_asked=DEFAULT_TASKS,
            short=short,
        )


@dataclass(frozen=True)
class SheetImage:
    sha256: str
    value: float  # a render's objective, or a natural exemplar's activation
    passes: bool | None = None  # a render: does it beat the best natural exemplar?
    diversity: float | None = None


@dataclass
class SheetDirection:
    """One row of the contact sheet: a direction's renders and natural references by sign."""

    id: int
    layer: str
    kind: str
    channel: int | None
    activation_sd: float | None
    tasks_available: int | None
    renders: dict[str, list[SheetImage]] = field(default_factory=dict)
    naturals: dict[str, list[SheetImage]] = field(default_factory=dict)


def job_sheet(engine: Engine, job_id: int) -> list[SheetDirection]:
    """Every direction of the job with its min and max renders and natural references."""
    with unit_of_work(engine) as session:
        rows = {
            d.id: SheetDirection(d.id, d.layer, d.kind, d.channel, d.activation_sd,
                                 d.tasks_available,
                                 renders={Sign.MIN: [], Sign.MAX: []},
                                 naturals={Sign.MIN: [], Sign.MAX: []})
            for d in session.scalars(select(Direction).where(Direction.job_id == job_id)
                                     .order_by(Direction.layer, Direction.kind, Direction.index))
        }
        for s in session.scalars(
                select(Stimulus).where(Stimulus.direction_id.in_(rows))
                .order_by(Stimulus.sign, Stimulus.replicate)):
            passes = None if s.natural_max is None else s.objective > s.natural_max
            rows[s.direction_id].renders[s.sign].append(
                SheetImage(s.image_sha256, s.objective, passes, s.diversity))
        for e in session.scalars(
                select(Exemplar).where(Exemplar.direction_id.in_(rows),
                                       Exemplar.role == ExemplarRole.REFERENCE)
                .order_by(Exemplar.sign, Exemplar.rank)):
            rows[e.direction_id].naturals[e.sign].append(SheetImage(e.image_sha256, e.activation))
    return list(rows.values())


def sheet_png(engine: Engine, job_id: int, sha256: str) -> bytes | None:
    """The PNG of a render or natural exemplar of the job, or None when it is not the job's."""
    of_job = select(Direction.id).where(Direction.job_id == job_id)
    with unit_of_work(engine) as session:
        return session.scalar(
            select(Image.png).where(Image.sha256 == sha256).where(or_(
                select(Stimulus.id).where(Stimulus.image_sha256 == sha256,
                                          Stimulus.direction_id.in_(of_job)).exists(),
                select(Exemplar.id).where(Exemplar.image_sha256 == sha256,
                                          Exemplar.direction_id.in_(of_job)).exists(),
            ))
        )
