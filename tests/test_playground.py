"""The playground logic behind the app (no gradio): input checks, throttling, recording, frames, sketches, GIFs."""
from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from diffusion_core.data.datasets import DIGIT_CLASSES, to_uint8
from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.models import MLPConfig, UNetConfig, build_model
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults
from diffusion_core.playground import lesson, lesson_viz, sketch, viz
from diffusion_core.playground import runs as pg
from diffusion_core.schedules import make_schedule

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def spiral_pipe() -> Pipeline:
    """An untrained tiny point model on the CPU (the playground only needs its shapes and determinism)."""
    torch.manual_seed(0)
    info = ModelInfo("spiral", (2,), diffusion=DiffusionConfig("linear", 1000, clip_x0=False),
                     sampling=SamplingDefaults("ddpm", 1000, 0.0, 0.0))
    return Pipeline(build_model(MLPConfig(hidden=16, num_layers=2, time_dim=8)), info, "test", torch.device("cpu"))


@pytest.fixture(scope="module")
def digits_pipe() -> Pipeline:
    """An untrained tiny conditional 28×28 UNet, labelled like the digits model."""
    torch.manual_seed(0)
    config = UNetConfig(in_channels=1, image_size=28, base_channels=8, channel_mults=(1, 2), attention=False,
                        groups=4, num_classes=10)
    info = ModelInfo("digits", (1, 28, 28), DIGIT_CLASSES)
    return Pipeline(build_model(config), info, "test", torch.device("cpu"))


def settings(pipe: Pipeline, tab: str = "spiral", **overrides) -> pg.RunSettings:
    """check_settings with small, valid defaults."""
    args = dict(sampler="ddim", steps=5, eta=0.0, guidance=2.0, label="all", seed=0, num=3, refresh_s=0.02)
    args.update(overrides)
    return pg.check_settings(pipe, tab, **args)


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "steps must be between 1 and 1000"), ("steps", 10**6, "steps must be between 1 and 1000"),
    ("steps", 2.5, "whole number"), ("guidance", -1, "guidance scale must be between 0 and 10"),
    ("eta", 2, "eta must be between 0 and 1"), ("num", 10**6, "samples per class must be between 1 and 10"),
    ("label", 42, "label must be 'all' or one of"), ("sampler", "euler", "sampler must be one of"),
    ("seed", -1, "seed must be between"), ("refresh_s", 0, "refresh interval"), ("eta", float("nan"), "eta"),
    ("steps", "many", "steps must be a number"), ("t_start", 1000, "noise level t"),
])
def test_bad_settings_are_refused_with_a_clear_message(digits_pipe, field, value, message):
    with pytest.raises(ValueError, match=message):
        settings(digits_pipe, "digits", **{field: value})


def test_settings_for_all_labels_and_ddpm(digits_pipe, spiral_pipe):
    s = settings(digits_pipe, "digits", label="all", num=2)
    assert (s.label, s.num, s.per_row) == ("all", 20, 2)
    assert settings(digits_pipe, "digits", label="7", num=9).label == 7 and settings(digits_pipe, "digits").steps == 5
    assert settings(spiral_pipe, sampler="ddpm", steps=3).steps is None  # DDPM always takes all T steps
    assert settings(spiral_pipe, label="anything").label is None  # unconditional model: no label
    assert settings(digits_pipe, "digits", steps=50, t_start=9).steps == 10  # SDEdit: at most t_start + 1 steps
    with pytest.raises(ValueError, match="at most|between 1 and 36"):
        settings(digits_pipe, "pokemon", label=3, num=37)


def test_throttle_lets_a_frame_through_once_per_interval():
    now = [0.0]
    throttle = pg.Throttle(0.1, clock=lambda: now[0])
    passed = []
    for _ in range(50):
        passed.append(throttle.due())
        now[0] += 0.01
    assert passed[0] and sum(passed) == 5


def test_live_run_throttles_frames_not_sampling_and_records_every_step(spiral_pipe):
    s = settings(spiral_pipe, steps=40, num=50, refresh_s=2.0)
    shown = [(out.index, rec) for out, rec in pg.live_run(spiral_pipe, s)]
    rec = shown[-1][1]
    assert [i for i, _ in shown] == [0, 39]  # the first frame at once, then only the last one
    assert rec.total == 40 and sorted(rec.steps) == list(range(40)) and rec.stride == 1
    t, x_t, x0_pred = rec.steps[39]
    assert t == -1 and x_t.shape == (50, 2) and x_t.dtype == np.float16 and x0_pred.shape == (50, 2)
    assert rec.nearest(0) == 0 and rec.nearest(39) == 39
    with pytest.raises(ValueError, match="step must be between 0 and 39"):
        rec.nearest(40)


def test_same_seed_same_run_and_recording_is_bounded(spiral_pipe):
    runs = [[out.x_t for out, _ in pg.live_run(spiral_pipe, settings(spiral_pipe, seed=seed))] for seed in (3, 3, 4)]
    assert torch.equal(runs[0][-1], runs[1][-1]) and not torch.equal(runs[0][-1], runs[2][-1])
    s = settings(spiral_pipe, sampler="ddpm", num=5000, refresh_s=2.0)
    rec = [rec for _, rec in pg.live_run(spiral_pipe, s)][-1]
    kept = sum(x_t.nbytes + x0.nbytes for _, x_t, x0 in rec.steps.values())
    assert rec.stride == math.ceil(1000 * 2 * 5000 * 2 * 2 / pg.RECORD_BYTES) > 1  # x_t, x0_pred: float16 points
    assert kept <= pg.RECORD_BYTES + 40_000 and 999 in rec.steps and 0 in rec.steps
    assert rec.sample_indices(5)[-1] == 999 and len(rec.sample_indices(5)) == 5


def test_streams_end_with_a_done_frame_status_and_tags(spiral_pipe, digits_pipe):
    frames = list(pg.spiral_stream(spiral_pipe, settings(spiral_pipe, num=40)))
    value, = frames[-1].outputs
    assert value["done"] and value["step"] == 4 and "curve" in value and "Done in" in frames[-1].status
    points = np.frombuffer(base64.b64decode(value["xt"]), dtype="<f4").reshape(-1, 2)
    assert points.shape == (40, 2) and "mean distance of x_t to the spiral" in frames[-1].status
    frames = list(pg.image_stream(digits_pipe, settings(digits_pipe, "digits", num=1, label="all")))
    x_t, x0_pred, final = frames[-1].outputs
    assert x_t.shape == x0_pred.shape == (10 * 29 + 1, 30) and final.ndim == 3 and final.shape[-1] == 3
    assert frames[0].outputs[2] is None and "LeNet reads the asked digit in" in frames[-1].status
    replayed = pg.replay_frame(frames[-1].rec, 0)
    assert replayed.step == 0 and replayed.outputs[0].shape == x_t.shape and "step 1/5" in replayed.status
    with pytest.raises(ValueError, match="generate first"):
        pg.replay_frame(None, 0)


def draw(strokes: list[tuple[int, int, int, int]], size: int = 280, rgba: bool = True) -> np.ndarray:
    """A sketchpad-like image: black strokes on transparent (RGBA) or on white (RGB)."""
    img = Image.new("RGBA" if rgba else "RGB", (size, size), (255, 255, 255, 0) if rgba else "white")
    for line in strokes:
        ImageDraw.Draw(img).line(line, fill="black", width=20)
    return np.asarray(img)


@pytest.mark.parametrize("rgba", [True, False])
def test_sketch_becomes_a_centred_mnist_style_digit(rgba):
    x0 = sketch.sketch_to_x0({"composite": draw([(30, 20, 60, 250)], rgba=rgba)})  # a "1" near the left edge
    assert x0.shape == (1, 28, 28) and x0.min() >= -1 and x0.max() <= 1
    ink = (x0[0] + 1) / 2
    cy, cx = [(torch.arange(28.0) * ink.sum(d)).sum() / ink.sum() for d in (1, 0)]
    assert abs(cy - 13.5) < 1.5 and abs(cx - 13.5) < 1.5  # centred by mass like MNIST
    assert (ink > 0.5).sum() > 20 and ink[:, :3].max() < 0.1  # inked, with a margin


def test_a_garment_sketch_fills_the_frame_as_fashion_mnist_does():
    shoe = draw([(20, 200, 260, 200), (20, 240, 260, 240), (200, 120, 200, 240)])  # sole, toe, heel: 240 px wide
    digit_box, garment = sketch.sketch_to_x0({"composite": shoe}), sketch.sketch_to_garment({"composite": shoe})
    width = [int(((x[0] + 1) / 2 > 0.1).any(0).sum()) for x in (digit_box, garment)]
    assert width[0] <= 21 and width[1] >= 25  # MNIST's 20 px box, Fashion-MNIST's 26
    with pytest.raises(ValueError, match="draw a garment"):
        sketch.sketch_to_garment({"composite": None})


@pytest.mark.parametrize("value, message", [
    (None, "draw a digit"), ({"composite": None}, "draw a digit"), ({"composite": np.zeros((280, 280, 4))}, "empty"),
    ("not an image", "not an image"), (np.zeros((3, 3)), "must be an image"), (np.zeros((5, 5, 7)), "must be an image"),
])
def test_broken_sketches_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        sketch.sketch_to_x0(value)


ROOT = Path(__file__).resolve().parent.parent


def sprite_example() -> np.ndarray:
    return np.asarray(Image.open(ROOT / "static" / "examples" / "pokemon.png").convert("RGB"))


@pytest.mark.parametrize("enlarge", [1, 4])
def test_an_uploaded_sprite_is_read_back_pixel_for_pixel(enlarge):
    rgb = sprite_example()  # on white; a transparent background is read the same
    rgba = np.concatenate([rgb, np.where(rgb.min(-1, keepdims=True) > 245, 0, 255).astype(np.uint8)], -1)
    for picture in (rgb, rgba):
        big = np.kron(picture, np.ones((enlarge, enlarge, 1), np.uint8))  # pixel art shown k times larger
        np.testing.assert_array_equal(sketch.enlarged(picture, enlarge), big)
        x0 = sketch.sketch_to_sprite({"composite": big})
        assert x0.shape == (3, 48, 48)
        np.testing.assert_array_equal(to_uint8(x0[None])[0], rgb)


def test_a_grey_picture_with_or_without_alpha_becomes_a_grey_sprite():
    grey = sprite_example().mean(-1).astype(np.uint8)
    la = np.stack([grey, np.where(grey > 245, 0, 255).astype(np.uint8)], -1)
    for picture in (grey, la):
        u = to_uint8(sketch.sketch_to_sprite(picture)[None])[0]
        np.testing.assert_array_equal(u, np.repeat(grey[..., None], 3, -1))


def test_a_large_drawing_is_shrunk_to_fit_and_centred_on_white():
    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((20, 50, 279, 149), fill=(200, 30, 40, 255))  # 260 x 100, off-centre
    u = to_uint8(sketch.sketch_to_sprite(np.asarray(img))[None])[0]
    red = (u[..., 0] > 150) & (u[..., 1] < 80)
    ys, xs = np.nonzero(red)
    assert xs.max() - xs.min() + 1 == 46 and abs((ys.min() + ys.max()) / 2 - 23.5) <= 1  # fits 46 px, centred
    assert (u[~red] == 255).all(-1).mean() > 0.95  # white around it


@pytest.mark.parametrize("value, message", [
    (None, "draw or upload a sprite"), ({"composite": np.full((50, 50, 3), 255)}, "empty"),
    ("not an image", "not an image"), (np.zeros((5, 5, 7)), "must be an image"),
])
def test_broken_sprite_pictures_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        sketch.sketch_to_sprite(value)


def test_forward_process_uses_the_same_noise_for_both_schedules():
    x0 = lesson.load_example(None, n_points=100)
    out = lesson.forward_process(x0, 0)
    for kind, (x_t, numbers) in out.items():
        assert x_t.shape == (100, 2) and numbers["alpha_bar"] > 0.99 and numbers["snr"] > 100, kind
    late = lesson.forward_process(x0, 999)
    assert torch.allclose(late["linear"][0], late["cosine"][0], atol=0.02)  # both nearly pure (the same) noise
    assert "| linear |" in lesson_viz.schedule_table(out)
    figure = lesson_viz.schedule_figure({k: make_schedule(k, 50) for k in ("linear", "cosine")}, 10)
    assert len(figure.data) == 6 and figure.data[2].y[10] > 0  # beta, alpha_bar, SNR for each schedule


def test_points_round_trip_and_pictures():
    pts = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    assert np.array_equal(np.frombuffer(base64.b64decode(viz.encode_points(pts)), "<f4").reshape(7, 2), pts)
    img = viz.scatter_image(pts, 100, 3.0, viz.spiral_points(50))
    assert img.shape == (100, 100, 3) and (img != 255).any()
    grid = viz.display_grid(np.zeros((6, 28, 28, 1), np.uint8), 3, width=300)
    assert grid.ndim == 2 and grid.shape[1] == 3 * (3 * 29 + 1)
    tagged = viz.tagged_grid(np.zeros((4, 28, 28, 1), np.uint8), [("7 (90%)", True)] * 3 + [("1", False)], 2, 56)
    assert tagged.shape[2] == 3 and tagged.shape[1] == 2 * (56 + 6) + 6


def test_gif_of_a_recording(tmp_path, spiral_pipe):
    rec = [rec for _, rec in pg.live_run(spiral_pipe, settings(spiral_pipe, steps=30, num=20))][-1]
    path = viz.run_gif(rec, tmp_path, max_frames=8)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 8
    assert viz.run_gif(rec, tmp_path) == path  # made once per recording


def test_model_store_loads_from_the_hub_once_and_falls_back_to_the_shipped_copy(tmp_path, monkeypatch, spiral_pipe):
    from concurrent.futures import ThreadPoolExecutor

    from diffusion_core.files.checkpoint import save_checkpoint
    from diffusion_core.pipeline import checkpoint_config
    from tests.fake_hub import serve_fake_hub, use_fake_hub

    config = checkpoint_config(spiral_pipe.model.config, spiral_pipe.info)
    folder = save_checkpoint(tmp_path / "spiral", spiral_pipe.model.state_dict(), config)
    specs = {"spiral": pg.CheckpointSpec("org/spiral", "v1", folder),
             "digits": pg.CheckpointSpec("org/digits", "v1", tmp_path / "missing")}
    with serve_fake_hub({"org/spiral": {"v1": folder}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        store = pg.ModelStore(specs)
        with ThreadPoolExecutor(4) as pool:
            pipes = list(pool.map(lambda _: store.get("spiral"), range(4)))
        assert all(p is pipes[0] for p in pipes) and pipes[0].source == "Hub org/spiral@v1"
        assert sum(m == "GET" and f == "model.safetensors" for m, _, _, f in hub.requests) == 1
        with pytest.raises(pg.CheckpointError, match="no digits checkpoint could be loaded.*--dataset digits"):
            store.get("digits")
    with serve_fake_hub({}) as hub:  # the repo is not on the Hub: the shipped copy
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf2")
        assert pg.ModelStore(specs).get("spiral").source.startswith(f"shipped copy {folder}")
