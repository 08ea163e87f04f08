"""The checks a 2-AFC study passes before it is written: its reference kinds, and jobs whose every
direction has what its trials show.

Every direction needs query pairs (the exemplar pass of an image set) and, per reference kind
shown, references on both sides: its min and max renders for `synthetic`, its least and most
activating photos for `natural`; `none` shows nothing beside the queries. A job that cannot
give every direction all of it is refused in one line that says how to make one that can, so a
study never covers some directions of a condition and silently not others.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.store.models import Job, ReferenceKind, StudyTask
from service.studies.afc_items import (
    QUERIES,
    SHOWN_REFERENCES,
    first_max_renders,
    missing,
    shapes,
)
from service.studies.errors import StudyError

AFC_QUESTION = "Which of the two centre images belongs with the images on the right?"
DEFAULT_REFERENCES = (ReferenceKind.SYNTHETIC,)
LACKS = {  # what a direction lacks → (what the message says, how a job gets it)
    QUERIES: ("query pairs", "score it on an image set: fvlab generate … --image-set NAME"),
    ReferenceKind.NATURAL: ("natural references of both signs",
                            "score it on an image set: fvlab generate … --image-set NAME"),
    ReferenceKind.SYNTHETIC: ("renders of both signs",
                              "render min and max: fvlab generate … --references K"),
}


def check_task(task: str, reference_kinds: Sequence[str],
               catch_every: int) -> tuple[StudyTask, list[str] | None]:
    """The task and, for 2afc, its reference kinds in the order given (`synthetic` when none
    is given); None for a rating study. StudyError names the setting that is wrong."""
    try:
        chosen = StudyTask(task)
    except ValueError:
        raise StudyError(f"task must be one of {', '.join(StudyTask)}, got {task!r}") from None
    kinds = [str(kind) for kind in reference_kinds]
    if chosen == StudyTask.RATING:
        if kinds:
            raise StudyError("reference: reference kinds are for 2afc studies (--task 2afc)")
        return chosen, None
    for kind in kinds:
        if kind not in set(ReferenceKind):
            raise StudyError(f"reference must be one of {', '.join(ReferenceKind)}, got {kind!r}")
    if len(set(kinds)) != len(kinds):
        raise StudyError(f"reference: {', '.join(kinds)} names a kind twice")
    kinds = kinds or [str(kind) for kind in DEFAULT_REFERENCES]
    if catch_every and not set(kinds) & set(SHOWN_REFERENCES):
        raise StudyError("catch_every: 2-AFC catch trials take their queries from the shown "
                         "references; add --reference synthetic or natural, or set it to 0")
    return chosen, kinds


def afc_directions(db: Session, jobs: list[Job], reference_kinds: list[str]) -> list[int]:
    """The ids of the first max renders naming the jobs' directions; StudyError when a job
    cannot give every direction what a 2-AFC trial of each reference kind shows."""
    named = first_max_renders(db, [job.id for job in jobs])
    counts = shapes(db, [n.direction_id for n in named])
    for job in jobs:
        ids = [n.direction_id for n in named if n.job_id == job.id]
        if not ids:
            raise StudyError(f"jobs: job {job.id} has no rendered directions")
        lacks = [missing(counts[did], reference_kinds) for did in ids]
        for lack, (what, how) in LACKS.items():
            n = lacks.count(lack)
            if n:
                raise StudyError(f"jobs: {n} of {len(ids)} directions of job {job.id} have no "
                                 f"{what}, which this 2-AFC study shows ({how})")
    return [n.stimulus_id for n in named]
