"""A 2-AFC session through the site: pages, pictures, answers stored exactly once and judged on the
server, practice feedback, the request budget, and refusals of bad answers."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select

from annotate import create_app
from annotate.afc_examples import example_task
from annotate.compose import GUTTER, QUERY_CELL, REFERENCE_CELL, decode
from service.store.db import make_engine, unit_of_work
from service.store.models import Image, Rating, Trial
from tests.annotate.afc_support import AfcStudyInfo, answer_all_afc, make_afc_study
from tests.annotate.conftest import SECRET, make_study, start
from tests.conftest import create_schema

TRIAL_KEYS = {"token", "practice", "references", "queries", "answer"}
ANSWER_KEYS = {"answer", "state", "upcoming"}


def _trials(engine: Engine) -> dict[str, Trial]:
    with unit_of_work(engine) as db:
        trials = {t.token: t for t in db.scalars(select(Trial))}
        db.expunge_all()
    return trials


def _ratings(engine: Engine) -> int:
    with unit_of_work(engine) as db:
        return int(db.scalar(select(func.count(Rating.id))))


def _png(engine: Engine, sha: str) -> np.ndarray:
    with unit_of_work(engine) as db:
        return decode(db.scalar(select(Image.png).where(Image.sha256 == sha)))


def _shrunk(pixels: np.ndarray, side: int) -> np.ndarray:
    image = PILImage.fromarray(pixels).resize((side, side), PILImage.Resampling.LANCZOS)
    return np.asarray(image)


def _halves(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))
    width = pixels.shape[1] // 2
    return pixels[:, :width], pixels[:, width:]


@pytest.fixture
def afc(client: FlaskClient, engine: Engine) -> AfcStudyInfo:
    info = make_afc_study(engine, reference_kinds=("synthetic", "natural", "none"), trials=6,
                          catch_every=3, practice=2, k=2, n_basis=4, n_random=4)
    start(client, info.slug)
    return info


def test_whole_session_judged_on_the_server(client: FlaskClient, engine: Engine,
                                            afc: AfcStudyInfo) -> None:
    page = client.get(f"/study/{afc.slug}/trials")
    assert page.status_code == 200 and "choice.js" in page.text
    assert "Which of the two centre images belongs with the images on the right?" in page.text
    first = client.get("/api/v1/trials?limit=2").get_json()["trials"]
    assert [set(t) for t in first] == [TRIAL_KEYS] * 2
    upcoming, answers, requests = first, [], 0
    while upcoming:
        trial = upcoming[0]
        body = {"choice": len(answers) % 2, "confidence": len(answers) % 3 + 1, "rt_ms": 800}
        response = client.post(trial["answer"], json=body)
        requests += 1
        assert response.status_code == 201, response.text
        reply = response.get_json()
        keys = ANSWER_KEYS | ({"feedback"} if trial["practice"] else set())
        assert set(reply) == keys and reply["answer"] == body
        answers.append((trial, body, reply))
        upcoming = reply["upcoming"]
        if len(upcoming) > 1:  # the page preloads the trial after the one now due
            for url in (upcoming[1]["references"], upcoming[1]["queries"]):
                if url:
                    assert client.get(url).status_code == 200
                    requests += 1
    trials = _trials(engine)
    assert len(answers) == 2 + 6 + 2 and requests <= 3 * len(answers)
    with unit_of_work(engine) as db:
        stored = {t.token: r for t, r in db.execute(
            select(Trial, Rating).join(Rating, Rating.trial_id == Trial.id))}
        db.expunge_all()
    for trial, body, reply in answers:
        row, rating = trials[trial["token"]], stored[trial["token"]]
        assert (rating.choice, rating.confidence, rating.interpretable) == (
            body["choice"], body["confidence"], None)
        assert rating.correct == (body["choice"] == row.max_position)
        if trial["practice"]:
            assert reply["feedback"] == {"correct": rating.correct}
        assert (trial["references"] is None) == (row.reference == "none")
    done = client.get(f"/study/{afc.slug}/done")
    assert done.status_code == 200 and "AFC123" in done.text


def test_pictures_show_the_references_and_the_pair_in_the_trials_order(
        client: FlaskClient, engine: Engine, afc: AfcStudyInfo) -> None:
    answer_all_afc(client, lambda trial: {} if trial["practice"] else {"choice": 1})
    trials = _trials(engine)
    checked = set()
    for row in trials.values():
        if row.kind == "practice":
            continue
        images = afc.job.images[_direction(engine, row.stimulus_id)]
        queries = client.get(f"/img/{row.token}/queries.png")
        left, right = _halves(queries.data)
        if row.kind == "stimulus":
            max_sha = images["query_max"][row.query_task]
            min_sha = images["query_min"][row.query_task]
        else:  # a catch trial asks about two of the references it shows
            max_sha = images[f"{row.reference}_max"][row.query_task]
            min_sha = images[f"{row.reference}_min"][row.query_task]
        first, second = (max_sha, min_sha) if row.max_position == 0 else (min_sha, max_sha)
        assert np.array_equal(left, _shrunk(_png(engine, first), QUERY_CELL))
        assert np.array_equal(right, _shrunk(_png(engine, second), QUERY_CELL))
        references = client.get(f"/img/{row.token}/references.png")
        if row.reference == "none":
            assert references.status_code == 404
            continue
        low, high = _halves(references.data)
        inner = REFERENCE_CELL - 2 * GUTTER
        cell = slice(GUTTER, GUTTER + inner)
        assert np.array_equal(low[cell, cell],
                              _shrunk(_png(engine, images[f"{row.reference}_min"][0]), inner))
        assert np.array_equal(high[cell, cell],
                              _shrunk(_png(engine, images[f"{row.reference}_max"][0]), inner))
        checked.add((row.kind, row.reference))
    assert ("catch", "synthetic") in checked or ("catch", "natural") in checked
    practice = next(t for t in trials.values() if t.kind == "practice")
    left, right = _halves(client.get(f"/img/{practice.token}/queries.png").data)
    task = example_task(practice.query_task)
    expected = task.max_query if practice.max_position == 0 else task.min_query
    assert np.array_equal(left, _shrunk(expected, QUERY_CELL))


def _direction(engine: Engine, stimulus_id: int) -> int:
    from service.store.models import Stimulus

    with unit_of_work(engine) as db:
        return int(db.scalar(select(Stimulus.direction_id).where(Stimulus.id == stimulus_id)))


def test_an_answer_is_stored_once(client: FlaskClient, engine: Engine,
                                  afc: AfcStudyInfo) -> None:
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    body = {"choice": 1, "confidence": 3, "rt_ms": 1200}
    assert client.post(trial["answer"], json=body).status_code == 201
    again = client.post(trial["answer"], json=body)
    assert again.status_code == 200 and again.get_json()["answer"] == body
    other = client.post(trial["answer"], json={**body, "choice": 0})
    assert other.status_code == 409 and other.get_json()["answer"] == body
    assert _ratings(engine) == 1


def test_answers_go_in_order_and_to_their_own_route(app: Flask, client: FlaskClient,
                                                   engine: Engine, afc: AfcStudyInfo) -> None:
    first, second = client.get("/api/v1/trials?limit=2").get_json()["trials"]
    body = {"choice": 0, "confidence": 1, "rt_ms": 500}
    assert client.post(second["answer"], json=body).status_code == 409
    rating = {"interpretable": True, "confidence": 3, "label": None, "rt_ms": 500}
    refused = client.post(f"/api/v1/trials/{first['token']}/rating", json=rating)
    assert refused.status_code == 400 and refused.get_json()["field"] == "token"
    assert _ratings(engine) == 0
    # a rating study's trial takes no choice
    other = app.test_client()
    start(other, make_study(engine).slug)
    trial = other.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    wrong = other.post(f"/api/v1/trials/{trial['token']}/answer", json=body)
    assert wrong.status_code == 400 and _ratings(engine) == 0
    assert other.get(f"/img/{trial['token']}/queries.png").status_code == 404
    # pictures are for the session that owns the trial
    assert other.get(first["queries"]).status_code == 404
    assert client.get(first["queries"]).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"choice": 2, "confidence": 1, "rt_ms": 500}, "choice"),
    ({"choice": True, "confidence": 1, "rt_ms": 500}, "choice"),
    ({"choice": 0, "confidence": 4, "rt_ms": 500}, "confidence"),
    ({"choice": 0, "confidence": 0, "rt_ms": 500}, "confidence"),
    ({"choice": 0, "confidence": 2, "rt_ms": 0}, "rt_ms"),
    ({"choice": 0, "confidence": 2}, "rt_ms"),
    ({"choice": 0, "confidence": 2, "rt_ms": 500, "correct": True}, "correct"),
    ({"choice": 0, "confidence": 2, "rt_ms": 500, "interpretable": True}, "interpretable"),
    (["choice", 0], None),
])
def test_bad_answers_name_the_field_and_change_nothing(client: FlaskClient, engine: Engine,
                                                       afc: AfcStudyInfo, body: object,
                                                       field: str | None) -> None:
    trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
    response = client.post(trial["answer"], json=body)
    assert response.status_code == 400 and response.get_json()["field"] == field
    assert _ratings(engine) == 0


def test_instructions_teach_with_a_drawn_example(client: FlaskClient, engine: Engine,
                                                 afc: AfcStudyInfo) -> None:
    page = " ".join(client.get(f"/study/{afc.slug}/instructions").text.split())
    assert page.count('src="data:image/png;base64,') == 4  # each picture shown as two halves
    assert "up-and-down stripes" in page and "no images left and right" in page
    assert "<kbd>8</kbd>" in page and "practice" in page


def test_racing_duplicate_answers_store_one(postgres_url: str) -> None:
    """Eight copies of one answer at the same moment (a double tap on a slow line)."""
    engine = make_engine(postgres_url)
    create_schema(engine)
    app = create_app({"DATABASE_URL": postgres_url, "TESTING": True, "SECRET_KEY": SECRET})
    client = app.test_client()
    start(client, make_afc_study(engine, practice=0, n_basis=2, n_random=2).slug)
    url = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]["answer"]
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def submit() -> None:
        barrier.wait()
        statuses.append(client.post(url, json={"choice": 0, "confidence": 2,
                                               "rt_ms": 900}).status_code)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 7 + [201]
    assert _ratings(engine) == 1
    app.extensions["fvlab_engine"].dispose()
    engine.dispose()


def test_a_2afc_session_resumes_where_it_stopped(app: Flask, engine: Engine) -> None:
    info = make_afc_study(engine, trials=4, catch_every=0, practice=1, n_basis=2, n_random=2)
    query = "?PROLIFIC_PID=p-back&STUDY_ID=s&SESSION_ID=sub1"
    first = app.test_client()
    start(first, info.slug, query)
    answered = answer_all_afc_steps(first, 2)
    other = app.test_client()  # another browser, the same Prolific submission
    assert other.get(f"/study/{info.slug}{query}").status_code == 302
    assert other.get(f"/study/{info.slug}/trials").status_code == 200
    state = other.get("/api/v1/session").get_json()
    assert (state["phase"], state["trials"]["done"]) == ("trials", 1)
    upcoming = other.get("/api/v1/trials?limit=2").get_json()["trials"]
    assert upcoming[0]["token"] not in answered and len(upcoming) == 2
    assert answer_all_afc(other) and _ratings(engine) == 1 + 4


def answer_all_afc_steps(client: FlaskClient, steps: int) -> set[str]:
    """Answer the first `steps` trials; returns their tokens."""
    tokens = set()
    for _ in range(steps):
        trial = client.get("/api/v1/trials?limit=1").get_json()["trials"][0]
        assert client.post(trial["answer"], json={"choice": 1, "confidence": 1,
                                                  "rt_ms": 600}).status_code == 201
        tokens.add(trial["token"])
    return tokens
