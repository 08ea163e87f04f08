"""The fvlab schema: one database shared by the worker, the annotation site and the analysis.

Integrity rules that protect the data (one rating per trial, one stimulus per direction and
replicate, unique public tokens, enumerations, ranges) are constraints in the database itself,
so that no code path, however buggy, can write a second rating or a confidence of 7.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from service.featurevis.kinds import DirectionKind, Objective, RandomKind
from service.store.db import utcnow

__all__ = ["DirectionKind", "Objective", "RandomKind"]  # the engine's enums, stored here too

TOKEN_LENGTH = 32
LABEL_MAX_CHARS = 200
LOGIN_KEY_MAX_CHARS = 200
CLIENT_ADDRESS_MAX_CHARS = 100
LOGIN_TOKEN_HASH_CHARS = 64
IMAGE_SET_NAME_MAX_CHARS = 100


class JobStatus(StrEnum):
    """A job is queued until a worker claims its first shard, and ends done, failed or
    cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ShardStatus(StrEnum):
    """A shard is queued or running (leased) until it is done, failed or cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ShardKind(StrEnum):
    """What a worker does with a shard: `render` its directions' images, or score a job's image
    set on every direction of one layer (`exemplars`), which the renders of that job wait for."""

    RENDER = "render"
    EXEMPLARS = "exemplars"


# A job's work left to do: shards a worker may still claim or is rendering.
OPEN_SHARD_STATES = (ShardStatus.QUEUED, ShardStatus.RUNNING)
OPEN_JOB_STATES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_JOB_STATES = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class StudyStatus(StrEnum):
    """Drafts are for the researcher only; open studies take annotators; closed ones no more."""

    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


class CatchKind(StrEnum):
    """Catch items: `positive` is a clear natural photo, `negative` noise or a flat texture."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


class AnnotatorSource(StrEnum):
    """Where an annotator came from (external ids are unique within a source)."""

    PROLIFIC = "prolific"
    MTURK = "mturk"
    ANONYMOUS = "anonymous"
    LAB = "lab"
    MACHINE = "machine"  # `fvlab machine rate`; never counts towards the k people fill


class TrialKind(StrEnum):
    STIMULUS = "stimulus"
    CATCH = "catch"
    PRACTICE = "practice"


class ImageSetStatus(StrEnum):
    """A set is usable for scoring only once `complete`; `importing` sets are never half-used."""

    IMPORTING = "importing"
    COMPLETE = "complete"


class Sign(StrEnum):
    """Which end of a direction: `max` (+v, most activating) or `min` (−v, least activating)."""

    MAX = "max"
    MIN = "min"


class StudyTask(StrEnum):
    """What annotators do: `rating` answers a yes/no question about one image; `2afc` picks which
    of two natural images belongs with a direction's maximally activating references."""

    RATING = "rating"
    TWO_AFC = "2afc"


class ReferenceKind(StrEnum):
    """What a 2-AFC trial shows beside its queries: the direction's min/max renders
    (`synthetic`), its least/most activating photos (`natural`), or nothing (`none`)."""

    SYNTHETIC = "synthetic"
    NATURAL = "natural"
    NONE = "none"


class ExemplarRole(StrEnum):
    """A natural exemplar is shown as a reference (a grid side) or asked about as a query."""

    REFERENCE = "reference"
    QUERY = "query"


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: Iterable[str]) -> str:
    """The SQL of a check constraint allowing only `values` (an enum's members, usually)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always reads back as an aware UTC datetime.

    SQLite keeps no zone and hands back naive values; PostgreSQL answers in the connection's
    zone. Normalizing here, once, lets every caller compare and subtract stored times freely.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JobStatus), name="status"),
        CheckConstraint(_in("random_kind", RandomKind), name="random_kind"),
        CheckConstraint(_in("objective", Objective), name="objective"),
        CheckConstraint("n_basis >= 0 AND n_random >= 0 AND n_basis + n_random > 0", name="counts"),
        CheckConstraint("image_size > 0 AND steps > 0 AND lr > 0", name="render_ranges"),
        CheckConstraint("progress >= 0", name="progress"),
        CheckConstraint("n_references IS NULL OR n_references >= 1", name="n_references"),
        CheckConstraint("diversity IS NULL OR diversity >= 0", name="diversity"),
        CheckConstraint("query_percentile IS NULL OR (query_percentile > 50"
                        " AND query_percentile < 100)", name="query_percentile"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    weights: Mapped[str | None] = mapped_column(String(500))
    layers: Mapped[list[str]] = mapped_column(JSON)
    n_basis: Mapped[int] = mapped_column(Integer)
    n_random: Mapped[int] = mapped_column(Integer)
    random_kind: Mapped[str] = mapped_column(String(20), default=RandomKind.GAUSSIAN)
    objective: Mapped[str] = mapped_column(String(20), default=Objective.DOT)
    image_size: Mapped[int] = mapped_column(Integer, default=128)
    steps: Mapped[int] = mapped_column(Integer, default=512)
    lr: Mapped[float] = mapped_column(Float, default=0.05)
    seed: Mapped[int] = mapped_column(BigInteger)
    replicates: Mapped[int] = mapped_column(Integer, default=1)
    render_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # With an image set: its exemplar pass, and K renders of +v and of −v per direction
    # (replicates = K) with a diversity weight (None: searched per direction); see `fvlab generate`
    image_set_id: Mapped[int | None] = mapped_column(
        ForeignKey("image_sets.id", ondelete="SET NULL"), index=True
    )
    n_references: Mapped[int | None] = mapped_column(Integer)
    diversity: Mapped[float | None] = mapped_column(Float)
    query_percentile: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    directions: Mapped[list[Direction]] = relationship(back_populates="job")
    shards: Mapped[list[Shard]] = relationship(back_populates="job")


class Shard(Base):
    __tablename__ = "shards"
    __table_args__ = (
        CheckConstraint(_in("status", ShardStatus), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(_in("kind", ShardKind), name="kind"),
        CheckConstraint(f"(kind = '{ShardKind.EXEMPLARS}') = (layer IS NOT NULL)",
                        name="layer_for_exemplars"),
        Index("ix_shards_claim", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default=ShardKind.RENDER,
                                      server_default=ShardKind.RENDER.value)
    layer: Mapped[str | None] = mapped_column(String(200))  # an exemplar shard's layer
    status: Mapped[str] = mapped_column(String(20), default=ShardStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="shards")
    directions: Mapped[list[Direction]] = relationship(back_populates="shard")


class Direction(Base):
    __tablename__ = "directions"
    __table_args__ = (
        CheckConstraint(_in("kind", DirectionKind), name="kind"),
        CheckConstraint(
            f"(kind = '{DirectionKind.BASIS}' AND channel IS NOT NULL AND channel >= 0)"
            f" OR (kind = '{DirectionKind.RANDOM}' AND channel IS NULL)",
            name="channel_for_basis_only",
        ),
        UniqueConstraint("job_id", "layer", "kind", "index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    shard_id: Mapped[int | None] = mapped_column(
        ForeignKey("shards.id", ondelete="SET NULL"), index=True
    )
    layer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    index: Mapped[int] = mapped_column(Integer)
    channel: Mapped[int | None] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    seed: Mapped[int] = mapped_column(BigInteger)
    # the SD of the direction's activation over its job's image set: the unit of a 2-AFC query
    # pair's gap (empty until the exemplar pass stores it)
    activation_sd: Mapped[float | None] = mapped_column(Float)
    # how many 2-AFC tasks with queries from photos other than the references' the set allows
    tasks_available: Mapped[int | None] = mapped_column(Integer)

    job: Mapped[Job] = relationship(back_populates="directions")
    shard: Mapped[Shard | None] = relationship(back_populates="directions")
    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="direction")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (CheckConstraint("width > 0 AND height > 0", name="size"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Stimulus(Base):
    """A rendered image of one direction: `sign` max renders +v, min renders −v.

    `replicate` is the reference index among a direction's K images of one sign.
    """

    __tablename__ = "stimuli"
    __table_args__ = (
        UniqueConstraint("direction_id", "sign", "replicate"),
        CheckConstraint("replicate >= 0", name="replicate"),
        CheckConstraint(_in("sign", Sign), name="sign"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction_id: Mapped[int] = mapped_column(ForeignKey("directions.id", ondelete="CASCADE"))
    sign: Mapped[str] = mapped_column(String(3), default=Sign.MAX, server_default=Sign.MAX.value)
    replicate: Mapped[int] = mapped_column(Integer, default=0)
    token: Mapped[str] = mapped_column(String(TOKEN_LENGTH), unique=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    objective: Mapped[float] = mapped_column(Float)
    natural_max: Mapped[float | None] = mapped_column(Float)
    diversity: Mapped[float | None] = mapped_column(Float)  # the weight a reference was made with
    render_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    direction: Mapped[Direction] = relationship(back_populates="stimuli")
    image: Mapped[Image] = relationship()


class ImageSet(Base):
    """A named collection of natural photos that directions are scored on (exemplars)."""

    __tablename__ = "image_sets"
    __table_args__ = (
        CheckConstraint(_in("status", ImageSetStatus), name="status"),
        CheckConstraint("count >= 0", name="count"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(IMAGE_SET_NAME_MAX_CHARS), unique=True)
    source: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(10), default=ImageSetStatus.IMPORTING)
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImageSetMember(Base):
    """One photo of a set, kept compact (a 224 px WebP), not as a PNG of the image store.

    Scoring reads every member; only the few shown to people become store PNGs (exemplars).
    All crops of one photo share a `source`, so a query never comes from a reference's photo.
    """

    __tablename__ = "image_set_members"
    __table_args__ = (
        UniqueConstraint("set_id", "position"),
        UniqueConstraint("set_id", "sha256"),
        CheckConstraint("position >= 0", name="position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("image_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(1000))


class Exemplar(Base):
    """A natural image at one end of a direction's activations over its job's image set.

    `rank` counts from the most extreme (0) within the direction and sign; `image_sha256` is the
    store PNG shown to people.
    """

    __tablename__ = "exemplars"
    __table_args__ = (
        UniqueConstraint("direction_id", "sign", "rank"),
        CheckConstraint(_in("sign", Sign), name="sign"),
        CheckConstraint(_in("role", ExemplarRole), name="role"),
        CheckConstraint("rank >= 0", name="rank"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction_id: Mapped[int] = mapped_column(ForeignKey("directions.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("image_set_members.id"), index=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    sign: Mapped[str] = mapped_column(String(3))
    rank: Mapped[int] = mapped_column(Integer)
    activation: Mapped[float] = mapped_column(Float)
    role: Mapped[str] = mapped_column(String(10))

    member: Mapped[ImageSetMember] = relationship()
    image: Mapped[Image] = relationship()


class CatchItem(Base):
    __tablename__ = "catch_items"
    __table_args__ = (CheckConstraint(_in("kind", CatchKind), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    token: Mapped[str] = mapped_column(String(TOKEN_LENGTH), unique=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship()


class StudyStimulus(Base):
    __tablename__ = "study_stimuli"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    stimulus_id: Mapped[int] = mapped_column(
        ForeignKey("stimuli.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("status", StudyStatus), name="status"),
        CheckConstraint("ratings_per_item >= 1", name="ratings_per_item"),
        CheckConstraint("trials_per_session >= 1", name="trials_per_session"),
        CheckConstraint("catch_every >= 0", name="catch_every"),
        CheckConstraint("practice_count >= 0", name="practice_count"),
        CheckConstraint(_in("task", StudyTask), name="task"),
        CheckConstraint(f"(task = '{StudyTask.TWO_AFC}') = (reference_kinds IS NOT NULL)",
                        name="reference_kinds_for_2afc"),
        CheckConstraint("machine_lapse IS NULL OR machine_lapse BETWEEN 0 AND 1",
                        name="machine_lapse"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(10), default=StudyTask.RATING,
                                      server_default=StudyTask.RATING.value)
    # 2afc: the ReferenceKind values its trials cross with the condition; None for rating
    reference_kinds: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # the machine annotator's α fitted to this study's human answers (None: not fitted)
    machine_alpha: Mapped[float | None] = mapped_column(Float)
    # the lapse rate fitted with it, and the embedding both are on the scale of (None: not fitted)
    machine_lapse: Mapped[float | None] = mapped_column(Float)
    machine_embedding: Mapped[str | None] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=StudyStatus.DRAFT)
    question: Mapped[str] = mapped_column(Text)
    consent_text: Mapped[str] = mapped_column(Text, default="")
    ratings_per_item: Mapped[int] = mapped_column(Integer, default=5)
    trials_per_session: Mapped[int] = mapped_column(Integer, default=40)
    catch_every: Mapped[int] = mapped_column(Integer, default=10)
    practice_count: Mapped[int] = mapped_column(Integer, default=3)
    completion_code: Mapped[str] = mapped_column(String(100))
    redirect_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    stimuli: Mapped[list[Stimulus]] = relationship(secondary="study_stimuli")
    sessions: Mapped[list[AnnotationSession]] = relationship(back_populates="study")


class Annotator(Base):
    __tablename__ = "annotators"
    __table_args__ = (
        CheckConstraint(_in("source", AnnotatorSource), name="source"),
        UniqueConstraint("source", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationSession(Base):
    """An annotator's one pass through a study (table `sessions`)."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(_in("status", SessionStatus), name="status"),
        UniqueConstraint("study_id", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(TOKEN_LENGTH), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=SessionStatus.ACTIVE)
    external_study_id: Mapped[str | None] = mapped_column(String(200))
    external_session_id: Mapped[str | None] = mapped_column(String(200))
    assignment_id: Mapped[str | None] = mapped_column(String(200))
    turk_submit_to: Mapped[str | None] = mapped_column(String(1000))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    consent_at: Mapped[datetime | None]
    instructions_shown_at: Mapped[datetime | None]
    instructions_done_at: Mapped[datetime | None]
    practice_done_at: Mapped[datetime | None]
    reserved_until: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    completion_code: Mapped[str | None] = mapped_column(String(100))

    study: Mapped[Study] = relationship(back_populates="sessions")
    annotator: Mapped[Annotator] = relationship()
    trials: Mapped[list[Trial]] = relationship(
        back_populates="session", order_by="Trial.position"
    )


class Trial(Base):
    """One trial of a session.

    A 2-AFC trial (`reference` set) shows a direction, named by its first max render
    (`stimulus_id`), with the references of its `reference` kind and query pair `query_task`
    (the t-th max query with the t-th min query); `max_position` (0 or 1, as shown) never
    leaves the server. A 2-AFC catch trial also names the reference check catch item, and its
    queries are the references at index `query_task`; a 2-AFC practice trial shows the drawn
    practice example `query_task` and names no item.
    """

    __tablename__ = "trials"
    __table_args__ = (
        CheckConstraint(_in("kind", TrialKind), name="kind"),
        CheckConstraint("position >= 0", name="position"),
        CheckConstraint(
            f"(kind = '{TrialKind.STIMULUS}'"
            " AND stimulus_id IS NOT NULL AND catch_item_id IS NULL)"
            f" OR (kind = '{TrialKind.CATCH}'"
            " AND catch_item_id IS NOT NULL AND (stimulus_id IS NULL OR reference IS NOT NULL))"
            f" OR (kind = '{TrialKind.PRACTICE}'"
            " AND ((stimulus_id IS NULL) <> (catch_item_id IS NULL)"
            " OR (stimulus_id IS NULL AND catch_item_id IS NULL AND reference IS NOT NULL)))",
            name="item_matches_kind",
        ),
        CheckConstraint(_in("reference", ReferenceKind), name="reference"),
        CheckConstraint("(reference IS NULL) = (max_position IS NULL)"
                        " AND (reference IS NULL) = (query_task IS NULL)", name="afc_fields"),
        CheckConstraint("max_position BETWEEN 0 AND 1", name="max_position"),
        CheckConstraint("query_task >= 0", name="query_task"),
        UniqueConstraint("session_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    stimulus_id: Mapped[int | None] = mapped_column(ForeignKey("stimuli.id"), index=True)
    catch_item_id: Mapped[int | None] = mapped_column(ForeignKey("catch_items.id"), index=True)
    token: Mapped[str] = mapped_column(String(TOKEN_LENGTH), unique=True)
    reference: Mapped[str | None] = mapped_column(String(10))
    query_task: Mapped[int | None] = mapped_column(Integer)
    max_position: Mapped[int | None] = mapped_column(Integer)
    served_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]

    session: Mapped[AnnotationSession] = relationship(back_populates="trials")
    stimulus: Mapped[Stimulus | None] = relationship()
    catch_item: Mapped[CatchItem | None] = relationship()
    rating: Mapped[Rating | None] = relationship(back_populates="trial")


class Rating(Base):
    """An answer: a yes/no rating (`interpretable`, confidence 1–5) or a 2-AFC choice (`choice`,
    the position as shown; `correct`, decided on the server; confidence 1–3)."""

    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint("confidence BETWEEN 1 AND 5", name="confidence"),
        CheckConstraint("(interpretable IS NULL) <> (choice IS NULL)", name="one_answer"),
        CheckConstraint("choice BETWEEN 0 AND 1", name="choice"),
        CheckConstraint("(choice IS NULL) = (correct IS NULL)", name="correct_with_choice"),
        CheckConstraint("choice IS NULL OR confidence <= 3", name="choice_confidence"),
        CheckConstraint("rt_ms >= 0", name="rt_ms"),
        CheckConstraint("server_rt_ms IS NULL OR server_rt_ms >= 0", name="server_rt_ms"),
        CheckConstraint(f"label IS NULL OR length(label) <= {LABEL_MAX_CHARS}", name="label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), unique=True)
    interpretable: Mapped[bool | None] = mapped_column(Boolean)
    choice: Mapped[int | None] = mapped_column(Integer)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    confidence: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(LABEL_MAX_CHARS))
    # the page's answer time; empty for the machine annotator, which has no page
    rt_ms: Mapped[int | None] = mapped_column(Integer)
    # the server's own measure of the answer time, which a client cannot shorten or lengthen
    # (see annotate.api); empty for ratings stored before it was kept
    server_rt_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="rating")


class User(Base):
    """A researcher account; annotators never have one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """One failed researcher sign-in, under one throttle key (`addr:<ip>`, or `name:<name>@<ip>`
    for the name tried from that address).

    Kept in the database so that every web process, on every machine, counts the same attempts;
    rows older than the throttle's window are deleted as new failures arrive.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_failed_at", "key", "failed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(LOGIN_KEY_MAX_CHARS))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ResearcherLogin(Base):
    """One sign-in to the console. The browser's cookie carries only a random token whose hash is
    kept here, so signing out, a password change or 12 idle hours end the sign-in on the server,
    whatever copies of the cookie exist."""

    __tablename__ = "researcher_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(LOGIN_TOKEN_HASH_CHARS), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionStart(Base):
    """One annotation session started from one client address: the per-address start limit of a
    study counts these. Rows older than the limit's window are deleted as new starts arrive, so
    an address is kept no longer than the count needs it."""

    __tablename__ = "session_starts"
    __table_args__ = (
        Index("ix_session_starts_study_address", "study_id", "address", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(CLIENT_ADDRESS_MAX_CHARS))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
