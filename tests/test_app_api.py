"""The app through its API (gradio_client against the app launched on 127.0.0.1): every endpoint, streaming,
bad inputs, Stop, and 8 concurrent clients getting what they get one at a time."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from diffusion_core.files.card import headline
from diffusion_core.guidance import describe_interval

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("spiral", "digits", "fashion", "pokemon")


def checkpoint_specs(specs: dict, cache: Path) -> dict:
    """The app's checkpoint config with the shipped copies; a missing one is replaced by a tiny one trained once
    into `cache` (1 step, with the real train command), so the tests run before every model is shipped."""
    out = {}
    for name, spec in specs.items():
        tiny = cache / name
        if not (spec.fallback / "config.json").exists() and not (tiny / "config.json").exists():
            subprocess.run([sys.executable, "-m", "diffusion_core.train", "--dataset", name, "--out", str(tiny),
                            "--steps", "1", "--batch-size", "4", "--threads", "1"], cwd=ROOT, check=True, timeout=900)
        out[name] = spec if (spec.fallback / "config.json").exists() else spec._replace(fallback=tiny)
    return out


@contextmanager
def running_app(request: pytest.FixtureRequest, base: Path):
    """app.demo launched in-process on 127.0.0.1 with the checkpoints of checkpoint_specs, 1 torch thread and the
    Hub offline (only while it runs: other tests' environment is left alone); yields its URL."""
    env = {"HF_HUB_OFFLINE": "1", "PLAYGROUND_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    import app
    from diffusion_core.playground import runs as pg

    cache = getattr(request.config, "cache", None)  # tiny checkpoints are kept between runs where pytest caches
    app.STORE = pg.ModelStore(checkpoint_specs(app.CHECKPOINTS, Path(cache.mkdir("playground_checkpoints"))
                                               if cache else base))
    _, url, _ = app.demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **app.LAUNCH)
    try:
        yield url
    finally:
        app.demo.close()
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


@contextmanager
def slowed(owner, name: str, seconds: float):
    """Every call of `owner.name` first sleeps `seconds`, then computes as before: a test that must see a run in
    progress (or stop it there) makes its own slowness instead of relying on a slow machine. Yields the list of
    the calls' start times, which grows while the run computes; fails if nothing called it (a blind pacing)."""
    function, calls = getattr(owner, name), []

    def slow(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(seconds)
        return function(*args, **kwargs)

    setattr(owner, name, slow)
    try:
        yield calls
    finally:
        setattr(owner, name, function)
    assert calls, f"{name} was never called: the slowness did not reach the run it was meant to pace"


def paced(tab: str, seconds: float):
    """`slowed` on the running app's `tab` model: every call of it first sleeps `seconds`."""
    import app

    return slowed(app.STORE.get(tab), "model", seconds)


def stop_at_first_frame(client: Client, tab: str, api_name: str, *args) -> tuple[dict, str, int]:
    """Submit a run of the `tab` model (each model call paced 0.01 s), cancel it at its first frame (as the tab's
    Stop does) and fetch its replay slider and status (api_name_gif); with the model calls made meanwhile,
    counting half a second on from the stop: (slider, status, calls made after the stop)."""
    with paced(tab, 0.01) as calls:
        job = client.submit(*args, api_name=f"/{api_name}")
        for _ in job:
            job.cancel()
            break
        slider, _, status = client.predict(api_name=f"/{api_name}_gif")
        stopped = len(calls)
        time.sleep(0.5)  # a run still going would make about 50 more model calls meanwhile
    return slider, status, len(calls) - stopped


@pytest.fixture(scope="module")
def url(request, tmp_path_factory):
    """The URL of the app, running for this module."""
    with running_app(request, tmp_path_factory.mktemp("checkpoints")) as u:
        yield u


@pytest.fixture
def client(url) -> Client:
    """A fresh API session (its own replay state) that does not download files."""
    return Client(url, download_files=False, verbose=False)


def points(value: dict, key: str = "xt") -> np.ndarray:
    """The points [N, 2] of a live spiral frame."""
    return np.frombuffer(base64.b64decode(value[key]), dtype="<f4").reshape(-1, 2)


def png(file: dict, url: str) -> Image.Image:
    """Fetch an image output (download_files=False gives its URL) and check it is a PNG."""
    data = httpx.get(file["url"] if file.get("url") else f"{url}/gradio_api/file={file['path']}").content
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from io import BytesIO

    return Image.open(BytesIO(data))


def test_every_tab_says_which_model_it_uses(client):
    for name in NAMES:
        info, sampler, *_ = client.predict(api_name=f"/{name}_info")
        assert info.startswith("**Model:**") and sampler in ("ddpm", "ddim", "dpm++")
        assert info.startswith("**Model:** shipped copy ") and "T = 1000" in info
        shipped = json.loads((ROOT / "checkpoints" / name / "config.json").read_text())
        assert f"predicts {shipped['diffusion'].get('prediction', 'eps')}" in info
        assert f"**Measured** (its model card): {headline(shipped)}" in info and headline(shipped)
        interval = shipped["sampling"].get("guidance_interval")
        said = f"g > 1 applied at {describe_interval(interval)} only" if interval else "g > 1 applied at"
        assert (said in info) == bool(interval)


def test_spiral_streams_frames_then_replays_and_makes_a_gif(client):
    with paced("spiral", 0.002):  # 300 steps take >= 0.6 s: a frame at least every 0.022 s
        job = client.submit("ddim", 300, 0.0, 7, 200, 0.02, api_name="/spiral")
        frames = [value for value, _ in job]
    steps = [f["step"] for f in frames]
    assert len(frames) >= 3 and steps == sorted(steps) and steps[0] == 0 and steps[-1] == 299
    assert frames[-1]["done"] and not frames[0]["done"] and points(frames[-1]).shape == (200, 2)
    assert "Done in" in job.outputs()[-1][1] and "mean distance" in job.outputs()[-1][1]
    slider, gif, _ = client.predict(api_name="/spiral_gif")  # the slider update: shown, on the last step
    assert (slider["value"], slider["maximum"], slider["visible"]) == (299, 299, True)
    assert gif["value"]["path"].endswith(".gif")
    value, caption = client.predict(10, api_name="/spiral_replay")
    assert value["step"] == 10 and value["done"] and caption.startswith("step 11/300")


@pytest.mark.parametrize("tab, args, reads", [("digits", ("ddim", 3, 0.0, 2.0, "all", 1, 1, 0.02), "asked digit"),
                                              ("fashion", ("ddim", 3, 0.0, 2.0, "all", 1, 1, 0.02), "asked class"),
                                              ("pokemon", ("dpm++", 3, 0.0, 3.0, "red", 2, 2, 0.02), "colour class")])
def test_image_tabs_stream_png_grids_and_tag_the_final_samples(client, url, tab, args, reads):
    outputs = list(client.submit(*args, api_name=f"/{tab}"))
    assert len(outputs) >= 2 and outputs[0][2] == {"__type__": "update"}  # the tagged grid comes at the end
    x_t, x0_pred, final, status = outputs[-1]
    assert png(x_t, url).size == png(x0_pred, url).size and png(final, url).mode == "RGB"
    assert "Done in" in status and reads in status
    assert tab == "pokemon" or "of 10 samples" in status  # label 'all', 1 per row: one sample of each class
    assert ("redraw" in status and "a training sprite's outline" in status) == (tab == "pokemon")
    assert client.predict(api_name=f"/{tab}_gif")[0]["value"] == 2
    assert client.predict(0, api_name=f"/{tab}_replay")[2].startswith("step 1/3")


def sketch_file(tmp_path: Path, blank: bool = False) -> dict:
    """A Sketchpad value as the API takes it: a drawn '7' (or nothing) as the composite PNG."""
    img = Image.new("RGBA", (280, 280), (255, 255, 255, 0))
    if not blank:
        ImageDraw.Draw(img).line([(60, 50), (220, 50), (120, 250)], fill="black", width=22)
    path = tmp_path / ("blank.png" if blank else "seven.png")
    img.save(path)
    return {"background": None, "layers": [], "composite": handle_file(str(path)), "id": None}


def test_pokemon_sprite_is_recoloured_and_an_empty_picture_is_refused(client, url, tmp_path):
    args = ("ddim", 3, 0.0, 3.0, "all", 0, 1, 0.02)
    sprite = {"background": None, "layers": [], "composite": handle_file(str(ROOT / "static/examples/pokemon.png")),
              "id": None}
    *_, final, status = client.predict(sprite, 650, *args, api_name="/pokemon_sketch")
    assert "Done in" in status and "step 3/3" in status and png(final, url).size[0] > 0
    assert "training sprite" not in status  # no copy check: SDEdit keeps the drawing it was given
    blank = tmp_path / "white.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    with pytest.raises(AppError, match="picture is empty"):
        client.predict({**sprite, "composite": handle_file(str(blank))}, 650, *args, api_name="/pokemon_sketch")


def test_digits_sketch_is_completed_and_a_broken_sketch_is_refused(client, tmp_path):
    args = ("ddim", 3, 0.0, 1.0, "7", 0, 2, 0.02)
    *_, status = client.predict(sketch_file(tmp_path), 300, *args, api_name="/digits_sketch")
    assert "Done in" in status and "step 3/3" in status
    with pytest.raises(AppError, match="sketch is empty"):
        client.predict(sketch_file(tmp_path, blank=True), 300, *args, api_name="/digits_sketch")
    bad = {"background": None, "layers": [], "composite": None, "id": None}
    with pytest.raises(AppError, match="draw a digit"):
        client.predict(bad, 300, *args, api_name="/digits_sketch")


def test_fashion_sketch_is_completed_as_the_asked_class(client, tmp_path):
    args = ("ddim", 3, 0.0, 2.0, "Trouser", 0, 2, 0.02)
    *_, status = client.predict(sketch_file(tmp_path), 300, *args, api_name="/fashion_sketch")
    assert "Done in" in status and "step 3/3" in status and "of 2 samples" in status
    with pytest.raises(AppError, match="draw a garment"):
        client.predict(sketch_file(tmp_path, blank=True), 300, *args, api_name="/fashion_sketch")


GOOD = ("ddim", 3, 0.0, 2.0, "3", 0, 1, 0.02)


@pytest.mark.parametrize("index, value, message", [
    (1, 0, "less than minimum|steps must be"), (1, 10**6, "greater than maximum|steps must be"),
    (3, -1, "less than minimum|guidance"), (2, 2, "greater than maximum|eta"), (6, 10**6, "greater than maximum"),
    (4, "42", "not in the list of choices|label must be"), (0, "euler", "not in the list of choices|sampler"),
])
def test_bad_inputs_get_an_error_and_the_app_keeps_serving(client, index, value, message):
    args = list(GOOD)
    args[index] = value
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/digits")
    assert "Done in" in client.predict(*GOOD, api_name="/digits")[-1]


def test_stop_frees_the_worker_and_keeps_the_steps_so_far(client):
    with paced("spiral", 0.01) as calls:  # the run takes >= 10 s: the Stop lands while it is going, on any machine
        job = client.submit("ddpm", 1000, 0.0, 0, 5000, 0.05, api_name="/spiral")
        for value, _ in job:
            if value["step"] > 0:
                job.cancel()
                break
        slider, gif, status = client.predict(api_name="/spiral_gif")
        stopped_at = len(calls)
        time.sleep(0.5)  # a run still going would make about 50 more model calls meanwhile
        assert len(calls) <= stopped_at + 1
    assert 0 < slider["value"] == slider["maximum"] < 999 and gif["value"]["path"].endswith(".gif")
    assert status.startswith(f"Stopped at step {slider['value'] + 1}/1000")
    assert client.predict("ddim", 5, 0.0, 1, 50, 0.02, api_name="/spiral")[0]["done"]


def spiral_points_for(url: str, seed: int) -> np.ndarray:
    """Final spiral points of one run in a fresh session."""
    value, _ = Client(url, download_files=False, verbose=False).predict("ddim", 50, 0.5, seed, 300, 0.05,
                                                                          api_name="/spiral")
    return points(value)


def test_eight_concurrent_clients_get_what_they_get_one_at_a_time(url):
    alone = [spiral_points_for(url, seed) for seed in range(8)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda seed: spiral_points_for(url, seed), range(8)))
    for seed in range(8):
        np.testing.assert_array_equal(alone[seed], together[seed])
    assert not np.array_equal(alone[0], alone[1])


def plotly_array(a) -> np.ndarray:
    """An array of plotly's JSON: a list, or {'dtype', 'bdata'} (base64 of a typed array)."""
    return np.frombuffer(base64.b64decode(a["bdata"]), a["dtype"]) if isinstance(a, dict) else np.asarray(a)


def check_schedule_plot(plot: dict, t: int) -> None:
    """The plot holds beta_t, alpha_bar_t and SNR(t) of both schedules, each in its own panel, marked at t."""
    from diffusion_core import make_schedule

    figure = json.loads(plot["plot"])
    traces = {(trace["name"], trace["yaxis"]): trace for trace in figure["data"]}
    for kind in ("linear", "cosine"):
        s = make_schedule(kind, 1000)
        for axis, expected in (("y", s.beta), ("y2", s.alpha_bar), ("y3", s.snr())):
            trace = traces[kind, axis]
            np.testing.assert_array_equal(plotly_array(trace["x"]), np.arange(1000))
            np.testing.assert_allclose(plotly_array(trace["y"]), expected.numpy(), rtol=1e-6)
    assert len(traces) == 6 and sorted((m["xref"], m["x0"]) for m in figure["layout"]["shapes"]) == [
        ("x", t), ("x2", t), ("x3", t)]


def test_how_it_works_endpoints(client, url):
    linear, cosine, table = client.predict("a digit", 500, api_name="/forward")
    assert png(linear, url).size == png(cosine, url).size and "| linear |" in table and "| cosine |" in table
    check_schedule_plot(client.predict(100, api_name="/schedule_plot"), 100)
    with pytest.raises(AppError, match="not in the list of choices|example must be one of"):
        client.predict("a cat", 10, api_name="/forward")


def test_one_step_endpoint_shows_the_trained_model_denoising_the_example(client, url):
    errors = {}
    for t in (50, 900):
        *pictures, caption, plot = client.predict("a Pokémon sprite", t, "none", 1, api_name="/one_step")
        assert len({png(p, url).size for p in pictures}) == 1 and f"t = {t}, no label" in caption
        assert "How far the pokemon model is off at each t" in json.dumps(plot)
        errors[t] = float(caption.split("**")[1])  # x0_pred's RMS error
    assert "pokemon model (cosine schedule" in caption and errors[50] < errors[900]
    *_, caption, _ = client.predict("a Pokémon sprite", 900, "yellow", 3, api_name="/one_step")
    assert "label yellow, g = 3" in caption and float(caption.split("**")[1]) != errors[900]
    labels = client.predict("the spiral (1,000 points)", api_name="/label_choices")  # the spiral model takes none
    *_, caption, _ = client.predict("the spiral (1,000 points)", 10, "none", 1, api_name="/one_step")
    assert caption.startswith("The spiral model (linear schedule, t = 10, no label)")
    assert labels["choices"] == [["none", "none"]] and not labels["interactive"]
    assert [c[0] for c in client.predict("a digit", api_name="/label_choices")["choices"]] == ["none", *"0123456789"]
    assert [c[0] for c in client.predict("a garment", api_name="/label_choices")["choices"]][-1] == "Ankle boot"
    *_, caption, _ = client.predict("a garment", 300, "Ankle boot", 2, api_name="/one_step")
    assert caption.startswith("The fashion model (cosine schedule, t = 300, label Ankle boot, g = 2)")
    for bad, message in ((("a digit", 1000, "none", 1), "t must be between 0 and 999|greater than maximum"),
                         (("the spiral (1,000 points)", 10, "3", 1), "takes no label|not in the list of choices")):
        with pytest.raises(AppError, match=message):
            client.predict(*bad, api_name="/one_step")


def test_a_missing_checkpoint_is_explained_and_the_other_tabs_still_work(client, tmp_path):
    import app
    from diffusion_core.playground import runs as pg

    working = app.STORE
    (tmp_path / "spiral").symlink_to(working.specs["spiral"].fallback)
    app.STORE = pg.ModelStore(app.CHECKPOINTS, str(tmp_path))  # a folder with only the spiral model
    try:
        info, *_ = client.predict(api_name="/pokemon_info")
        assert info.startswith("⚠️ **No pokemon model available.**") and "no pokemon checkpoint" in info
        with pytest.raises(AppError, match="no pokemon checkpoint could be loaded"):
            client.predict("ddim", 3, 0.0, 3.0, "red", 0, 1, 0.02, api_name="/pokemon")
        assert client.predict("ddim", 5, 0.0, 1, 50, 0.02, api_name="/spiral")[0]["done"]
    finally:
        app.STORE = working


def test_python_app_py_serves_on_gradio_server_name_and_port():
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PLAYGROUND_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    page, end = None, time.time() + 120
    try:
        while page is None and time.time() < end:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200 and "Diffusion Playground" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
