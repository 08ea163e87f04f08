"""Choosing a direction's natural references and 2-AFC queries from its scored extremes.

Following the IMI protocol (Zimmermann, Klein & Brendel 2023) with two changes, both stated:

- References: the K most activating images are the max references and the K least activating
  the min references. IMI draws each task's references from K bins of its top K·T images; here
  every task of a direction shows the same K a side, as synthetic references (K renders of +v
  and of −v per direction) do, so natural and synthetic conditions show alike.
- Queries: from just past the references (IMI's fair batches: the ranks that follow the
  references), or from ``query_percentile`` inward (IMI's 99/95/85 for harder tasks). The t-th
  max query is paired with the t-th min query, so both queries of a task sit equally deep in
  their tails and every task of a direction gets a comparable pair, strongest first.
- Queries never share a source with any reference shown beside them (IMI's ImageNet files are
  all distinct photos; crops of one photo are not): an annotator must not solve a task by
  recognising the photo. Candidates whose source is a reference's are skipped, so queries may
  come from deeper ranks; max queries stay above the median and min queries below it.

How many source-disjoint tasks a direction allows is counted over the images the scorer kept;
``Selection.shortfall`` says so when it is fewer than asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from service.featurevis.exemplars import Extremes

DEFAULT_REFERENCES = 9  # per side, as Borowski et al. and IMI
DEFAULT_TASKS = 10
# Extra depth kept past the query start: when a direction's references come from a few photos,
# every crop of those photos is skipped, so candidates must reach further than `tasks` ranks.
DEPTH_SLACK = 8


@dataclass(frozen=True)
class Pick:
    """One chosen image: its index in the set, its rank from its end (0 = most extreme)."""

    index: int
    rank: int
    activation: float


@dataclass(frozen=True)
class Selection:
    """One direction's references and queries; task t shows max_queries[t] and min_queries[t]."""

    max_references: tuple[Pick, ...]
    min_references: tuple[Pick, ...]
    max_queries: tuple[Pick, ...]
    min_queries: tuple[Pick, ...]
    tasks_asked: int
    tasks_available: int

    @property
    def tasks(self) -> int:
        return len(self.max_queries)

    @property
    def shortfall(self) -> str | None:
        """One line when the set allows fewer source-disjoint tasks than were asked for."""
        if self.tasks_available >= self.tasks_asked:
            return None
        return (f"only {self.tasks_available} of {self.tasks_asked} tasks have queries from "
                "photos other than the references'")


def check_selection(n_images: int, references: int, tasks: int,
                    query_percentile: float | None) -> None:
    """Raise ValueError (one line) for settings no selection can satisfy."""
    if references < 1:
        raise ValueError(f"references must be at least 1 per side, got {references}")
    if references > n_images // 2:
        raise ValueError(f"{references} references per side need at least {2 * references} "
                         f"images; the set has {n_images}")
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    if query_percentile is not None and not 50 < query_percentile < 100:
        raise ValueError(f"query percentile must be between 50 and 100 (exclusive), got "
                         f"{query_percentile}")


def query_start(n_images: int, references: int, query_percentile: float | None) -> int:
    """The rank (from either end) where queries begin: just past the references, or at the
    percentile (99 → the top 1 % lie before it), never among the references."""
    if query_percentile is None:
        return references
    return max(references, round(n_images * (100 - query_percentile) / 100))


def required_depth(n_images: int, references: int = DEFAULT_REFERENCES,
                   tasks: int = DEFAULT_TASKS, query_percentile: float | None = None) -> int:
    """How many images per end an ``ExemplarScorer`` must keep for ``select`` to find queries."""
    check_selection(n_images, references, tasks, query_percentile)
    start = query_start(n_images, references, query_percentile)
    return min(n_images, start + tasks + DEPTH_SLACK * max(tasks, references))


def select(extremes: Extremes, direction: int, sources: Sequence[str], *,
           references: int = DEFAULT_REFERENCES, tasks: int = DEFAULT_TASKS,
           query_percentile: float | None = None) -> Selection:
    """References and source-disjoint query pairs for one direction (see the module doc).

    Args:
        extremes: a layer's scored extremes (``ExemplarScorer.results()[layer]``).
        direction: the row of that layer's direction matrix.
        sources: every image's source, indexed like the scorer's image indices.
    """
    n = extremes.count
    check_selection(n, references, tasks, query_percentile)
    if len(sources) != n:
        raise ValueError(f"need one source per scored image: {n} images, {len(sources)} sources")
    if extremes.depth < references:
        raise ValueError(f"the scorer kept {extremes.depth} images per end; {references} "
                         "references need more")
    ends = {
        "max": (extremes.top_index[direction], extremes.top_values[direction]),
        "min": (extremes.bottom_index[direction], extremes.bottom_values[direction]),
    }
    chosen = {side: tuple(Pick(int(index[r]), r, float(values[r])) for r in range(references))
              for side, (index, values) in ends.items()}
    shown = {sources[p.index] for picks in chosen.values() for p in picks}
    start = query_start(n, references, query_percentile)
    stop = n // 2  # max queries above the median, min queries below it
    candidates = {}
    for side, (index, values) in ends.items():
        candidates[side] = [
            Pick(int(index[r]), r, float(values[r]))
            for r in range(start, min(stop, len(index)))
            if sources[int(index[r])] not in shown
        ]
    available = min(len(candidates["max"]), len(candidates["min"]))
    pairs = min(tasks, available)
    return Selection(
        max_references=chosen["max"], min_references=chosen["min"],
        max_queries=tuple(candidates["max"][:pairs]), min_queries=tuple(candidates["min"][:pairs]),
        tasks_asked=tasks, tasks_available=available,
    )


def query_gap(selection: Selection, task: int, sd: float) -> float:
    """A task's standardized query gap: (q+ − q−) / the direction's SD over the set (NaN
    when the SD is not positive)."""
    if not 0 <= task < selection.tasks:
        raise ValueError(f"task {task} is outside 0…{selection.tasks - 1}")
    if not math.isfinite(sd) or sd <= 0:
        return float("nan")
    return (selection.max_queries[task].activation - selection.min_queries[task].activation) / sd
