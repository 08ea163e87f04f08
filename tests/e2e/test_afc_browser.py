"""Whole 2-AFC sessions in Chromium: by keyboard (number keys and arrows), by mouse with the
Prolific hand-off, and by touch on a phone-sized screen.

Each test records which centre image and confidence it picked for every trial token it saw and
compares that with the answers stored, including whether the server judged each one right, so
a lost, duplicated, misread or misjudged answer fails. The keyboard session also counts the
page's requests: at most three a trial (`tests/e2e/request_budget.py`).
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from service.store.models import Rating, Trial
from tests.annotate.afc_support import AfcStudyInfo, make_afc_study
from tests.e2e.conftest import LiveSite
from tests.e2e.request_budget import Requests, check_budget

pytestmark = pytest.mark.browser

SCREENSHOTS = os.environ.get("FVLAB_SCREENSHOTS_DIR")
READY = "button.pick:not([disabled])"
NEXT_TRIAL = """prev => location.pathname.endsWith('/done') || (
    !(document.querySelector('img.query.first').getAttribute('src') || '').includes(prev)
    && !document.querySelector('button.pick').disabled)"""
KEYS = {"1": (0, 3), "2": (0, 2), "3": (0, 1), "8": (1, 1), "9": (1, 2), "0": (1, 3)}


def _page(browser: Any, **context: Any) -> tuple[Any, list[str]]:
    page = browser.new_context(**context).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return page, problems


def _token(page: Any) -> str:
    return page.get_attribute("img.query.first", "src").split("/img/")[1].split("/")[0]


def _stored(site: LiveSite) -> dict[str, tuple[int, int]]:
    """{trial token: (choice, confidence)}, after checking the server's judgement of each."""
    with site.engine.connect() as conn:
        rows = conn.execute(
            select(Trial.token, Trial.max_position, Rating.choice, Rating.confidence,
                   Rating.correct, Rating.rt_ms, Rating.interpretable)
            .join(Rating, Rating.trial_id == Trial.id)
        ).all()
    for _, max_position, choice, _, correct, rt_ms, interpretable in rows:
        assert bool(correct) == (choice == max_position) and rt_ms > 0 and interpretable is None
    return {token: (choice, confidence) for token, _, choice, confidence, *_ in rows}


def _practice_feedback(page: Any, site: LiveSite, token: str, choice: int) -> None:
    """A practice answer shows whether it was right, as the server judged it."""
    with site.engine.connect() as conn:
        max_position = conn.scalar(select(Trial.max_position).where(Trial.token == token))
    page.wait_for_selector("#feedback:not([hidden])")
    right = page.inner_text("#feedback").startswith("Right!")
    assert right == (choice == max_position)
    assert page.locator(f"img.query.{'first' if max_position == 0 else 'second'}"
                        ".right-answer").count() == 1


def _shows_its_references(page: Any, site: LiveSite, token: str) -> None:
    """The reference groups are on screen unless the trial shows none; then a note is."""
    with site.engine.connect() as conn:
        reference = conn.scalar(select(Trial.reference).where(Trial.token == token))
    for side in ("left", "right"):
        assert page.is_visible(f".panel.{side} img.refs") == (reference != "none"), side
        assert page.is_visible(f".panel.{side} .no-refs") == (reference == "none"), side


def _play(page: Any, site: LiveSite, answer_one: Any, practice: int,
          limit: int = 40) -> dict[str, tuple[int, int]]:
    """Answer trials with `answer_one(page, index)` until the end page; returns what was sent."""
    sent = {}
    for index in range(limit):
        page.wait_for_selector(READY)
        token = _token(page)
        _shows_its_references(page, site, token)
        sent[token] = answer_one(page, index)
        if index < practice:
            _practice_feedback(page, site, token, sent[token][0])
        page.wait_for_function(NEXT_TRIAL, arg=token, timeout=15_000)
        if page.url.endswith("/done"):
            return sent
    raise AssertionError(f"no end page after {limit} trials")


def _enter(page: Any, site: LiveSite, info: AfcStudyInfo, query: str = "") -> None:
    page.goto(f"{site.url}/study/{info.slug}{query}")
    page.click("input[name=consent]")
    page.click("text=Continue")
    page.wait_for_url("**/instructions")
    page.click("text=Start")
    page.wait_for_url("**/trials")


def _photos() -> list[np.ndarray]:
    """Crops of the bundled photos, to stand in for natural exemplars in screenshots."""
    from service.store.photos import builtin_photos, crops

    found = []
    for _, photo in builtin_photos():
        for crop in islice(crops(photo), 0, 28, 3):
            found.append(np.asarray(crop.resize((224, 224))))
    return found


def test_whole_2afc_session_by_keyboard(browser: Any, site: LiveSite) -> None:
    info = make_afc_study(site.engine, reference_kinds=("synthetic", "natural", "none"),
                          trials=6, catch_every=3, practice=2, n_basis=4, n_random=4)
    page, problems = _page(browser, viewport={"width": 1280, "height": 900})
    requests = Requests(page)
    page.goto(f"{site.url}/study/{info.slug}")
    page.focus("input[name=consent]")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/instructions")
    page.wait_for_function("document.activeElement && document.activeElement.type === 'submit'")
    page.keyboard.press("Enter")
    page.wait_for_url("**/trials")

    def by_keys(page: Any, index: int) -> tuple[int, int]:
        if index == 3:  # arrows move between the buttons, Enter presses the one in focus
            for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft", "Enter"):
                page.keyboard.press(key)
            return 1, 2  # the first arrow lands on the right image's Guess, then 9, 0, back
        key = "123890"[index % 6]
        page.keyboard.press(key)
        return KEYS[key]

    sent = _play(page, site, by_keys, practice=2)
    assert len(sent) == 2 + 6 + 2
    assert "AFC123" in page.inner_text("#completion-code")
    assert _stored(site) == sent
    check_budget(requests, list(sent), "answer")
    assert problems == []


def test_whole_2afc_session_by_mouse_with_prolific_hand_off(browser: Any,
                                                           site: LiveSite) -> None:
    info = make_afc_study(site.engine, reference_kinds=("synthetic",), trials=6, catch_every=3,
                          practice=1, n_basis=4, n_random=4, references=9, size=128,
                          completion_code="PAY2AFC", photos=_photos())
    page, problems = _page(browser, viewport={"width": 1280, "height": 900})
    page.route("https://app.prolific.com/**",
               lambda route: route.fulfill(status=200, body="prolific", content_type="text/plain"))
    _enter(page, site, info, "?PROLIFIC_PID=p-afc&STUDY_ID=s&SESSION_ID=x")

    def by_mouse(page: Any, index: int) -> tuple[int, int]:
        choice, confidence = index % 2, 3 - index % 3
        if SCREENSHOTS and index == 2:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SCREENSHOTS) / "trial-2afc-desktop.png"))
        page.click(f"button.pick[data-choice='{choice}'][data-confidence='{confidence}']")
        return choice, confidence

    sent = _play(page, site, by_mouse, practice=1)
    assert "PAY2AFC" in page.inner_text("#completion-code")
    assert _stored(site) == sent
    page.wait_for_url("https://app.prolific.com/submissions/complete?cc=PAY2AFC",
                      timeout=15_000)
    assert problems == []


def test_2afc_phone_layout_fits_and_works_by_touch(browser: Any, site: LiveSite) -> None:
    info = make_afc_study(site.engine, reference_kinds=("natural",), trials=4, catch_every=0,
                          practice=0, n_basis=2, n_random=2, references=9, photos=_photos())
    page, problems = _page(browser, viewport={"width": 390, "height": 844}, has_touch=True,
                           is_mobile=True, device_scale_factor=2)
    page.goto(f"{site.url}/study/{info.slug}")
    page.tap("input[name=consent]")
    page.tap("text=Continue")
    page.tap("text=Start")
    page.wait_for_url("**/trials")
    page.wait_for_selector(READY)
    for selector in ("img.refs.first", "img.refs.second", "img.query.first", "img.query.second",
                     "button.pick[data-choice='0'][data-confidence='3']",
                     "button.pick[data-choice='1'][data-confidence='3']"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        assert box["y"] + box["height"] <= 844, f"{selector} is below the fold"
    left = page.locator("img.refs.first").bounding_box()
    right = page.locator("img.refs.second").bounding_box()
    assert left["x"] + left["width"] <= right["x"]  # the max references stay on the right
    sent = {}
    for index in range(2):
        page.wait_for_selector(READY)
        token = _token(page)
        if SCREENSHOTS and index == 1:
            page.screenshot(path=str(Path(SCREENSHOTS) / "trial-2afc-phone.png"))
        page.tap("button.pick[data-choice='1'][data-confidence='2']")
        sent[token] = (1, 2)
        page.wait_for_function(NEXT_TRIAL, arg=token)
    assert page.inner_text("#progress-label") == "3 of 4"
    assert _stored(site) == sent
    assert problems == []
