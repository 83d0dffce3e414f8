"""Instant mode in a real browser: tick it on the Digits tab, drag the guidance slider, and see the final grid redraw
while the slider moves, with no Generate (benchmarks/instant_latency.py times the redraw)."""
from __future__ import annotations

import time

import pytest

from tests.test_browser import page as browser_page  # noqa: F401 - the running app in Chromium, and its skip
from tests.test_browser import pytestmark  # noqa: F401

FINAL = "#digits-final img"


@pytest.fixture(scope="module")
def page(browser_page):  # noqa: F811
    """The app's page (tests/test_browser.py) on the Digits tab, instant mode on and its first grid drawn."""
    turn_on_instant(browser_page)
    return browser_page


def turn_on_instant(page, tab: str = "Digits") -> None:
    """Open `tab`, tick Instant, and wait for its first grid (no Generate pressed)."""
    page.get_by_role("tab", name=tab).click()
    page.locator(f"#{tab.lower()}-instant input[type=checkbox]").check()
    page.wait_for_selector(f"#{tab.lower()}-final img", timeout=60_000)
    page.wait_for_function(f"document.querySelector('#{tab.lower()}-status').textContent.includes('Instant:')",
                           timeout=60_000)


def final_src(page) -> str:
    """The final grid's current picture (its URL changes with every redraw)."""
    return page.locator(FINAL).get_attribute("src") or ""


def drag_slider(page, elem_id: str, start: float, end: float, steps: int = 12, pause_s: float = 0.0):
    """Drag slider `elem_id`'s handle from fraction `start` to `end` of its track, as a person would; after each
    mouse move, call `pause_s` seconds of waiting. Returns the track's bounding box."""
    track = page.locator(f"#{elem_id} input[type=range]")
    track.scroll_into_view_if_needed()
    b = track.bounding_box()
    y = b["y"] + b["height"] / 2
    page.mouse.move(b["x"] + b["width"] * start, y)
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(b["x"] + b["width"] * (start + (end - start) * k / steps), y)
        if pause_s:
            time.sleep(pause_s)
    page.mouse.up()
    return b


def test_dragging_guidance_redraws_the_final_grid_while_it_moves(page):
    before, status_before = final_src(page), page.locator("#digits-status").text_content()
    seen = set()
    track = page.locator("#digits-guidance input[type=range]")
    track.scroll_into_view_if_needed()
    b = track.bounding_box()
    y = b["y"] + b["height"] / 2
    page.mouse.move(b["x"] + b["width"] * 0.2, y)  # g = 2 on the 0-10 slider
    page.mouse.down()
    for k in range(1, 9):  # to g = 0 in 8 moves, the button held down throughout
        page.mouse.move(b["x"] + b["width"] * 0.2 * (1 - k / 8), y)
        end = time.time() + 1.5
        while time.time() < end:
            seen.add(final_src(page))
            time.sleep(0.03)
    still_held = {s for s in seen if s}
    page.mouse.up()
    assert len(still_held - {before}) >= 2, "the grid should redraw several times while the button is held"
    page.wait_for_function("document.querySelector('#digits-status').textContent.includes('g = 0 ')",
                           timeout=30_000)
    assert page.locator("#digits-status").text_content() != status_before
    assert float(page.locator("#digits-guidance input[type=number]").input_value()) == 0


def instant_status_says(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('#digits-status').textContent.includes({text!r})", timeout=30_000)


def test_choosing_fewer_steps_redraws_from_that_student(page):
    """Instant steps 4 and 1 redraw the grid from the 4- and 1-step students (the status says which); 2, the
    default, goes back."""
    for steps in (4, 1, 2):
        before = final_src(page)
        page.locator("#digits-instant-steps").get_by_role("radio", name=str(steps), exact=True).check()
        instant_status_says(page, f"Instant: {steps} distilled steps")
        page.wait_for_function(f"document.querySelector('{FINAL}').src !== {before!r}", timeout=30_000)


def test_seed_and_label_redraw_too_and_generate_still_streams(page):
    before = final_src(page)
    box = page.locator("#digits-seed input")
    box.fill("7")
    box.press("Enter")
    page.wait_for_function(f"document.querySelector('{FINAL}').src !== {before!r}", timeout=30_000)
    after_seed = final_src(page)
    page.locator("#digits-label input").click()
    page.get_by_role("option", name="3", exact=True).click()
    page.wait_for_function(f"document.querySelector('{FINAL}').src !== {after_seed!r}", timeout=30_000)
    page.wait_for_function("document.querySelector('#digits-status').textContent.includes('Instant:')",
                           timeout=30_000)
    page.get_by_role("button", name="Generate", exact=True).locator("visible=true").first.click(force=True)
    page.wait_for_function("document.querySelector('#digits-status').textContent.includes('Done in')",
                           timeout=120_000)
    assert page.locator("#digits-xt img").get_attribute("src")  # the step-by-step view is still there


def test_the_fashion_tab_has_instant_mode_too(page):
    """The Fashion tab's own Instant box draws its grid from the fashion students (2 steps by default, 4 offered)."""
    turn_on_instant(page, "Fashion")
    page.wait_for_function("document.querySelector('#fashion-status').textContent.includes('Instant: 2 distilled "
                           "steps')", timeout=60_000)
    assert page.locator("#fashion-instant-steps").get_by_role("radio").count() == 2
