"""Frames per second the app's pages *display* in headless Chromium, time to first frame, and start-up time.

    .venv/bin/python -m benchmarks.app_fps [--checkpoints DIR] [--threads 1] [--json out.json]
        [--only LABEL_PART ...] [--repeat N]

Starts `python app.py` (and, for comparison, a bare one-Markdown Gradio app) as subprocesses and times
how long each takes to serve its page. Then drives the app with Playwright + Debian Chromium
(/usr/bin/chromium): per run it counts the frames the page actually painted (the spiral canvas's paint
counter; each new `src` of the x_t grid's <img>) and reports frames/s between the first and the last
frame, and the time from the Generate click to the first frame. "display-bound" runs use one sample so
that sampling outpaces the display; "default" runs use the tab's default settings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BARE_APP = "import gradio as gr\nwith gr.Blocks() as demo:\n    gr.Markdown('hi')\ndemo.launch()\n"
# (tab, tab title, label, {control elem_id suffix: value}) per run; None keeps the default
RUNS = [
    ("spiral", "Spiral", "default (DDPM, 1000 steps, 1000 points)", {}),
    ("spiral", "Spiral", "5000 points, DDPM 1000 steps", {"samples": 5000}),
    ("spiral", "Spiral", "layers on: paths, field, density (DDPM, 1000 steps, 1000 points)",
     {"layer:paths": True, "layer:field": True, "layer:density": True}),
    ("spiral", "Spiral", "layers on, flow matching: Euler 300 steps, 1000 points",
     {"layer:paths": True, "layer:field": True, "layer:density": True, "model:shipped, flow matching": True,
      "steps": 300}),
    ("spiral", "Spiral", "5000 points, DDPM 1000 steps, with paths, field and density",  # not 'layers': --only
     {"samples": 5000, "layer:paths": True, "layer:field": True, "layer:density": True}),
    ("digits", "Digits", "display-bound (1 digit, DDIM 300 steps, g = 1)",
     {"steps": 300, "samples": 1, "guidance": 1, "label": "3", "refresh": 0.04}),
    ("digits", "Digits", "default (40 digits, DDIM 20 steps, g = 2)", {}),
    ("pokemon", "Pokémon", "display-bound (1 sprite, DDIM 200 steps, g = 1)",
     {"steps": 200, "samples": 1, "guidance": 1, "refresh": 0.04}),
    ("pokemon", "Pokémon", "default (9 sprites, DDIM 50 steps, g = 3)", {}),
]
# Record every frame the page displays: spiral canvas paints, each new src of a tab's x_t grid <img>.
RECORDER = """(tab) => {
  window.__frames = window.__frames || [];
  const el = tab === 'spiral' ? document.querySelector('.live-scatter') : document.querySelector('#' + tab + '-xt');
  if (el.__recorded) return;
  el.__recorded = true;
  new MutationObserver(() => {
    if (tab === 'spiral') { window.__frames.push([tab, performance.now()]); return; }
    const img = el.querySelector('img');
    if (img && img.src !== el.__last) { el.__last = img.src; window.__frames.push([tab, performance.now()]); }
  }).observe(el, tab === 'spiral' ? {attributes: true, attributeFilter: ['data-painted']}
                                  : {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict, port: int) -> tuple[subprocess.Popen, float]:
    """Start a Gradio app; return the process and the seconds until its page answers 200."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env, "GRADIO_SERVER_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - t0 < 180:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).status == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{argv} did not serve within 180 s")


def startup_times(env: dict) -> dict:
    """Seconds from launch to a served page: the app vs a bare Gradio app."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(BARE_APP)
    out = {}
    for name, argv in (("bare_gradio_s", [sys.executable, f.name]), ("app_s", [sys.executable, "app.py"])):
        proc, seconds = start(argv, env, free_port())
        proc.terminate()
        proc.wait()
        out[name] = round(seconds, 2)
    os.unlink(f.name)
    return out


def set_control(page, tab: str, name: str, value) -> None:
    """Set a control of the tab like a person would (type into the slider's box, or pick a label); the Spiral
    lab's layers ('layer:NAME') are ticked and its model ('model:LABEL') picked."""
    if name.startswith("layer:"):
        page.locator(f"#lab-{name[6:]} input").check(force=True)
        return
    if name.startswith("model:"):
        page.locator("#lab-model").get_by_label(name[6:], exact=True).check(force=True)
        page.wait_for_timeout(500)  # the sampler follows the model (Euler for flow matching)
        return
    if name in ("sampler", "label"):  # dropdowns: type the choice, Enter picks it
        page.locator(f"#{tab}-{name} input").fill(str(value))
        page.keyboard.press("Enter")
        return
    box = page.locator(f"#{tab}-{name} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def open_page(page, url: str) -> None:
    """A fresh page (default settings) once every tab says which model it uses."""
    page.goto(url)
    page.wait_for_selector(".live-scatter[data-ready='1']", timeout=60_000)
    page.wait_for_function("['spiral', 'digits', 'pokemon'].every(t => document.body.innerText.includes("
                           "'Loading the ' + t + ' model') === false)", timeout=120_000)


def measure_run(page, tab: str, title: str, settings: dict) -> dict:
    """Click Generate on a tab and time the frames the page displays until the run's status says Done."""
    page.get_by_role("tab", name=title).click()
    page.wait_for_selector(f"#{tab}-status", state="visible")
    page.evaluate(RECORDER, tab)
    for name, value in settings.items():
        set_control(page, tab, name, value)
    page.wait_for_timeout(500)
    page.evaluate("window.__frames.length = 0")
    clicked = page.evaluate("performance.now()")
    page.get_by_role("button", name="Generate", exact=True).locator("visible=true").first.click(force=True)
    page.wait_for_function(f"document.querySelector('#{tab}-status').textContent.includes('Done in')",
                           timeout=600_000, polling=200)
    page.wait_for_timeout(300)
    times = [t for name, t in page.evaluate("window.__frames") if name == tab]
    span = (times[-1] - times[0]) / 1000 if len(times) > 1 else float("nan")
    status = page.locator(f"#{tab}-status").text_content()
    status = status[status.find("Done in"):].strip()  # without the progress bar's text
    return {"tab": tab, "frames": len(times), "fps": round((len(times) - 1) / span, 1) if span > 0 else None,
            "first_frame_ms": round(times[0] - clicked) if times else None, "status": status}


def browser_runs(url: str) -> list[dict]:
    """Every run of RUNS in one headless Chromium page."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, url)
        measure_run(page, "spiral", "Spiral", {"sampler": "DDIM", "steps": 50})  # warm-up, not reported
        for tab, title, label, settings in RUNS:
            open_page(page, url)
            result = {"run": label, **measure_run(page, tab, title, settings)}
            print(json.dumps(result, ensure_ascii=False), flush=True)
            results.append(result)
        browser.close()
    return results


def main() -> None:
    """Measure start-up, then every run of RUNS in the browser; print (and optionally save) the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", help="PLAYGROUND_CHECKPOINTS folder (default: the app's own config)")
    parser.add_argument("--threads", default="1", help="torch threads of the app (PLAYGROUND_THREADS)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", nargs="+", help="only the runs whose label contains one of these (e.g. 'layers')")
    parser.add_argument("--repeat", type=int, default=1, help="the chosen runs this many times, in turn")
    args = parser.parse_args()
    if args.only:
        RUNS[:] = [run for run in RUNS if any(part in run[2] for part in args.only)]
    RUNS[:] = RUNS * args.repeat
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PLAYGROUND_THREADS": args.threads}
    if args.checkpoints:
        env["PLAYGROUND_CHECKPOINTS"] = args.checkpoints
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs", "load_before": os.getloadavg(), "startup": startup_times(env)}
    print(json.dumps(report), flush=True)
    port = free_port()
    proc, _ = start([sys.executable, "app.py"], env, port)
    try:
        report["runs"] = browser_runs(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
    report["load_after"] = os.getloadavg()
    print(json.dumps({"load_after": report["load_after"]}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
