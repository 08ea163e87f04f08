"""DESIGN.md "Blindness", checked on everything an annotator's browser receives in a session.

The test plays a Prolific annotator through the whole study (entry, consent, instructions,
practice, every trial, the end page), fetching every page, script, stylesheet, API answer and
image the way the page would, and inspects each response: bodies, headers, cookies, image bytes
and image sizes. Nothing may name or betray the condition, layer, channel, job or model.
"""

from __future__ import annotations

import io
import re
import struct
from collections import Counter
from itertools import pairwise
from os.path import commonprefix

from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select
from werkzeug.test import TestResponse

from service.store.models import CatchItem, Image, Stimulus, StudyStimulus, Trial
from tests.annotate.conftest import StudyInfo, make_study

TRIAL_KEYS = {"token", "practice", "image", "shown", "rating"}
STATE_KEYS = {"phase", "practice", "trials", "done_url"}


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append(data[at + 4 : at + 8])
        at += 12 + length
    return chunks


class Recorder:
    """A test client that keeps every response it receives."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.responses: list[tuple[str, TestResponse]] = []

    def get(self, url: str) -> TestResponse:
        response = self.client.get(url)
        self.responses.append((url, response))
        return response

    def post(self, url: str, **kwargs: object) -> TestResponse:
        response = self.client.post(url, **kwargs)
        self.responses.append((url, response))
        return response


def _secrets(engine: Engine, info: StudyInfo) -> list[str]:
    """Strings that would identify an item's condition or origin if an annotator saw them."""
    with engine.connect() as conn:
        stimulus_tokens = list(conn.scalars(select(Stimulus.token)))
        catch_tokens = list(conn.scalars(select(CatchItem.token)))
        catch_sources = list(conn.scalars(select(CatchItem.source)))
        hashes = list(conn.scalars(select(Image.sha256)))
    assert stimulus_tokens and catch_tokens
    return [info.job_name, info.model, info.layer, "efficientnet", "blocks.",
            *stimulus_tokens, *catch_tokens, *catch_sources, *hashes]


def _stimulus_length_range(engine: Engine, study_id: int) -> tuple[int, int]:
    """The shortest and longest stimulus PNG of the study (all of them, served or not)."""
    with engine.connect() as conn:
        lengths = list(conn.scalars(
            select(func.length(Image.png))
            .join(Stimulus, Stimulus.image_sha256 == Image.sha256)
            .join(StudyStimulus, StudyStimulus.stimulus_id == Stimulus.id)
            .where(StudyStimulus.study_id == study_id)))
    assert lengths
    return min(lengths), max(lengths)


def test_a_whole_session_reveals_nothing(client: FlaskClient, engine: Engine) -> None:
    info = make_study(engine, n_basis=5, n_random=5, trials=8, catch_every=3, practice=2)
    browser = Recorder(client)
    slug = info.slug
    query = "?PROLIFIC_PID=pid1&STUDY_ID=s1&SESSION_ID=x1"
    browser.get(f"/study/{slug}{query}")
    browser.post(f"/study/{slug}/start", data={"PROLIFIC_PID": "pid1", "STUDY_ID": "s1",
                                               "SESSION_ID": "x1", "consent": "yes"})
    browser.get(f"/study/{slug}/instructions")
    browser.post(f"/study/{slug}/instructions")
    page = browser.get(f"/study/{slug}/trials")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        browser.get(asset)
    images: list[TestResponse] = []
    served: list[tuple[str, TestResponse]] = []
    rating_keys: set[frozenset[str]] = set()
    while True:
        state = browser.get("/api/v1/session").get_json()
        assert set(state) == STATE_KEYS
        upcoming = browser.get("/api/v1/trials?limit=5").get_json()["trials"]
        if not upcoming:
            break
        trial = upcoming[0]
        assert set(trial) == TRIAL_KEYS
        images.append(browser.get(trial["image"]))
        served.append((trial["token"], images[-1]))
        assert browser.post(trial["shown"]).status_code == 204
        stored = browser.post(trial["rating"], json={"interpretable": True, "confidence": 3,
                                                     "label": None, "rt_ms": 800})
        assert stored.status_code == 201
        rating_keys.add(frozenset(stored.get_json()))
        rating_keys.add(frozenset(stored.get_json()["state"]))
    done = browser.get(f"/study/{slug}/done")
    assert done.status_code == 200
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', done.text):
        browser.get(asset)

    with engine.connect() as conn:
        trials = conn.execute(select(Trial.kind, Trial.token).order_by(Trial.position)).all()
    kinds = {kind for kind, _ in trials}
    assert kinds == {"practice", "stimulus", "catch"}
    assert len(images) == len(trials) == 2 + 8 + 3
    assert len(rating_keys) == 2  # the same answer shape for every kind of trial

    # Images: same size, same headers (length aside), nothing in the PNG but pixels.
    header_sets = {
        tuple(sorted((k, v) for k, v in r.headers.items() if k != "Content-Length"))
        for r in images
    }
    assert len(header_sets) == 1
    for response in images:
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert _png_chunks(response.data) == [b"IHDR", b"IDAT", b"IEND"]
        assert PILImage.open(io.BytesIO(response.data)).size == (32, 32)

    # Lengths: no catch or practice picture is shorter or longer than the study's stimuli, so
    # Content-Length cannot pick out the attention checks.
    low, high = _stimulus_length_range(engine, info.id)
    kind_of = dict((token, kind) for kind, token in trials)
    checks = [(token, r) for token, r in served if kind_of[token] != "stimulus"]
    assert {kind_of[token] for token, _ in checks} == {"catch", "practice"}
    for token, response in served:
        assert low <= int(response.headers["Content-Length"]) <= high, (kind_of[token], low, high)

    # Tokens: random, unrelated to each other and to position.
    tokens = [token for _, token in trials]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", t) for t in tokens)
    assert tokens != sorted(tokens)
    common = max(len(commonprefix([a, b])) for a, b in pairwise(sorted(tokens)))
    assert common < 6

    # Cookies: one signed session cookie holding only the session token.
    serializer = client.application.session_interface.get_signing_serializer(  # type: ignore[attr-defined]
        client.application
    )
    cookies = [v for _, r in browser.responses for v in r.headers.getlist("Set-Cookie")]
    assert cookies
    for cookie in cookies:
        name, value = cookie.split(";")[0].split("=", 1)
        assert name == "session"
        assert set(serializer.loads(value)) == {"t"}

    # Every response: no secret strings, no condition words, in body or headers.
    forbidden = _secrets(engine, info)
    words = re.compile(r"\b(basis|random|channel|layer|condition|direction|job|model)\b", re.I)
    catch_word = re.compile(r"\bcatch\b", re.I)
    for url, response in browser.responses:
        assert response.status_code < 400, url
        texts = [str(response.headers)]
        if not response.mimetype.startswith("image/"):
            texts.append(response.get_data(as_text=True))
        for text in texts:
            for secret in forbidden:
                assert secret not in text, (url, secret)
            if url.startswith("/static/"):
                # The same file for everyone, so it cannot carry an item's condition; its CSS
                # (`flex-direction`) and JavaScript (`catch`) keywords are not words to a person.
                continue
            assert not words.search(text), (url, words.search(text))
            assert not catch_word.search(text), url



AFC_TRIAL_KEYS = {"token", "practice", "references", "queries", "answer"}
AFC_REPLY_KEYS = {"answer", "state", "upcoming"}


def _shape(value: object) -> object:
    """A JSON value with every trial token replaced and every scalar reduced to its type."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, str):
        return re.sub(r"[A-Za-z0-9_-]{32}", "T", value)
    return type(value).__name__


def _afc_length_ranges(engine: Engine, images: dict[int, dict[str, list[str]]]
                       ) -> dict[str, tuple[int, int]]:
    """The shortest and longest composed picture of each part over every stimulus trial the
    study could serve: each direction's query pairs in both orders, its references of each
    kind with pictures."""
    from annotate.compose import decode, queries_png, references_png

    with engine.connect() as conn:
        pixels = {sha: decode(png) for sha, png in conn.execute(select(Image.sha256, Image.png))}
    lengths: dict[str, list[int]] = {"references": [], "queries": []}
    for shown in images.values():
        for high, low in zip(shown["query_max"], shown["query_min"], strict=True):
            for first, second in ((high, low), (low, high)):
                lengths["queries"].append(len(queries_png(pixels[first], pixels[second])))
        for kind in ("synthetic", "natural"):
            lengths["references"].append(len(references_png(
                [pixels[sha] for sha in shown[f"{kind}_min"]],
                [pixels[sha] for sha in shown[f"{kind}_max"]])))
    return {part: (min(found), max(found)) for part, found in lengths.items()}


def test_a_whole_2afc_session_reveals_nothing(client: FlaskClient, engine: Engine) -> None:
    from service.store.images import encode_png
    from tests.annotate.afc_support import make_afc_study

    info = make_afc_study(engine, reference_kinds=("synthetic", "natural", "none"), trials=10,
                          catch_every=3, practice=2, k=2, n_basis=6, n_random=6, references=4)
    browser = Recorder(client)
    slug = info.slug
    browser.get(f"/study/{slug}?PROLIFIC_PID=pid2&STUDY_ID=s1&SESSION_ID=x2")
    browser.post(f"/study/{slug}/start", data={"PROLIFIC_PID": "pid2", "STUDY_ID": "s1",
                                               "SESSION_ID": "x2", "consent": "yes"})
    browser.get(f"/study/{slug}/instructions")
    browser.post(f"/study/{slug}/instructions")
    page = browser.get(f"/study/{slug}/trials")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        browser.get(asset)
    assert set(browser.get("/api/v1/session").get_json()) == STATE_KEYS
    upcoming = browser.get("/api/v1/trials?limit=2").get_json()["trials"]
    seen: list[tuple[dict, dict, TestResponse | None, TestResponse]] = []
    while upcoming:
        trial = upcoming[0]
        assert set(trial) == AFC_TRIAL_KEYS
        token = trial["token"]
        # the URLs carry the trial's token and nothing else
        assert trial["queries"] == f"/img/{token}/queries.png"
        assert trial["answer"] == f"/api/v1/trials/{token}/answer"
        assert trial["references"] in (None, f"/img/{token}/references.png")
        references = browser.get(trial["references"]) if trial["references"] else None
        queries = browser.get(trial["queries"])
        reply = browser.post(trial["answer"], json={"choice": 0, "confidence": 2, "rt_ms": 900})
        assert reply.status_code == 201
        seen.append((trial, reply.get_json(), references, queries))
        upcoming = reply.get_json()["upcoming"]
    done = browser.get(f"/study/{slug}/done")
    assert done.status_code == 200

    with engine.connect() as conn:
        rows = {token: (kind, reference, max_position) for token, kind, reference, max_position
                in conn.execute(select(Trial.token, Trial.kind, Trial.reference,
                                       Trial.max_position))}
    kinds = Counter(rows[trial["token"]][0] for trial, *_ in seen)
    assert kinds == Counter({"practice": 2, "stimulus": 10, "catch": 3})
    assert {rows[trial["token"]][2] for trial, *_ in seen} == {0, 1}

    # Answers: one shape for stimulus and catch trials, whichever query was the max one; only
    # practice says whether the answer was right.
    shapes: dict[str, set[str]] = {}
    for trial, reply, _, _ in seen:
        kind, reference, _ = rows[trial["token"]]
        if kind == "practice":
            assert set(reply) == AFC_REPLY_KEYS | {"feedback"}
            continue
        assert set(reply) == AFC_REPLY_KEYS
        shown = {"trial": trial, "answer": reply["answer"], "state": sorted(reply["state"])}
        shapes.setdefault(reference, set()).add(repr(_shape(shown)))
    assert {reference: len(found) for reference, found in shapes.items()} == {
        "synthetic": 1, "natural": 1, "none": 1}

    # Pictures: one size per part whatever the trial, only pixel chunks, bytes that are the
    # store encoder's for those pixels (the queries uncompressed), the same headers.
    sizes = {"references": set(), "queries": set()}
    responses = []
    for trial, _, references, queries in seen:
        if rows[trial["token"]][0] == "practice":
            continue
        for part, response in (("references", references), ("queries", queries)):
            if response is None:
                continue
            assert response.status_code == 200 and response.mimetype == "image/png"
            chunks = _png_chunks(response.data)  # large pictures split their pixels' IDAT
            assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
            assert set(chunks[1:-1]) == {b"IDAT"}
            pixels = PILImage.open(io.BytesIO(response.data)).convert("RGB")
            assert encode_png(pixels, stored=part == "queries").png == response.data
            sizes[part].add(pixels.size)
            responses.append(response)
    assert sizes == {"references": {(384, 192)}, "queries": {(320, 160)}}

    # Lengths: a catch trial's pictures are no shorter or longer than the study's stimulus
    # trials' pictures could be (any direction, pair, order and reference kind shown), so
    # Content-Length cannot pick out the attention checks.
    ranges = _afc_length_ranges(engine, info.job.images)
    catch_parts = 0
    for trial, _, references, queries in seen:
        if rows[trial["token"]][0] != "catch":
            continue
        for part, response in (("references", references), ("queries", queries)):
            assert response is not None
            low, high = ranges[part]
            assert low <= int(response.headers["Content-Length"]) <= high, (part, low, high)
            catch_parts += 1
    assert catch_parts == 2 * kinds["catch"]
    # The queries picture, where a catch trial's differ (two references, not two photos), has one
    # length whatever it shows.
    assert len({int(queries.headers["Content-Length"]) for *_, queries in seen}) == 1
    header_sets = {tuple(sorted((k, v) for k, v in r.headers.items() if k != "Content-Length"))
                   for r in responses}
    assert len(header_sets) == 1

    # Every response: no secret strings or condition words; no answer key in any JSON.
    with engine.connect() as conn:
        extra = list(conn.scalars(select(Image.sha256)))
        extra += list(conn.scalars(select(Stimulus.token))) + list(conn.scalars(
            select(CatchItem.token))) + list(conn.scalars(select(CatchItem.source)))
    forbidden = [info.job.name, info.job.model, info.job.layer, "efficientnet", "blocks.",
                 "reference-check", *extra]
    words = re.compile(r"\b(basis|random|channel|layer|condition|direction|job|model|catch)\b",
                       re.I)
    for url, response in browser.responses:
        assert response.status_code < 400, url
        texts = [str(response.headers)]
        if not response.mimetype.startswith("image/"):
            texts.append(response.get_data(as_text=True))
        for text in texts:
            for secret in forbidden:
                assert secret not in text, (url, secret)
            if not url.startswith("/static/"):
                assert not words.search(text), (url, words.search(text))
        if response.is_json and "feedback" not in response.get_json():
            text = response.get_data(as_text=True).replace(slug, "S")  # random ids may
            bare = re.sub(r"[A-Za-z0-9_-]{32}", "T", text)  # spell anything
            hint = re.search(r"max|\bmin|correct|right|position|sign", bare, re.I)
            assert hint is None, (url, hint)
