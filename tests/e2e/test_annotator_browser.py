"""Whole annotator sessions in Chromium: by keyboard, by mouse, and on a phone-sized screen.

Each test records what it clicked or typed for every trial token it saw and then compares that
with the ratings stored in the database, so a lost, duplicated or misattributed rating fails.
The keyboard session also counts the page's requests: at most three a trial
(`tests/e2e/request_budget.py`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.store.models import Rating, Trial
from tests.e2e.conftest import LiveSite
from tests.e2e.request_budget import Requests, check_budget

pytestmark = pytest.mark.browser

SCREENSHOTS = os.environ.get("FVLAB_SCREENSHOTS_DIR")
READY = "[data-answer=yes]:not([disabled])"
NEXT_TRIAL = """prev => location.pathname.endsWith('/done') || (
    !(document.getElementById('trial-image').getAttribute('src') || '').includes(prev)
    && !document.querySelector('[data-answer=yes]').disabled)"""


def _page(browser: Any, **context: Any) -> tuple[Any, list[str]]:
    page = browser.new_context(**context).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return page, problems


def _token(page: Any) -> str:
    return page.get_attribute("#trial-image", "src").split("/img/")[1].removesuffix(".png")


def _stored(site: LiveSite) -> dict[str, tuple[bool, int, str | None]]:
    with site.engine.connect() as conn:
        rows = conn.execute(
            select(Trial.token, Rating.interpretable, Rating.confidence, Rating.label,
                   Rating.rt_ms).join(Rating, Rating.trial_id == Trial.id)
        ).all()
    assert all(rt > 0 for *_, rt in rows)
    return {token: (bool(yes), confidence, label) for token, yes, confidence, label, _ in rows}


def _play(page: Any, answer_one: Any, limit: int = 40) -> dict[str, tuple[bool, int, str | None]]:
    """Answer trials with `answer_one(page, index)` until the end page; returns what was sent."""
    sent = {}
    for index in range(limit):
        page.wait_for_selector(READY)
        token = _token(page)
        sent[token] = answer_one(page, index)
        page.wait_for_function(NEXT_TRIAL, arg=token)
        if page.url.endswith("/done"):
            return sent
    raise AssertionError(f"no end page after {limit} trials")


def test_whole_session_by_keyboard(browser: Any, site: LiveSite) -> None:
    info = site.study(trials=6, catch_every=3, practice=2, size=64)
    page, problems = _page(browser, viewport={"width": 1280, "height": 900})
    requests = Requests(page)
    page.goto(f"{site.url}/study/{info.slug}")
    page.focus("input[name=consent]")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/instructions")
    # The Start button takes the focus by itself (autofocus) once the page has settled.
    page.wait_for_function("document.activeElement && document.activeElement.type === 'submit'")
    page.keyboard.press("Enter")
    page.wait_for_url("**/trials")

    def by_keys(page: Any, index: int) -> tuple[bool, int, str | None]:
        yes = index % 3 != 1
        confidence = index % 5 + 1
        page.keyboard.press("y" if yes else "n")
        page.keyboard.press(str(confidence))
        label = None
        if index % 4 == 0:
            label = f"thing {index}"
            page.focus("#label")
            page.keyboard.type(label)
        page.keyboard.press("Enter")
        return yes, confidence, label

    sent = _play(page, by_keys)
    assert len(sent) == 2 + 6 + 2
    assert "C0DE42" in page.inner_text("#completion-code")
    assert _stored(site) == sent
    check_budget(requests, list(sent), "rating")
    shown = [path for method, path in requests.seen if path.endswith("/shown")]
    assert len(shown) < len(sent)  # reported only when it says more than the last answer
    assert problems == []


def test_whole_session_by_mouse_with_prolific_hand_off(browser: Any, site: LiveSite) -> None:
    info = site.study(trials=6, catch_every=3, practice=2, size=128, completion_code="PAY123")
    page, problems = _page(browser, viewport={"width": 1280, "height": 900})
    page.route("https://app.prolific.com/**",
               lambda route: route.fulfill(status=200, body="prolific", content_type="text/plain"))
    page.goto(f"{site.url}/study/{info.slug}?PROLIFIC_PID=p-mouse&STUDY_ID=s&SESSION_ID=x")
    page.click("input[name=consent]")
    page.click("text=Continue")
    page.click("text=Start")
    page.wait_for_url("**/trials")

    def by_mouse(page: Any, index: int) -> tuple[bool, int, str | None]:
        yes = index % 2 == 0
        confidence = 5 - index % 5
        page.click(f"[data-answer={'yes' if yes else 'no'}]")
        page.click(f"[data-confidence='{confidence}']")
        label = "a shell" if index % 3 == 0 else None
        if label:
            page.click("#label")
            page.fill("#label", label)
        if SCREENSHOTS and index == 3:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SCREENSHOTS) / "trial-desktop.png"))
        page.click("#next")
        return yes, confidence, label

    sent = _play(page, by_mouse)
    assert "PAY123" in page.inner_text("#completion-code")
    assert _stored(site) == sent
    page.wait_for_url("https://app.prolific.com/submissions/complete?cc=PAY123", timeout=15_000)
    assert problems == []


def test_phone_layout_fits_and_works_by_touch(browser: Any, site: LiveSite) -> None:
    info = site.study(trials=4, catch_every=0, practice=1, size=128)
    page, problems = _page(browser, viewport={"width": 390, "height": 844}, has_touch=True,
                           is_mobile=True, device_scale_factor=2)
    page.goto(f"{site.url}/study/{info.slug}")
    page.tap("input[name=consent]")
    page.tap("text=Continue")
    page.tap("text=Start")
    page.wait_for_url("**/trials")
    page.wait_for_selector(READY)
    for selector in ("#trial-image", "[data-answer=no]", "[data-confidence='5']", "#next"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        assert box["y"] + box["height"] <= 844, f"{selector} is below the fold"
    sent = {}
    for index in range(2):
        page.wait_for_selector(READY)
        token = _token(page)
        page.tap("[data-answer=no]")
        page.tap("[data-confidence='2']")
        if SCREENSHOTS and index == 1:
            page.screenshot(path=str(Path(SCREENSHOTS) / "trial-phone.png"))
        page.tap("#next")
        sent[token] = (False, 2, None)
        page.wait_for_function(NEXT_TRIAL, arg=token)
    assert page.inner_text("#progress-label") == "2 of 4"
    assert _stored(site) == sent
    assert problems == []


def test_mturk_hand_off_posts_the_assignment_after_the_last_rating(browser: Any,
                                                                   site: LiveSite) -> None:
    info = site.study(trials=2, catch_every=0, practice=0, size=64)
    page, problems = _page(browser, viewport={"width": 1280, "height": 900})
    posts: list[tuple[str, str, str | None]] = []

    def mturk(route: Any) -> None:
        request = route.request
        posts.append((request.method, request.url, request.post_data))
        route.fulfill(status=200, body="mturk", content_type="text/plain")

    page.route("https://workersandbox.mturk.com/**", mturk)
    page.goto(f"{site.url}/study/{info.slug}?workerId=W7&assignmentId=A7&hitId=H7"
              "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    page.click("input[name=consent]")
    page.click("text=Continue")
    page.click("text=Start")
    page.wait_for_url("**/trials")

    def by_mouse(page: Any, index: int) -> tuple[bool, int, str | None]:
        page.click("[data-answer=yes]")
        page.click("[data-confidence='3']")
        page.click("#next")
        return True, 3, None

    sent = _play(page, by_mouse)
    assert _stored(site) == sent and len(sent) == 2
    page.wait_for_url("https://workersandbox.mturk.com/mturk/externalSubmit", timeout=15_000)
    assert [(method, url) for method, url, _ in posts] == [
        ("POST", "https://workersandbox.mturk.com/mturk/externalSubmit")
    ]
    assert "assignmentId=A7" in (posts[0][2] or "")
    assert problems == []
