"""How soon the Digits tab's Instant grid redraws after a guidance-slider move, in headless Chromium.

    .venv/bin/python -m benchmarks.instant_latency [--threads 2] [--moves 12] [--samples 1 4] [--steps 2 4 1]

Starts `python app.py` (PLAYGROUND_THREADS=--threads), ticks Instant on the Digits tab, and for each of the distilled
students' step counts (the tab's Instant steps) and each per-label sample count clicks the guidance track at
alternating g (each click moves the handle there, as a drag passes it) and waits for the final grid's <img> to change.
Prints the median and 90th percentile of click-to-new-picture (the browser's own clock, from a MutationObserver), the
server's share (the status line's seconds) and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time

from benchmarks.app_fps import free_port, start
from diffusion_core.files.card import hardware_description
from diffusion_core.playground.instant import DEFAULT_STEPS, INSTANT_MAX

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OBSERVE = """() => { window.__redraws = [];
  new MutationObserver(() => window.__redraws.push([performance.now(), document.querySelector('#digits-final img')?.src]))
    .observe(document.querySelector('#digits-final'), {subtree: true, childList: true, attributes: true,
                                                       attributeFilter: ['src']}); }"""


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def moves(page, n: int) -> tuple[list[float], list[float]]:
    """n isolated clicks on the guidance track: (click-to-new-picture seconds, server seconds) per click."""
    track = page.locator("#digits-guidance input[type=range]")
    track.scroll_into_view_if_needed()
    b = track.bounding_box()
    latencies, server = [], []
    for k in range(n):
        time.sleep(1.0)  # the last redraw settled
        src = page.locator("#digits-final img").get_attribute("src")
        t0 = page.evaluate("performance.now()")
        page.mouse.click(b["x"] + b["width"] * (0.1 + 0.2 * (k % 2) + 0.01 * k), b["y"] + b["height"] / 2)
        page.wait_for_function(f"document.querySelector('#digits-final img')?.src !== {src!r}", timeout=60_000,
                               polling="raf")
        t1 = page.evaluate(f"(window.__redraws.find(r => r[0] > {t0} && r[1] !== {src!r}) || [performance.now()])[0]")
        latencies.append((t1 - t0) / 1000)
        status = page.locator("#digits-status").text_content()
        server += [float(m) for m in re.findall(r"in ([0-9.]+) s", status)[:1]]
    return latencies, server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--moves", type=int, default=12)
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4],
                   help="samples per label asked (label 'all'; 4 is the tab's default)")
    p.add_argument("--steps", type=int, nargs="+", default=[DEFAULT_STEPS],
                   help=f"Instant steps: the students to time (the tab's default {DEFAULT_STEPS}; 4, 2, 1)")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc, startup = start(["python" if not os.path.exists(".venv/bin/python") else ".venv/bin/python", "app.py"],
                          {"PLAYGROUND_THREADS": str(args.threads), "GRADIO_ANALYTICS_ENABLED": "False",
                           "HF_HUB_OFFLINE": "1"}, port)
    out = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Digits").click()
            page.locator("#digits-instant input[type=checkbox]").check()
            page.wait_for_selector("#digits-final img", timeout=120_000)
            page.evaluate(OBSERVE)
            for steps in args.steps:
                page.locator("#digits-instant-steps").get_by_role("radio", name=str(steps), exact=True).check()
                page.wait_for_function("document.querySelector('#digits-status').textContent"
                                       f".includes('Instant: {steps} distilled steps')", timeout=120_000)
                for per_label in args.samples:
                    set_number(page, "digits-samples", per_label)
                    time.sleep(2.0)
                    lat, server = moves(page, args.moves)
                    drawn = 10 * min(per_label, INSTANT_MAX // 10)  # instant.py holds the grid to INSTANT_MAX
                    out[f"{steps} steps, {drawn} digits drawn (label all, {per_label} per label asked)"] = {
                        "median_s": round(statistics.median(lat), 3),
                        "p90_s": round(sorted(lat)[int(0.9 * (len(lat) - 1))], 3),
                        "server_median_s": round(statistics.median(server), 3) if server else None}
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    print(json.dumps({"click_to_new_grid": out, "moves": args.moves, "threads": args.threads,
                      "app_startup_s": round(startup, 1), "machine": hardware_description(),
                      "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
