"""Image sets: named collections of natural photos that directions are scored on.

Members are kept compact (see `photos.py`): the exemplar pass reads every member, but people
only ever see the few extremes, which become PNGs of the image store when they are chosen.

An import writes in chunks (a 50,000-photo folder must not hold the database's write lock for
minutes) under status `importing`; only when every file has been read does the set become
`complete`, and only complete sets can be scored. A failed or interrupted import removes what
it wrote. Every file of a folder is its own `source`; all crops of a built-in photo share one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.db import unit_of_work
from service.store.models import (
    IMAGE_SET_NAME_MAX_CHARS,
    Exemplar,
    ImageSet,
    ImageSetMember,
    ImageSetStatus,
)
from service.store.photos import (
    CROPS_PER_PHOTO,
    IMAGE_SUFFIXES,
    PhotoError,
    builtin_photos,
    crops,
    decode_member,
    read_photo,
    to_member,
)

CHUNK = 100  # members per transaction while importing
BUILTIN = "photos"
BUILTIN_WAIT_SECONDS = 300.0  # a start finding another importing the built-in set waits this long
BUILTIN_POLL_SECONDS = 0.5
BUILTIN_SOURCE = "built-in: photos bundled with scikit-image and matplotlib"
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{IMAGE_SET_NAME_MAX_CHARS - 1}}}")

Progress = Callable[[int, int], None]


class ImageSetError(ValueError):
    """A set or a file cannot be used; the message is one line that says why."""


@dataclass
class ImportResult:
    """What an import did: members written, files skipped (one line each), duplicates."""

    name: str
    count: int
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImageSetInfo:
    name: str
    status: str
    count: int
    source: str
    created_at: datetime
    bytes: int


@dataclass(frozen=True)
class MemberBatch:
    """Consecutive members of a set: `positions[i]` is the member index of `pixels[i]`."""

    positions: np.ndarray
    sources: list[str]
    pixels: np.ndarray  # N×224×224×3 uint8


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ImageSetError(
            f"image set name {name!r} must be 1–{IMAGE_SET_NAME_MAX_CHARS} letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files of a folder (by suffix), in a stable order, or ImageSetError."""
    if not folder.is_dir():
        raise ImageSetError(f"{folder} is not a folder")
    entries = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        hint = "" if recursive else " (--recursive also looks in subfolders)"
        raise ImageSetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}{hint}")
    return files


def add_folder(
    engine: Engine,
    name: str,
    folder: Path,
    *,
    limit: int | None = None,
    recursive: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the photos of `folder` as the set `name`; at most `limit` members when given.

    Unreadable, truncated and absurdly sized files are skipped, each with one line in the
    result. Raises ImageSetError, with nothing written, for a bad name or limit, a name in use,
    a folder without images, or a folder where no file could be read.
    """
    check_name(name)
    if limit is not None and limit < 1:
        raise ImageSetError(f"limit must be at least 1 image, got {limit}")
    files = image_files(folder, recursive)
    _check_free(engine, name)

    def photos() -> Iterator[tuple[str, PILImage.Image] | str]:
        for path in files:
            source = path.relative_to(folder).as_posix()
            try:
                yield source, read_photo(path, label=source)
            except PhotoError as exc:
                yield str(exc)

    return _import(engine, name, str(folder.resolve()), photos(), len(files), limit, progress)


def add_builtin(
    engine: Engine, name: str = BUILTIN, progress: Progress | None = None
) -> ImportResult:
    """The built-in set: crops of every natural photo bundled with fvlab's dependencies.

    For demos and tests only: about 450 crops of 16 photos are far too few for a study.
    """
    check_name(name)
    _check_free(engine, name)
    photos = list(builtin_photos())

    def members() -> Iterator[tuple[str, PILImage.Image]]:
        for source, photo in photos:
            for crop in crops(photo):
                yield source, crop

    return _import(engine, name, BUILTIN_SOURCE, members(), CROPS_PER_PHOTO * len(photos),
                   None, progress)


def ensure_builtin(engine: Engine, progress: Progress | None = None,
                   wait_seconds: float = BUILTIN_WAIT_SECONDS) -> ImportResult | None:
    """The built-in set, imported unless it is already complete (the demo's first start).

    Returns the import's result, or None when the set was there. When another start is
    importing it at the same moment, this one waits up to `wait_seconds` for that import to
    complete; a set still importing after that (an import cut off) is the error `fvlab images
    add` gives.
    """
    if _status(engine, BUILTIN) == ImageSetStatus.COMPLETE:
        return None
    try:
        return add_builtin(engine, BUILTIN, progress)
    except ImageSetError:
        deadline = time.monotonic() + wait_seconds
        while (status := _status(engine, BUILTIN)) == ImageSetStatus.IMPORTING:
            if time.monotonic() >= deadline:
                raise
            time.sleep(BUILTIN_POLL_SECONDS)
        if status != ImageSetStatus.COMPLETE:  # the other import failed and was removed
            raise
        return None


def _status(engine: Engine, name: str) -> str | None:
    with unit_of_work(engine) as session:
        return session.scalar(select(ImageSet.status).where(ImageSet.name == name))


def _check_free(engine: Engine, name: str) -> None:
    status = _status(engine, name)
    if status == ImageSetStatus.IMPORTING:
        raise ImageSetError(
            f"image set {name!r} is being imported, or its import was cut off "
            f"(fvlab images remove {name} deletes it)"
        )
    if status is not None:
        raise ImageSetError(f"an image set named {name!r} already exists")


def _import(
    engine: Engine,
    name: str,
    source: str,
    photos: Iterator[tuple[str, PILImage.Image] | str],
    total: int,
    limit: int | None,
    progress: Progress | None,
) -> ImportResult:
    """Write members chunk by chunk under `importing`; `complete` only at the very end."""
    result = ImportResult(name=name, count=0)
    try:
        with unit_of_work(engine) as session:
            image_set = ImageSet(name=name, source=source, status=ImageSetStatus.IMPORTING)
            session.add(image_set)
            session.flush()
            set_id = image_set.id
    except IntegrityError as exc:  # another import took the name since _check_free
        raise ImageSetError(f"an image set named {name!r} already exists") from exc
    seen: set[str] = set()
    chunk: list[dict[str, object]] = []
    try:
        for done, item in enumerate(photos, start=1):
            if isinstance(item, str):
                result.skipped.append(item)
            else:
                data = to_member(item[1])
                sha256 = hashlib.sha256(data).hexdigest()
                if sha256 in seen:
                    result.duplicates += 1
                else:
                    seen.add(sha256)
                    chunk.append({"set_id": set_id, "position": result.count, "sha256": sha256,
                                  "data": data, "source": item[0]})
                    result.count += 1
            if len(chunk) >= CHUNK:
                _write(engine, chunk)
            if progress is not None:
                progress(done, total)
            if limit is not None and result.count >= limit:
                break
        _write(engine, chunk)
        if result.count == 0:
            first = f"; first: {result.skipped[0]}" if result.skipped else ""
            raise ImageSetError(f"no readable images in {source} ({len(result.skipped)} skipped"
                                f"{first})")
        with unit_of_work(engine) as session:
            session.execute(
                update(ImageSet).where(ImageSet.id == set_id)
                .values(status=ImageSetStatus.COMPLETE, count=result.count)
            )
    except BaseException:
        with unit_of_work(engine) as session:
            session.execute(delete(ImageSetMember).where(ImageSetMember.set_id == set_id))
            session.execute(delete(ImageSet).where(ImageSet.id == set_id))
        raise
    return result


def _write(engine: Engine, chunk: list[dict[str, object]]) -> None:
    if chunk:
        with unit_of_work(engine) as session:
            session.execute(insert(ImageSetMember), chunk)
        chunk.clear()


def list_sets(engine: Engine) -> list[ImageSetInfo]:
    """Every image set, by name, with its stored size."""
    sizes = (
        select(ImageSetMember.set_id, func.sum(func.length(ImageSetMember.data)).label("bytes"))
        .group_by(ImageSetMember.set_id)
        .subquery()
    )
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(ImageSet, sizes.c.bytes)
            .outerjoin(sizes, sizes.c.set_id == ImageSet.id)
            .order_by(ImageSet.name)
        ).all()
        return [
            ImageSetInfo(s.name, s.status, s.count, s.source, s.created_at, int(size or 0))
            for s, size in rows
        ]


def remove_set(engine: Engine, name: str) -> None:
    """Delete a set and its members; refused while exemplars of some job come from it."""
    with unit_of_work(engine) as session:
        image_set = session.scalars(select(ImageSet).where(ImageSet.name == name)).one_or_none()
        if image_set is None:
            raise ImageSetError(f"no image set named {name!r}")
        used = session.scalar(
            select(func.count(Exemplar.id))
            .join(ImageSetMember, ImageSetMember.id == Exemplar.member_id)
            .where(ImageSetMember.set_id == image_set.id)
        )
        if used:
            raise ImageSetError(f"image set {name!r} is in use by {used} exemplars; kept")
        session.execute(delete(ImageSetMember).where(ImageSetMember.set_id == image_set.id))
        session.execute(delete(ImageSet).where(ImageSet.id == image_set.id))


def complete_set(session: Session, name: str) -> ImageSet:
    """The set `name`, only if its import finished; ImageSetError otherwise."""
    image_set = session.scalars(select(ImageSet).where(ImageSet.name == name)).one_or_none()
    if image_set is None:
        raise ImageSetError(f"no image set named {name!r} (fvlab images list shows them)")
    if image_set.status != ImageSetStatus.COMPLETE:
        raise ImageSetError(f"image set {name!r} is still importing or its import was cut off")
    return image_set


def member_batches(
    engine: Engine, set_id: int, batch_size: int, start: int = 0, stop: int | None = None
) -> Iterator[MemberBatch]:
    """Members `start` … `stop - 1` of a set, decoded, `batch_size` at a time and in order.

    Each batch is read in its own short transaction, so a long pass holds no lock.
    """
    if batch_size < 1:
        raise ImageSetError(f"batch size must be at least 1, got {batch_size}")
    position = start
    while stop is None or position < stop:
        upper = position + batch_size if stop is None else min(position + batch_size, stop)
        with unit_of_work(engine) as session:
            rows = session.execute(
                select(ImageSetMember.position, ImageSetMember.source, ImageSetMember.data)
                .where(ImageSetMember.set_id == set_id)
                .where(ImageSetMember.position >= position, ImageSetMember.position < upper)
                .order_by(ImageSetMember.position)
            ).all()
        if not rows:
            return
        yield MemberBatch(
            positions=np.array([r.position for r in rows], dtype=np.int64),
            sources=[r.source for r in rows],
            pixels=np.stack([decode_member(r.data) for r in rows]),
        )
        position = upper


def member_sources(engine: Engine, set_id: int) -> list[str]:
    """Every member's source, indexed by position (what source-disjoint queries need)."""
    with unit_of_work(engine) as session:
        return list(
            session.scalars(
                select(ImageSetMember.source)
                .where(ImageSetMember.set_id == set_id)
                .order_by(ImageSetMember.position)
            )
        )
