"""The editing runs through the app's API (gradio_client against the app on 127.0.0.1): inpainting, interpolation and
the samplers side by side on the image tabs, their checks of every input, Stop, replay and the GIF."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.test_app_api import ROOT, client, paced, png, stop_at_first_frame, url  # noqa: F401 (fixtures)

EXAMPLES = {"digits": "digit.png", "fashion": "garment.png", "pokemon": "pokemon.png"}
LABELS = {"digits": ("7", "1"), "fashion": ("Trouser", "Bag"), "pokemon": ("blue", "red")}


def editor(tmp_path, tab: str, layer: np.ndarray | None = None) -> dict:
    """An image editor's value as the API takes it: the tab's example picture and at most one brush layer."""
    value = {"background": handle_file(str(ROOT / "static" / "examples" / EXAMPLES[tab])), "layers": [],
             "composite": None, "id": None}
    if layer is not None:
        Image.fromarray(layer, "RGBA").save(tmp_path / "layer.png")
        value["layers"] = [handle_file(str(tmp_path / "layer.png"))]
    return value


def brush(size: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
    """A brush layer [size, size, 4]: opaque magenta where painted."""
    layer = np.zeros((size, size, 4), np.uint8)
    layer[rows, cols] = (255, 0, 255, 255)
    return layer


def sampling(tab: str, steps: int = 3) -> tuple:
    """sampler, steps, eta, guidance, label, seed, samples, refresh."""
    return "ddim", steps, 0.0, 2.0, LABELS[tab][0], 0, 2, 0.02


@pytest.mark.parametrize("tab", ["digits", "fashion", "pokemon"])
def test_inpainting_streams_the_fill_and_tags_the_completions(client, url, tmp_path, tab):
    size = 48 if tab == "pokemon" else 28
    layer = brush(size, slice(size // 4, size // 2))
    outputs = list(client.submit(editor(tmp_path, tab, layer), "left half", 2, 2, *sampling(tab),
                                 api_name=f"/{tab}_inpaint"))
    assert len(outputs) >= 2 and outputs[0][2] == {"__type__": "update"}  # the completions come at the end
    x_t, x0_pred, final, status = outputs[-1]
    assert png(x_t, url).size == png(x0_pred, url).size and png(final, url).mode == "RGB"
    assert "Done in" in status and "RePaint, r = 2, j = 2" in status and "of 2 samples" in status
    slider, gif, _ = client.predict(api_name=f"/{tab}_inpaint_gif")
    # 3 steps, and after the second 2 back up and 2 down again: 7 (editing.repaint_steps)
    assert slider["value"] == slider["maximum"] == 6 and gif["value"]["path"].endswith(".gif")
    assert client.predict(0, api_name=f"/{tab}_replay")[2].startswith("step 1/7")
    *_, status = client.predict(editor(tmp_path, tab), "top half", 1, 10, *sampling(tab), api_name=f"/{tab}_inpaint")
    assert "plain replacement (r = 1)" in status and "step 3/3" in status


@pytest.mark.parametrize("mask, layer, message", [
    ("brush (paint the hole)", None, "the mask is empty"),
    ("brush (paint the hole)", brush(28), "covers the whole picture"),
    ("top half", brush(20), "mask layer must be an RGBA image the picture's size 28×28"),
    ("a circle", None, "not in the list of choices|mask preset"),
])
def test_bad_masks_are_refused_with_a_reason(client, tmp_path, mask, layer, message):
    with pytest.raises(AppError, match=message):
        client.predict(editor(tmp_path, "digits", layer), mask, 2, 2, *sampling("digits"), api_name="/digits_inpaint")


def test_resampling_settings_are_checked(client, tmp_path):
    for r, j, message in ((0, 2, "less than minimum|resampling r"), (2, 51, "greater than maximum|jump length")):
        with pytest.raises(AppError, match=message):
            client.predict(editor(tmp_path, "digits"), "top half", r, j, *sampling("digits"),
                           api_name="/digits_inpaint")


@pytest.mark.parametrize("tab", ["digits", "pokemon"])
def test_interpolation_gives_a_strip_of_n_frames_and_its_gif(client, url, tab):
    a, b = LABELS[tab]
    outputs = list(client.submit(5, b, 6, 3, 2.0, a, 0, 0.02, api_name=f"/{tab}_interpolate"))
    x_t, x0_pred, strip, gif, status = outputs[-1]
    assert "Done in" in status and "seed 0 → seed 5, 6 frames" in status
    picture = np.asarray(png(strip, url).convert("RGB"))
    assert picture.shape[1] > 4 * picture.shape[0]  # six tiles (and their tags) in one row
    assert tag_colours(picture) >= {"nothing asked"} and tag_colours(picture) & {"as asked", "not as asked"}
    assert gif["path"].endswith("run_interpolation.gif")
    assert client.predict(api_name=f"/{tab}_interpolate_gif")[0]["value"] == 2


@pytest.mark.parametrize("args, message", [
    ((1, "1", 17, 3, 2.0, "7", 0, 0.02), "greater than maximum|frames must be"),
    ((1, "1", 1, 3, 2.0, "7", 0, 0.02), "less than minimum|frames must be"),
    ((1, "1", 4, 3, 2.0, "all", 0, 0.02), "pick one label"),
    ((-5, "1", 4, 3, 2.0, "7", 0, 0.02), "less than minimum|second seed"),
])
def test_interpolation_inputs_are_checked(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/digits_interpolate")


@pytest.mark.parametrize("tab", ["digits", "pokemon"])
def test_samplers_side_by_side_report_steps_seconds_and_readings(client, url, tab):
    with paced(tab, 0.001):  # >= 1 s of model calls whatever the machine: several frames at 0.05 s
        outputs = list(client.submit(3, 2.0, LABELS[tab][0], 0, 0.05, api_name=f"/{tab}_compare"))
    assert len(outputs) >= 3
    x_t, x0_pred, final, status = outputs[-1]
    assert status.startswith("Done · DDPM: ") and " s · DDIM: " in status and " s · DPM-Solver++: " in status
    tiles = 28 * 3 if tab == "digits" else 48 * 2  # tagged_grid enlarges digits 3 times, sprites twice
    picture = np.asarray(png(final, url).convert("RGB"))
    assert picture.shape[1] > 3 * tiles and tag_colours(picture) & {"as asked", "not as asked"}
    assert client.predict(api_name=f"/{tab}_compare_gif")[0]["value"] == 1000 + 3 + 3 - 1
    with pytest.raises(AppError, match="pick one label"):
        client.predict(3, 2.0, "all", 0, 0.05, api_name=f"/{tab}_compare")


def tag_colours(picture: np.ndarray) -> set[str]:
    """Which of viz.tagged_grid's tag colours are drawn in a picture [H, W, 3]."""
    colours = {"as asked": (20, 130, 40), "not as asked": (200, 30, 30), "nothing asked": (90, 90, 90)}
    return {name for name, rgb in colours.items() if (picture == rgb).all(-1).any()}


def test_stop_ends_a_comparison_and_keeps_its_steps(client):
    slider, status, after = stop_at_first_frame(client, "digits", "digits_compare", 3, 2.0, "7", 0, 0.02)
    assert after <= 1 and 0 < slider["value"] < 1005 and status.startswith("Stopped at step")
