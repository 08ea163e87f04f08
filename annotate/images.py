"""`/img/<token>.png` and a 2-AFC trial's `/img/<token>/references.png` and `/queries.png`: every
image an annotator sees, addressed by its trial's token only.

Stimuli, catch items and practice items are served by the same query with the same headers (no
ETag or Last-Modified, which could reveal that two tokens share an image or when it was made),
and only to the browser whose session owns the trial, so a token copied elsewhere shows nothing.
A request reads only which image the token shows (one statement outside a transaction); the
bytes come from the process' cache (`annotate.png_cache`) after the first time.
A 2-AFC trial's two pictures are composed on the server (`annotate.compose`): the queries in the
order the trial shows them, so which one is the max query is in the pixels alone.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app
from sqlalchemy import bindparam, func, select

from annotate.afc_examples import example_task
from annotate.compose import decode, queries_png, references_png
from annotate.current import session_token
from annotate.database import get_db, get_engine
from annotate.kept import Kept
from annotate.png_cache import PngCache
from service.store.db import reading
from service.store.models import (
    AnnotationSession,
    CatchItem,
    Image,
    ReferenceKind,
    Stimulus,
    Trial,
    TrialKind,
)
from service.store.tokens import is_token
from service.studies.afc_items import DirectionItems, Sides, direction_items

bp = Blueprint("images", __name__)

IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400"}
PNGS_KEY = "fvlab_pngs"
ITEMS_KEY = "fvlab_direction_items"


_SHOWN = (  # the image a trial of the browser's session (by the cookie's token) shows; built once
    select(func.coalesce(Stimulus.image_sha256, CatchItem.image_sha256))
    .select_from(Trial)
    .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
    .outerjoin(Stimulus, Trial.stimulus_id == Stimulus.id)
    .outerjoin(CatchItem, Trial.catch_item_id == CatchItem.id)
    .where(Trial.token == bindparam("trial"), AnnotationSession.token == bindparam("session"),
           Trial.reference.is_(None))
)
_AFC_TRIAL = (  # a 2-AFC trial of the browser's session, with the direction it shows
    select(Trial.kind, Trial.reference, Trial.query_task, Trial.max_position,
           Stimulus.direction_id)
    .select_from(Trial)
    .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
    .outerjoin(Stimulus, Trial.stimulus_id == Stimulus.id)
    .where(Trial.token == bindparam("trial"), AnnotationSession.token == bindparam("session"),
           Trial.reference.is_not(None))
)


@bp.get("/img/<token>.png")
def image(token: str) -> Response:
    owner = session_token()
    if owner is None or not is_token(token):
        abort(404)
    with reading(get_engine()) as conn:
        sha = conn.scalar(_SHOWN, {"trial": token, "session": owner})
        png = None if sha is None else _pngs().get(
            ("stored", sha),
            lambda: conn.execute(select(Image.png).where(Image.sha256 == sha)).scalar_one())
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers=IMAGE_HEADERS)


def _pixels(shas: tuple[str, ...]) -> list[Any]:
    rows = dict(get_db().execute(select(Image.sha256, Image.png)
                                 .where(Image.sha256.in_(shas))).all())
    return [decode(rows[sha]) for sha in shas]


def _ordered(max_one: Any, min_one: Any, max_position: int) -> tuple[Any, Any]:
    return (max_one, min_one) if max_position == 0 else (min_one, max_one)


def _practice(part: str, index: int, max_position: int) -> bytes:
    task = example_task(index)
    if part == "references":
        return references_png(task.min_references, task.max_references)
    return queries_png(*_ordered(task.max_query, task.min_query, max_position))


def _sides(items: DirectionItems, reference: str) -> Sides:
    sides = items.references(reference)
    if sides is None:  # not a kind with pictures; `_composed` answers those before
        abort(404)
    return sides


def _references(sides: Sides) -> bytes:
    key = ("references", *sides.min_images, "|", *sides.max_images)
    return _pngs().get(key, lambda: references_png(_pixels(sides.min_images),
                                                   _pixels(sides.max_images)))


def init_app(app: Flask) -> None:
    """The process' PNGs and directions' items, kept for the app's picture requests."""
    app.extensions[PNGS_KEY] = PngCache()
    app.extensions[ITEMS_KEY] = Kept[DirectionItems]()


def _pngs() -> PngCache:
    return current_app.extensions[PNGS_KEY]


def _items(direction_id: int) -> DirectionItems:
    """The direction's references and query pairs, which its exemplar pass made once and for
    all; a process reads them once a minute at most (`annotate.kept`), not on every picture
    request."""
    kept: Kept[DirectionItems] = current_app.extensions[ITEMS_KEY]
    return kept.get(direction_id,
                    lambda: direction_items(get_db(), [direction_id])[direction_id])


def _composed(trial: Any, part: str) -> bytes | None:
    """The trial's picture `part`, or None when it has none (no references to show)."""
    if part == "references" and trial.reference == ReferenceKind.NONE:
        return None
    if trial.kind == TrialKind.PRACTICE:
        return _pngs().get(("practice", part, trial.query_task, trial.max_position),
                           lambda: _practice(part, trial.query_task, trial.max_position))
    items = _items(trial.direction_id)
    if part == "references":
        return _references(_sides(items, trial.reference))
    if trial.kind == TrialKind.CATCH:  # IMI's check: both queries are shown references
        sides = _sides(items, trial.reference)
        max_one, min_one = (sides.max_images[trial.query_task],
                            sides.min_images[trial.query_task])
    else:
        pair = items.pairs[trial.query_task]
        max_one, min_one = pair.max_image, pair.min_image
    first, second = _ordered(max_one, min_one, trial.max_position)
    return _pngs().get(("queries", first, second),
                       lambda: queries_png(*_pixels((first, second))))


@bp.get("/img/<token>/<any(references, queries):part>.png")
def composed(token: str, part: str) -> Response:
    owner = session_token()
    if owner is None or not is_token(token):
        abort(404)
    with reading(get_engine()) as conn:
        trial = conn.execute(_AFC_TRIAL, {"trial": token, "session": owner}).first()
    png = None if trial is None else _composed(trial, part)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers=IMAGE_HEADERS)
