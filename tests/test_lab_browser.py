"""The Spiral lab in a real browser (Playwright + Debian Chromium): draw a shape, train on it live, sample it with
paths and arrows on, and compare flow matching with DDIM from the same noise. Screenshots to screenshots/ (and with
UPDATE_DOCS=1 the README's picture to docs/)."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.test_browser import (CHROMIUM, DOCS, SHOTS, click, draw, page, set_number,  # noqa: F401 - page: fixture
                                shoot, status)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

LAYER_INK = """(() => { // opaque pixels of the overlay canvas inside x_t's panel: the layers drawn there
  const c = document.querySelector('.live-canvas'), fl = document.querySelector('.live-plot')._fullLayout;
  const dpr = window.devicePixelRatio || 1, xa = fl.xaxis, ya = fl.yaxis;
  const d = c.getContext('2d').getImageData(xa._offset * dpr, ya._offset * dpr, xa._length * dpr,
                                            ya._length * dpr).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n; })()"""


def choose(page, elem_id: str, label: str) -> None:
    """Pick a radio button by its label."""
    page.locator(f"#{elem_id}").get_by_label(label, exact=True).check(force=True)


def generate_with_layers(page, steps: int) -> None:
    """Paths and field on, DDIM `steps`, Generate; wait for the final points and the layers on the canvas."""
    page.evaluate("document.querySelector('.live-scatter').dataset.final = ''")
    page.locator("#spiral-sampler input").fill("DDIM")  # the spiral's default is DDPM, all 1000 steps
    page.keyboard.press("Enter")
    page.wait_for_function("!document.querySelector('#spiral-steps input[type=number]').disabled", timeout=30_000)
    set_number(page, "spiral-steps", steps)
    click(page, "Generate")
    page.wait_for_function("(document.querySelector('.live-scatter').dataset.final || '') === String("
                           f"{steps - 1})", timeout=120_000)
    page.wait_for_function("(document.querySelector('.live-scatter').dataset.layers || '').includes('paths field')",
                           timeout=30_000)


def test_draw_train_live_then_sample_with_paths_and_arrows(page):
    page.get_by_text("Draw your own dataset").click()
    draw(page, "lab-sketch", [(0.2, 0.25), (0.8, 0.25), (0.5, 0.8), (0.2, 0.25)])  # a triangle
    choose(page, "lab-dataset", "my drawing")
    page.get_by_text("Train a model here, live").click()
    set_number(page, "lab-train-steps", 400)
    set_number(page, "lab-train-seconds", 120)  # the cap may still end a slow machine's run early: "Done: step 312/400"
    page.locator("#lab-train").wait_for(state="visible", timeout=30_000)
    page.locator("#lab-train").click()
    page.wait_for_function("document.querySelector('#lab-train-status')?.textContent.includes('Done: step ')",
                           timeout=300_000)
    page.wait_for_selector("#lab-train-plot .main-svg", timeout=60_000)
    assert "to your drawing" in page.locator("#lab-train-status").text_content()
    shoot(page, "lab_trained")
    choose(page, "lab-model", "trained in this page")
    page.locator("#lab-paths input").check(force=True)
    page.locator("#lab-field input").check(force=True)
    page.evaluate("window.scrollTo(0, 0)")
    generate_with_layers(page, 40)
    assert "to your drawing" in status(page, "spiral") and "Done in" in status(page, "spiral")
    assert page.evaluate(LAYER_INK) > 500  # paths and arrows painted over x_t's panel after the hand-over
    shoot(page, "lab_drawing_paths")


def test_shipped_spiral_with_paths_and_arrows_for_the_readme(page):
    choose(page, "lab-dataset", "spiral")
    choose(page, "lab-model", "shipped, diffusion")
    page.locator("#lab-paths input").check(force=True)
    page.locator("#lab-field input").check(force=True)
    page.locator("#lab-density input").check(force=True)  # contours too, then off again for the picture
    page.evaluate("window.scrollTo(0, 0)")
    generate_with_layers(page, 20)
    page.wait_for_function("document.querySelector('.live-scatter').dataset.layers === 'paths field density'",
                           timeout=30_000)
    with_contours = page.evaluate(LAYER_INK)
    page.locator("#lab-density input").uncheck(force=True)
    generate_with_layers(page, 100)
    assert "to the spiral" in status(page, "spiral") and 500 < page.evaluate(LAYER_INK)
    assert page.locator(".live-scatter").get_attribute("data-layers") == "paths field" and with_contours > 500
    SHOTS.mkdir(exist_ok=True)
    page.locator("#spiral-live").screenshot(path=str(SHOTS / "lab_paths_arrows.png"))
    if os.environ.get("UPDATE_DOCS") == "1":  # the README's picture
        shutil.copy(SHOTS / "lab_paths_arrows.png", DOCS / "lab_paths_arrows.png")


def test_flow_matching_against_ddim_from_the_same_noise(page):
    choose(page, "lab-dataset", "spiral")
    page.get_by_text("Flow matching against diffusion, from the same noise").click()
    page.locator("#lab-compare").click(force=True)
    page.wait_for_function("document.querySelector('#lab-compare-text')?.textContent.includes('flow matching, Heun')",
                           timeout=180_000)
    page.wait_for_selector("#lab-compare-plot .main-svg", timeout=60_000)
    titles = page.locator("#lab-compare-plot .gtitle, #lab-compare-plot .annotation-text").all_text_contents()
    assert any("DDIM 8 steps" in t for t in titles) and any("Euler 8 steps" in t for t in titles)
    page.locator("#lab-compare-plot").scroll_into_view_if_needed()
    shoot(page, "lab_compare")


def test_samplers_side_by_side_finish_with_their_captions(page):
    """Compare samplers on the Spiral tab: the three live plots (DDPM, DDIM, DPM-Solver++) each end with their final
    points handed to plotly and a caption with the distance to the spiral and the seconds; status, replay and GIF
    follow; the measured table is beside them. Screenshot of the panel (UPDATE_DOCS=1: the README's)."""
    choose(page, "lab-dataset", "spiral")
    choose(page, "lab-model", "shipped, diffusion")
    page.get_by_text("Samplers side by side: DDPM, DDIM, DPM-Solver++ from one noise").click()
    page.locator("#lab-samplers").click(force=True)
    for name, title, last in (("ddpm", "DDPM, 1000 steps", 999), ("ddim", "DDIM, 20 steps", 19),
                              ("dpmpp", "DPM-Solver++, 20 steps", 19)):
        plot = f"document.querySelector('#lab-samplers-{name} .live-scatter')"
        page.wait_for_function(f"{plot}?.dataset.final === '{last}'", timeout=180_000)
        page.wait_for_function(f"{plot}.querySelector('.live-caption').textContent.includes(' from the spiral, ')",
                               timeout=30_000)
        assert page.locator(f"#lab-samplers-{name} .live-caption").text_content().startswith(f"{title}: ")
    page.wait_for_function("document.querySelector('#lab-samplers-status').textContent.includes('Done · mean "
                           "distance to the spiral')", timeout=30_000)
    page.wait_for_selector("#lab-samplers-replay", state="visible", timeout=30_000)
    page.wait_for_selector("#lab-samplers-gif", state="visible", timeout=30_000)
    assert "DPM-Solver++" in page.locator("#lab-samplers-table").text_content()
    page.locator("#lab-samplers-panel").scroll_into_view_if_needed()
    SHOTS.mkdir(exist_ok=True)
    page.locator("#lab-samplers-panel").screenshot(path=str(SHOTS / "lab_samplers.png"))
    if os.environ.get("UPDATE_DOCS") == "1":  # the README's picture
        shutil.copy(SHOTS / "lab_samplers.png", DOCS / "lab_samplers.png")
