"""The editing sections in a real browser (Playwright, headless Debian Chromium) on the Digits, Fashion and Pokémon
tabs: inpainting with a preset mask, interpolation between two seeds, the samplers side by side; screenshots to
screenshots/ (the Digits ones also to docs/ with UPDATE_DOCS=1, for the README)."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.test_browser import DOCS, SHOTS, page, set_number  # noqa: F401 (the page fixture)

TABS = [("digits", "Digits", "3"), ("fashion", "Fashion", "Ankle boot"), ("pokemon", "Pokémon", "yellow")]  # the examples' classes


def status(page, tab: str) -> str:
    return page.locator(f"#{tab}-status").text_content() or ""


def run(page, tab: str, button: str, done: str, timeout_s: float = 240) -> str:
    """Click `button` in the tab and wait until its status says `done` (words only this run's end says); the status."""
    page.get_by_role("button", name=button, exact=True).locator("visible=true").first.click(force=True)
    page.wait_for_function(f"document.querySelector('#{tab}-status').textContent.includes({done!r})",
                           timeout=timeout_s * 1000, polling=100)
    return status(page, tab)


def shoot(page, name: str, height: int, docs: bool) -> None:
    """The page's top `height` px (the live pictures, status and final picture) to screenshots/NAME.png, and with
    UPDATE_DOCS=1 to docs/ for the README."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, clip=dict(x=0, y=0, width=1400, height=height))
    if docs and os.environ.get("UPDATE_DOCS") == "1":
        shutil.copy(SHOTS / f"{name}.png", DOCS / f"{name}.png")


def open_section(page, title: str) -> None:
    page.get_by_text(title).locator("visible=true").first.click()


@pytest.mark.parametrize("tab, title, label", TABS)
def test_inpaint_interpolate_and_compare_run_in_the_browser(page, tab, title, label):
    page.get_by_role("tab", name=title).click()
    page.wait_for_selector(f"#{tab}-steps input[type=number]", state="visible")
    page.locator(f"#{tab}-label input").click()
    page.get_by_role("option", name=label, exact=True).locator("visible=true").first.click()
    set_number(page, f"{tab}-steps", 10)
    set_number(page, f"{tab}-samples", 4)

    open_section(page, "Inpaint: mask part of a picture")
    page.locator(f"#{tab}-inpaint-picture canvas").last.wait_for(state="visible", timeout=30_000)
    set_number(page, f"{tab}-inpaint-r", 5)
    set_number(page, f"{tab}-inpaint-j", 3)
    text = run(page, tab, "Inpaint", "RePaint, r = 5, j = 3 · step 82/82")
    assert "Done in" in text and ("colour class" if tab == "pokemon" else "LeNet reads") in text
    page.wait_for_selector(f"#{tab}-final img", timeout=30_000)
    page.wait_for_selector(f"#{tab}-gif a[download]", timeout=30_000)  # the run's GIF, as for Generate
    shoot(page, f"app_{tab}_inpaint", 2400, tab == "digits")

    open_section(page, "Interpolate between two seeds")
    set_number(page, f"{tab}-frames", 8)
    text = run(page, tab, "Interpolate", "seed 0 → seed 1, 8 frames")
    assert "Done in" in text
    page.wait_for_selector(f"#{tab}-interpolation-gif a[download]", timeout=30_000)
    why = page.locator(f"#{tab}-slerp-why")
    why.wait_for(state="visible", timeout=30_000)  # why slerp: one sentence directly under the strip
    assert "Why slerp" in why.text_content()
    # strip and note measured in one frame, once the layout has settled (two bounding_box calls can straddle a
    # scroll or the strip's image load and disagree by hundreds of pixels)
    page.wait_for_function(
        f"""() => {{ const s = document.querySelector('#{tab}-final').getBoundingClientRect(),
                       n = document.querySelector('#{tab}-slerp-why').getBoundingClientRect(),
                       gap = n.top - s.bottom;
                     return s.height > 0 && gap >= 0 && gap < 40; }}""", timeout=30_000, polling=100)
    shoot(page, f"app_{tab}_interpolate", 1230, tab == "digits")  # down to the slerp note

    open_section(page, "Samplers side by side")
    page.locator(f"#{tab}-fld-vs-steps img").wait_for(timeout=30_000)
    text = run(page, tab, "Compare samplers", "Done · DDPM", timeout_s=400)
    assert "DDPM: " in text and "DDIM: " in text and "DPM-Solver++: " in text and not why.is_visible()
    page.wait_for_selector(f"#{tab}-gif a[download]", timeout=30_000)
    shoot(page, f"app_{tab}_compare", 1150, tab == "digits")
