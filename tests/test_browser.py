"""The app in a real browser: Playwright driving headless Debian Chromium through every tab.

Generates on each tab, sees the picture change while the run is in progress, presses Stop, checks the
replay slider and the GIF, and saves screenshots to screenshots/ (one per tab also to docs/ for the README).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.test_app_api import ROOT, paced, running_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS, DOCS = ROOT / "screenshots", ROOT / "docs"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install chromium; never `playwright install`)")


@pytest.fixture(scope="module")
def page(request, tmp_path_factory):
    """A fresh page of the running app in headless Chromium, 1400×1000."""
    from playwright.sync_api import sync_playwright

    with running_app(request, tmp_path_factory.mktemp("checkpoints")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(url)
        page.wait_for_selector(".live-scatter[data-ready='1']", timeout=60_000)
        yield page
        browser.close()
        assert not errors, [f"{e}\n{e.stack}" for e in errors]


def shoot(page, name: str, docs: bool = False) -> None:
    """Save a full-page screenshot to screenshots/NAME.png (and, with UPDATE_DOCS=1, to docs/ for the README)."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if docs and os.environ.get("UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(SHOTS / f"{name}.png", DOCS / f"{name}.png")


def set_number(page, elem_id: str, value) -> None:
    """Type a value into a slider's (or number's) box, as a person would."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def click(page, name: str) -> None:
    """Click the visible button called `name` (force: a streaming plot would stall the stability check)."""
    page.get_by_role("button", name=name, exact=True).locator("visible=true").first.click(force=True)


def start_run(page, tab: str, button: str = "Generate") -> None:
    """Forget the last run's markers, click `button`, and wait until the tab's status shows the new run."""
    page.evaluate("document.querySelector('.live-scatter').dataset.step = ''")
    page.evaluate("document.querySelector('.live-scatter').dataset.final = ''")
    click(page, button)
    page.wait_for_function(f"!document.querySelector('#{tab}-status').textContent.includes('Done in')",
                           timeout=60_000, polling=10)


def watch(page, read, done, timeout: float = 120.0) -> set:
    """Poll `read()` until `done()`; return the distinct values seen on the way."""
    seen, end = set(), time.time() + timeout
    while not done():
        assert time.time() < end, f"no end of run within {timeout} s; saw {len(seen)} frames"
        seen.add(read())
        time.sleep(0.03)
    return seen


def status(page, tab: str) -> str:
    """The status line under a tab's live picture."""
    return page.locator(f"#{tab}-status").text_content() or ""


def test_spiral_streams_live_then_replays_and_offers_a_gif(page):
    box = page.locator(".live-scatter")
    set_number(page, "spiral-samples", 500)
    with paced("spiral", 0.002):  # the run takes >= 2 s, however fast the machine
        start_run(page, "spiral")
        steps = watch(page, lambda: box.get_attribute("data-step"), lambda: box.get_attribute("data-final") == "999")
    assert len(steps - {None}) >= 5  # the picture changed many times while the run was in progress
    page.wait_for_selector("#spiral-replay", state="visible", timeout=30_000)
    page.wait_for_selector("#spiral-gif a[download]", timeout=30_000)
    assert "Done in" in status(page, "spiral") and "mean distance" in status(page, "spiral")
    shoot(page, "app_spiral", docs=True)
    set_number(page, "spiral-replay", 100)
    page.wait_for_function("document.querySelector('.live-scatter').dataset.final === '100'", timeout=30_000)


def test_stop_ends_a_spiral_run_early(page):
    box = page.locator(".live-scatter")
    set_number(page, "spiral-samples", 5000)
    with paced("spiral", 0.01) as calls:  # the run takes >= 10 s: the Stop lands while it is going, on any machine
        start_run(page, "spiral")
        page.wait_for_function("Number(document.querySelector('.live-scatter').dataset.step) > 5", timeout=30_000)
        click(page, "Stop")
        page.wait_for_function("(document.querySelector('.live-scatter').dataset.final || '') !== ''",
                               timeout=30_000)
        time.sleep(1.0)
        stopped_at = len(calls)
        time.sleep(0.5)  # a run still going on the server would make about 50 more model calls meanwhile
        assert len(calls) <= stopped_at + 1
    assert int(box.get_attribute("data-final")) < 999 and "Done" not in status(page, "spiral")
    shoot(page, "spiral_stopped")


@pytest.mark.parametrize("tab, title, steps, samples", [("digits", "Digits", 12, 3), ("fashion", "Fashion", 12, 3),
                                                        ("pokemon", "Pokémon", 12, 9)])
def test_image_tab_streams_grids_tags_replays_and_offers_a_gif(page, tab, title, steps, samples):
    page.get_by_role("tab", name=title).click()
    page.wait_for_selector(f"#{tab}-steps input[type=number]", state="visible")
    set_number(page, f"{tab}-steps", steps)
    set_number(page, f"{tab}-samples", samples)
    img = page.locator(f"#{tab}-xt img")
    with paced(tab, 0.05):  # the run takes >= 0.6 s, however fast the machine
        start_run(page, tab)
        sources = watch(page, lambda: img.get_attribute("src") if img.count() else None,
                        lambda: "Done in" in status(page, tab))
    assert len(sources - {None}) >= 2  # the grid changed while the run was in progress
    page.wait_for_selector(f"#{tab}-final img", timeout=30_000)
    assert ("training sprite's outline" in status(page, tab)) == (tab == "pokemon")  # the copy check
    page.wait_for_selector(f"#{tab}-gif a[download]", timeout=30_000)
    shoot(page, f"app_{tab}", docs=True)
    set_number(page, f"{tab}-replay", 0)
    page.wait_for_function(f"document.querySelector('#{tab}-status').textContent.includes('step 1/{steps}')",
                           timeout=30_000)


def test_a_visitor_who_closes_the_page_takes_their_replay_frames_along(page):
    """A second visitor runs the Digits tab and closes the page: the server drops their frames at once (the
    unload event), not when their state expires; the first visitor's replay still works."""
    from diffusion_core.playground.recording import RECORDINGS

    other = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # its own session
    other.goto(page.url)
    other.get_by_role("tab", name="Digits").click()
    other.wait_for_selector("#digits-steps input[type=number]", state="visible")
    set_number(other, "digits-steps", 5)
    set_number(other, "digits-samples", 4)
    before = RECORDINGS.used
    click(other, "Generate")
    other.wait_for_selector("#digits-gif a[download]", timeout=60_000)  # the run's end: its recording is owned
    during = RECORDINGS.used
    assert during > before
    other.close()
    end = time.time() + 30
    while RECORDINGS.used > before and time.time() < end:
        time.sleep(0.1)
    assert RECORDINGS.used <= before < during
    page.get_by_role("tab", name="Digits").click()  # the first visitor's Digits run is still theirs to replay
    set_number(page, "digits-replay", 1)
    page.wait_for_function("document.querySelector('#digits-status').textContent.includes('step 2/12')",
                           timeout=30_000)


def draw(page, elem_id: str, stroke: list[tuple[float, float]]) -> None:
    """Draw one stroke with the brush of sketchpad `elem_id` through points given as fractions of the canvas."""
    canvas = page.locator(f"#{elem_id} canvas").last
    canvas.wait_for(state="visible", timeout=30_000)
    canvas.scroll_into_view_if_needed()
    page.locator(f"#{elem_id} button[aria-label='Brush']").first.click()
    b = canvas.bounding_box()
    (x0, y0), *rest = stroke
    page.mouse.move(b["x"] + b["width"] * x0, b["y"] + b["height"] * y0)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(b["x"] + b["width"] * x, b["y"] + b["height"] * y, steps=12)
    page.mouse.up()


def test_digits_sketch_is_completed(page):
    page.get_by_role("tab", name="Digits").click()
    page.get_by_text("Draw a digit and let the model finish it").click()
    draw(page, "digits-sketch", [(0.3, 0.2), (0.65, 0.2), (0.45, 0.85)])  # a 7
    start_run(page, "digits", "Complete my drawing")
    page.wait_for_function("document.querySelector('#digits-status').textContent.includes('Done in')",
                           timeout=120_000)
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "digits_sketch")


def test_pokemon_example_sprite_is_recoloured(page):
    page.get_by_role("tab", name="Pokémon").click()
    page.get_by_text("Recolour a sprite, or draw one").click()
    page.locator("#pokemon-sketch canvas").last.wait_for(state="visible", timeout=30_000)
    set_number(page, "pokemon-steps", 50)  # the tab's defaults (DDIM 50, eta 1, g = 3): what the README shows
    set_number(page, "pokemon-t-start", 700)
    start_run(page, "pokemon", "Recolour")  # the loaded example sprite, as it is
    page.wait_for_function("document.querySelector('#pokemon-status').textContent.includes('Done in')",
                           timeout=120_000)
    assert "colour class" in page.locator("#pokemon-status").text_content()
    assert "training sprite" not in page.locator("#pokemon-status").text_content()  # SDEdit keeps its drawing
    shoot(page, "app_pokemon_recolour", docs=True)


def test_how_it_works_moves_through_the_forward_process(page):
    page.get_by_role("tab", name="How it works").click()
    img = page.locator("#how-cosine img")
    img.wait_for(timeout=30_000)
    page.wait_for_selector("#how-plot .main-svg", timeout=60_000)
    page.locator("#step-x0-pred img").wait_for(timeout=30_000)
    before = img.get_attribute("src")
    step_before = page.locator("#step-x0-pred img").get_attribute("src")
    set_number(page, "how-t", 800)
    page.wait_for_function(f"document.querySelector('#how-cosine img').src !== {before!r}", timeout=30_000)
    page.wait_for_function(f"document.querySelector('#step-x0-pred img').src !== {step_before!r}", timeout=30_000)
    assert "cosine" in (page.locator("#how-numbers").text_content() or "")
    assert "The digits model (cosine schedule, t = 800, no label)" in (page.locator("#step-numbers").text_content() or "")
    page.locator("#step-label input").click()  # ask for the example's digit: the blur takes its shape
    page.get_by_role("option", name="3", exact=True).click()
    page.wait_for_function("document.querySelector('#step-numbers').textContent.includes('label 3, g = 1')",
                           timeout=30_000)
    page.wait_for_function("(document.querySelector('#step-plot .gtitle') || {}).textContent?.includes('label 3')",
                           timeout=30_000)  # the error curve of the labelled guess
    page.locator("#step-numbers").scroll_into_view_if_needed()  # the example and t stay in view (sticky)
    assert page.locator("#how-t").bounding_box()["y"] >= -1 and page.locator("#how-t").is_visible()
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(3000)  # the schedule plot's marker follows t
    shoot(page, "app_how", docs=True)


PANELS = """(() => { const fl = document.querySelector('.live-plot')._fullLayout;
  return [fl.xaxis, fl.yaxis, fl.xaxis2, fl.yaxis2].map(a => [a._offset, a._offset + a._length]); })()"""


def test_a_phone_sees_the_spiral_stacked_and_the_schedules_scroll(page):
    """390 px wide: all five tabs in the bar; x_t above x0_pred (beside each other they were too narrow to read),
    beside again once wide; How it works' three schedule plots keep a readable width and scroll sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        tabs = page.get_by_role("tab")  # every tab in the bar, none hidden in a "more" menu, on one line
        assert tabs.count() == 5 and len({tabs.nth(i).bounding_box()["y"] for i in range(5)}) == 1
        page.get_by_role("tab", name="How it works").click()
        page.wait_for_function("document.querySelector('#how-plot').scrollWidth >= 700", timeout=30_000)
        assert page.evaluate("document.querySelector('#how-plot').clientWidth") < 400
        page.get_by_role("tab", name="Spiral").click()
        page.wait_for_function(f"(([x, y, x2, y2]) => y[1] <= y2[0] && x2[1] - x2[0] > 250)({PANELS})",
                               timeout=30_000)  # x_t's panel ends above x0_pred's, each nearly the page's width
        shoot(page, "spiral_phone")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_function(f"(([x, y, x2, y2]) => x[1] <= x2[0] && y[0] === y2[0])({PANELS})", timeout=30_000)


def test_dark_theme_plots_take_the_page_colours(page):
    dark = page.context.browser.new_page()
    try:
        dark.goto(page.url.split("?")[0] + "?__theme=dark")
        dark.wait_for_selector(".live-scatter[data-ready='1']", timeout=60_000)
        svg, tick = dark.evaluate("""[getComputedStyle(document.querySelector('.live-plot .main-svg')).backgroundColor,
                                      getComputedStyle(document.querySelector('.live-plot .xtick text')).fill]""")
        text = dark.evaluate("getComputedStyle(document.body).getPropertyValue('--body-text-color')")
        assert svg == "rgba(0, 0, 0, 0)", svg  # the page's dark background shows through
        assert tick == "rgb({}, {}, {})".format(*bytes.fromhex(text.strip().lstrip("#"))), (tick, text)
        shoot(dark, "spiral_dark")
    finally:
        dark.close()
