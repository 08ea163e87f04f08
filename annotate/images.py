"""`/img/<token>.png`: every image an annotator sees, addressed by its trial's token only.

Stimuli, catch items and practice items are served by the same query with the same headers (no
ETag or Last-Modified, which could reveal that two tokens share an image or when it was made),
and only to the browser whose session owns the trial, so a token copied elsewhere shows nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort
from sqlalchemy import bindparam, func, select

from annotate.current import session_token
from annotate.database import get_db
from service.store.models import AnnotationSession, CatchItem, Image, Stimulus, Trial
from service.store.tokens import is_token

bp = Blueprint("images", __name__)

IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400"}


_PNG = (  # the trial, its owner session (by the cookie's token) and the PNG at once; built once
    select(Image.png)
    .select_from(Trial)
    .join(AnnotationSession, Trial.session_id == AnnotationSession.id)
    .outerjoin(Stimulus, Trial.stimulus_id == Stimulus.id)
    .outerjoin(CatchItem, Trial.catch_item_id == CatchItem.id)
    .join(Image, Image.sha256 == func.coalesce(Stimulus.image_sha256, CatchItem.image_sha256))
    .where(Trial.token == bindparam("trial"), AnnotationSession.token == bindparam("session"))
)


@bp.get("/img/<token>.png")
def image(token: str) -> Response:
    owner = session_token()
    if owner is None or not is_token(token):
        abort(404)
    png = get_db().connection().scalar(_PNG, {"trial": token, "session": owner})
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers=IMAGE_HEADERS)
