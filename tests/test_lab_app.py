"""The Spiral lab through its API (gradio_client against the app on 127.0.0.1): Generate with a dataset, a flow
model and the layers; live training in two sessions at once, each with its own model; Stop during training; bad
drawings; flow matching against DDIM from the same noise; DDPM, DDIM and DPM-Solver++ side by side (checked inputs,
Stop, replay and GIF)."""
from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from diffusion_core.training import live_training
from tests.test_app_api import (points, sketch_file, slowed, stop_at_first_frame,  # noqa: F401 - url: the app's fixture
                                 url)

NO_DRAWING = {"background": None, "layers": [], "composite": None, "id": None}


def session(url: str) -> Client:  # noqa: F811
    return Client(url, download_files=False, verbose=False, httpx_kwargs={"timeout": 300})


def train(client: Client, dataset: str = "moons", objective: str = "diffusion", steps: int = 400,
          drawing=NO_DRAWING, word: str = "", text: str = ""):
    """Submit a live training (at most 120 s, the cap: far more than a quiet machine needs); its job streams
    (status, figure)."""
    return client.submit(dataset, objective, steps, 120, drawing, word, text, api_name="/spiral_train")


def test_generate_from_a_shipped_flow_model_with_every_layer(url):  # noqa: F811
    client = session(url)
    frames = [v for v, _ in client.submit("euler", 20, 0.0, 1, 300, 0.02, "moons", "flow", True, True, True,
                                          api_name="/spiral")]
    last = frames[-1]
    assert last["done"] and last["step"] == 19 and points(last).shape == (300, 2)
    assert {"paths", "field", "density", "cloud"} <= set(last) and last["curve"] is None
    paths = np.frombuffer(base64.b64decode(last["paths"]), "<f4").reshape(-1, 50, 2)
    np.testing.assert_allclose(paths[-1], points(last)[:50], atol=1e-3)  # float16 recording of the same points
    with pytest.raises(AppError, match="a flow-matching model samples with euler or heun"):
        client.predict("ddim", 20, 0.0, 1, 300, 0.02, "moons", "flow", api_name="/spiral")
    with pytest.raises(AppError, match="no model has been trained in this page yet"):
        client.predict("ddim", 20, 0.0, 1, 300, 0.02, "moons", "trained", api_name="/spiral")
    with pytest.raises(AppError, match="your drawing has no shipped model"):
        client.predict("ddim", 20, 0.0, 1, 300, 0.02, "drawing", "diffusion", api_name="/spiral")


def test_two_sessions_train_at_once_and_each_samples_its_own_model(url):  # noqa: F811
    a, b = session(url), session(url)

    def run(client: Client, dataset: str) -> list[tuple[float, str]]:
        return [(time.monotonic(), status) for status, _ in train(client, dataset, steps=800)]

    with slowed(live_training, "noisy_batch", 0.002), ThreadPoolExecutor(2) as pool:  # each run takes >= 1.6 s
        ran = list(pool.map(run, (a, b), ("moons", "gaussians")))
    (a_first, _), (a_last, a_status) = ran[0][0], ran[0][-1]
    (b_first, _), (b_last, b_status) = ran[1][0], ran[1][-1]
    assert a_first < b_last and b_first < a_last  # the two trainings ran at the same time
    assert a_status.startswith("Done: step 800/800") and "to the two moons" in a_status
    assert "to the 8 Gaussians" in b_status
    _, a_gen = a.predict("ddim", 50, 0.0, 0, 500, 0.05, "spiral", "trained", api_name="/spiral")
    _, b_gen = b.predict("ddim", 50, 0.0, 0, 500, 0.05, "spiral", "trained", api_name="/spiral")
    assert "to the two moons" in a_gen and "to the 8 Gaussians" in b_gen  # each its own model
    with pytest.raises(AppError, match="no model has been trained in this page yet"):
        session(url).predict("ddim", 50, 0.0, 0, 500, 0.05, "spiral", "trained", api_name="/spiral")


def slots_back(timeout: float = 60.0) -> None:
    """Wait until every live-training slot is free again: the trainings started have ended or been closed."""
    end = time.monotonic() + timeout
    while live_training.TRAININGS._value < live_training.MAX_TRAININGS:  # a BoundedSemaphore's count of free slots
        assert time.monotonic() < end, f"a training still holds its slot after {timeout:g} s"
        time.sleep(0.05)


def test_stop_during_training_keeps_what_was_learned(url):  # noqa: F811
    """The Stop lands while the training is going on any machine (a training step takes >= 2 ms: 20,000 take
    >= 40 s), and ends it: the steps already asked for run on to the next preview (400 steps on), no further,
    and the training gives its slot back. A Stop that only leaves the stream lets the training go on."""
    client = session(url)
    with slowed(live_training, "noisy_batch", 0.002) as calls:
        job = train(client, "checkerboard", steps=20_000)
        for status, _ in job:
            if status.startswith("Training: step"):
                job.cancel()
                break
        stopped_at = int(status.split("step ")[1].split("/")[0].replace(",", ""))
        slots_back()
        assert 0 < stopped_at <= len(calls) <= stopped_at + 800 < 20_000
    value, gen_status = client.predict("ddim", 20, 0.0, 0, 200, 0.05, "spiral", "trained", api_name="/spiral")
    assert value["done"] and "to the checkerboard" in gen_status
    statuses = [s for s, _ in train(client, "moons", steps=100)]  # the slot was given back
    assert statuses[-1].startswith("Done: step 100/100")


@pytest.mark.parametrize("kw, message", [
    (dict(), "the drawing is empty"), (dict(text="0.5 0.5"), "too few points to learn a shape: 1 distinct"),
    (dict(text="0.5 0.25\n" * 1_000_000), "too many points: 1,000,000 given, at most 20,000"),
    (dict(word="far too long a word"), "the word is too long|maximum"),
])
def test_bad_drawings_get_a_clear_message(url, kw, message):  # noqa: F811
    with pytest.raises(AppError, match=message):
        session(url).predict("drawing", "diffusion", 100, 60, NO_DRAWING, kw.get("word", ""), kw.get("text", ""),
                             api_name="/spiral_train")


def test_a_drawing_trains_and_a_dot_is_refused(url, tmp_path):  # noqa: F811
    client = session(url)
    statuses = [s for s, _ in train(client, "drawing", steps=100, drawing=sketch_file(tmp_path))]
    assert statuses[-1].startswith("Done: step 100/100") and "to your drawing" in statuses[-1]
    from PIL import Image, ImageDraw

    dot = Image.new("RGBA", (280, 280), (255, 255, 255, 0))
    ImageDraw.Draw(dot).ellipse([130, 130, 145, 145], fill="black")
    dot.save(tmp_path / "dot.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "dot.png")), "id": None}
    with pytest.raises(AppError, match="too little is drawn to learn a shape"):
        client.predict("drawing", "diffusion", 100, 60, drawing, "", "", api_name="/spiral_train")


def test_flow_matching_against_ddim_from_the_same_noise(url):  # noqa: F811
    plot, text = session(url).predict("spiral", "ddim", "euler", 8, 0, 400, api_name="/spiral_compare")
    import json

    traces = json.loads(plot["plot"])["data"]
    starts = [t for t in traces if t.get("marker", {}).get("symbol") == "circle-open"]
    assert len(starts) == 2 and starts[0]["x"] == starts[1]["x"]  # one noise for both
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    table = {int(r.split("|")[1]): [float(c) for c in r.split("|")[2:5]] for r in rows}
    assert sorted(table) == [1, 2, 4, 8]
    assert table[1][1] < table[1][0] and table[2][1] < table[2][0]  # flow matching survives few steps
    assert "diffusion, DDIM 8 steps" in text and "flow matching, Euler 8 steps" in text
    flow_words = text.split("flow matching, Euler 8 steps")[1].splitlines()[0]
    assert "paths 1.00× as long as straight lines" in flow_words  # the OT-coupled model's paths are straight


def test_samplers_side_by_side_start_from_one_noise_and_ddpm_lands_closest(url):  # noqa: F811
    """/spiral_compare_samplers (dataset, model, steps, seed, points, refresh): three live plot values a frame. The
    first frame's x0_pred is the same in all three (one x_T, all at t = 999); DDIM's and DPM-Solver++'s final points
    are /spiral's for that seed (the seed's own noise); DDPM with every step lands closest to the curve."""
    client = session(url)
    frames = list(client.submit("spiral", "diffusion", 20, 0, 300, 0.05, api_name="/spiral_compare_samplers"))
    first, (*plots, status) = frames[0][:3], frames[-1]
    np.testing.assert_allclose(points(first[0], "x0"), points(first[1], "x0"), atol=1e-5)
    np.testing.assert_allclose(points(first[0], "x0"), points(first[2], "x0"), atol=1e-5)
    assert [p["caption"].split(":")[0] for p in plots] == ["DDPM, 1000 steps", "DDIM, 20 steps",
                                                           "DPM-Solver++, 20 steps"]
    assert all(p["done"] and " from the spiral, " in p["caption"] for p in plots)
    for plot, sampler in zip(plots[1:], ("ddim", "dpm++")):
        own, _ = client.predict(sampler, 20, 0.0, 0, 300, 0.05, "spiral", "diffusion", api_name="/spiral")
        np.testing.assert_allclose(points(plot), points(own), atol=1e-5)
    assert status.startswith("Done · mean distance to the spiral: DDPM 1000 steps: ")
    distance = [float(p["caption"].split(": ")[1].split(" ")[0]) for p in plots]
    assert distance[0] < 0.02 and distance[0] < min(distance[1:]) < 0.1, distance
    slider, gif, _ = client.predict(api_name="/spiral_compare_samplers_gif")
    assert slider["value"] == 1000 + 20 + 20 - 1 and gif["value"]["path"].endswith(".gif")
    *replayed, caption = client.predict(500, api_name="/spiral_compare_samplers_replay")
    assert [p["caption"] for p in replayed] == ["DDPM, 1000 steps", "DDIM, 20 steps", "DPM-Solver++, 20 steps"]
    assert caption.startswith("step ")


def test_samplers_side_by_side_on_the_moons_shipped_and_trained_in_the_page(url):  # noqa: F811
    client = session(url)
    *plots, status = client.predict("moons", "diffusion", 5, 1, 200, 0.1, api_name="/spiral_compare_samplers")
    assert status.startswith("Done · mean distance to the two moons: ") and all(p["cloud"] for p in plots)
    assert list(train(client, "gaussians", steps=400))[-1][0].startswith("Done: step 400/400")
    *plots, status = client.predict("spiral", "trained", 5, 1, 200, 0.1, api_name="/spiral_compare_samplers")
    assert status.startswith("Done · mean distance to the 8 Gaussians: ") and all(p["done"] for p in plots)


@pytest.mark.parametrize("args, message", [
    (("spiral", "flow", 20, 0, 300, 0.05), "sample a diffusion model"),
    (("moons", "trained", 20, 0, 300, 0.05), "no model has been trained in this page yet"),
    (("drawing", "diffusion", 20, 0, 300, 0.05), "your drawing has no shipped model"),
    (("mars", "diffusion", 20, 0, 300, 0.05), "not in the list of choices|unknown dataset 'mars'"),
    (("spiral", "diffusion", 0, 0, 300, 0.05), "less than minimum|steps must be"),
    (("spiral", "diffusion", 1001, 0, 300, 0.05), "greater than maximum|steps must be"),
    (("spiral", "diffusion", 20, -1, 300, 0.05), "less than minimum|seed must be"),
    (("spiral", "diffusion", 20, 0, 5001, 0.05), "greater than maximum|samples must be"),
    (("spiral", "diffusion", 20, 0, 300, 0.0), "less than minimum|refresh interval"),
])
def test_samplers_side_by_side_inputs_are_checked(url, args, message):  # noqa: F811
    with pytest.raises(AppError, match=message):
        session(url).predict(*args, api_name="/spiral_compare_samplers")


def test_stop_ends_the_samplers_side_by_side_and_keeps_their_steps(url):  # noqa: F811
    """The tab's Stop cancels the run (as job.cancel does through the API): no more model calls; replay and GIF of the
    steps so far."""
    import app

    deps = app.demo.config["dependencies"]
    ids = {d.get("api_name"): d["id"] for d in deps}
    assert any(ids["spiral"] in d["cancels"] and ids["spiral_compare_samplers"] in d["cancels"] for d in deps)
    slider, status, after = stop_at_first_frame(session(url), "spiral", "spiral_compare_samplers", "spiral",
                                                "diffusion", 20, 0, 300, 0.02)
    assert after <= 1 and 0 < slider["value"] < 1039 and status.startswith("Stopped at step")
