"""The 2D lab's core: its datasets and drawings, the distance to the data, the layers of a live run, live training
(bounded, one model per training, Stop keeps what was learned) and flow matching against diffusion."""
import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.playground import lab, lab_views

from diffusion_core.training import live_training

from diffusion_core.data import points2d
from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.evaluation.metrics import data_distance, reference_points, spiral_distance
from diffusion_core.models import MLPConfig, build_model
from diffusion_core.pipeline import ModelInfo, Pipeline
from diffusion_core.playground import runs as pg

ROOT = Path(__file__).resolve().parent.parent
SQUARE = np.array([[x, y] for x in range(5) for y in range(5)], dtype=float)  # 25 distinct points


def test_toy_sets_lie_in_the_square_and_have_their_shapes():
    g = points2d.make_gaussians(8000, torch.Generator().manual_seed(0))
    angles = torch.atan2(g[:, 1], g[:, 0]) / (math.pi / 4)
    assert (angles - angles.round()).abs().median() < 0.07 and g.norm(dim=1).mean() == pytest.approx(0.8, abs=0.01)
    assert torch.bincount(angles.round().long() % 8).min() > 900  # all 8 modes, about 1,000 each
    c = points2d.make_checkerboard(8000, torch.Generator().manual_seed(0))
    cells = torch.floor(2 * (c + 1)).long()
    assert c.abs().max() <= 1 and ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()  # dark squares only
    m = points2d.make_moons(8000, torch.Generator().manual_seed(0), noise=0.0)
    assert m.abs().max() <= 1.0 and m[:, 1].max() == pytest.approx((1 - 0.25) / 1.6, abs=1e-3)  # the upper moon's top


def test_the_general_distance_reads_as_the_spirals_on_a_dense_sample():
    x = reference_points("spiral")[:500] + 0.01
    assert data_distance(x, "spiral") == spiral_distance(x)
    dense = reference_points("spiral")
    assert float(np.abs(data_distance(x, "drawing", dense) - spiral_distance(x))) < 2e-3
    assert data_distance(reference_points("checkerboard")[:100], "checkerboard") < 0.02


@pytest.mark.parametrize("kw, message", [
    (dict(), "the drawing is empty"), (dict(text="0.1 0.2"), "too few points to learn a shape: 1 distinct"),
    (dict(text="1 2 " * 1_000_000), "too many points: 1,000,000 given, at most 20,000"),
    (dict(text="1 2 3"), "points come in pairs"), (dict(word="x" * 13), "the word is too long"),
    (dict(picture=np.full((100, 100, 3), 255, np.uint8)), "the drawing is empty"),
])
def test_bad_drawings_are_refused_with_a_message(kw, message):
    with pytest.raises(ValueError, match=message):
        points2d.drawn_points(**kw)


def test_a_pasted_million_points_is_refused_without_holding_them():
    import tracemalloc

    text = "0.5 0.25\n" * 1_000_000  # 9 MB of text; its 2,000,000 numbers as strings would be about 120 MB
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="too many points: 1,000,000 given"):
            points2d.parse_points(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, peak


def test_a_dot_is_refused_and_strokes_words_and_points_are_normalised_into_the_square():
    dot = np.full((280, 280, 4), 0, np.uint8)
    dot[130:145, 130:145] = (0, 0, 0, 255)
    with pytest.raises(ValueError, match="too little is drawn"):
        points2d.drawn_points(dot)
    stroke = dot.copy()
    stroke[40:60, 20:260] = (0, 0, 0, 255)  # a wide bar, then y up: the bar is above the dot
    pts = points2d.drawn_points(stroke)
    assert pts.shape == (points2d.DRAWING_N, 2) and np.abs(pts).max() == pytest.approx(1.0, abs=1e-6)
    assert (pts[:, 1] > 0).mean() > 0.9  # most ink is in the bar at the top
    word = points2d.drawn_points(word="hi")
    assert np.abs(word).max() == pytest.approx(1.0, abs=1e-6)
    typed = points2d.drawn_points(text="\n".join(f"{x}, {y}" for x, y in SQUARE))
    np.testing.assert_allclose(typed, (SQUARE - 2) / 2)


def tiny_pipe(prediction: str = "eps") -> Pipeline:
    torch.manual_seed(0)
    model = build_model(MLPConfig(hidden=16, num_layers=2, time_dim=8))
    diffusion = DiffusionConfig(schedule="linear", clip_x0=False, prediction=prediction)
    return Pipeline(model, ModelInfo("moons", (2,), diffusion=diffusion), device=torch.device("cpu"))


def test_layers_send_every_steps_path_points_the_field_and_the_density():
    pipe = Pipeline.load(str(ROOT / "checkpoints" / "spiral"))
    s = pg.check_settings(pipe, "spiral", "ddim", 40, 0.0, 0.0, None, 3, 60, 0.02)
    frames = list(lab.lab_stream(pipe, s, lab.Layers(paths=True, field=True, density=True), lab.measure_for("moons")))
    last = frames[-1].outputs[0]
    assert last["done"] and last["paths_all"] and last["paths_n"] == lab.PATHS and last["curve"] is None
    assert last["cloud"] and frames[0].outputs[0]["cloud"] and "cloud" not in frames[1].outputs[0]
    # the paths of the final frame: the first 50 particles at every recorded step, in order
    paths = np.frombuffer(base64.b64decode(last["paths"]), "<f4").reshape(-1, lab.PATHS, 2)
    x_t = frames[-1].rec.steps[39][1]
    np.testing.assert_array_equal(paths[-1], x_t[:lab.PATHS].astype(np.float32))
    assert len(paths) == 40 and "mean distance of x_t to the two moons" in frames[-1].status
    # the field at the last frame's step: x0_pred - x on the grid, the model's own answer at t = 0
    field = np.frombuffer(base64.b64decode(last["field"]), "<f4").reshape(-1, 2)
    np.testing.assert_allclose(field, lab.model_field(pipe, 0, lab.field_grid()), rtol=1e-6)
    dens = np.frombuffer(base64.b64decode(last["density"]), np.uint8)
    assert dens.size == lab.DENSITY_N ** 2 and dens.max() == 255
    plain = list(lab.lab_stream(pipe, s, lab.Layers(), lab.measure_for("moons")))[-1].outputs[0]
    assert not {"paths", "field", "density", "grid"} & set(plain)


def test_density_counts_where_the_points_are():
    d = lab.density(np.array([[1.5, -1.5]] * 10))
    iy, ix = np.unravel_index(d.argmax(), d.shape)
    grid = np.linspace(-lab.LIM, lab.LIM, lab.DENSITY_N + 1)
    assert grid[ix] <= 1.5 < grid[ix + 1] and grid[iy] <= -1.5 < grid[iy + 1]


def test_a_flow_model_takes_euler_or_heun_and_a_diffusion_model_the_others():
    with pytest.raises(ValueError, match="a flow-matching model samples with euler or heun"):
        lab_views.check_lab_settings(tiny_pipe("flow"), "ddim", 10, 0, 0, 10, 0.05)
    with pytest.raises(ValueError, match="a diffusion model samples with ddpm or ddim or dpm"):
        lab_views.check_lab_settings(tiny_pipe(), "heun", 10, 0, 0, 10, 0.05)
    assert lab_views.check_lab_settings(tiny_pipe("flow"), "heun", 10, 0.5, 0, 10, 0.05).sampler == "heun"


def weights(model: live_training.LiveModel) -> list[torch.Tensor]:
    return [p.clone() for p in model.pipe.model.parameters()]


MOONS = reference_points("moons")[:2000]


def test_live_training_yields_previews_and_its_model_is_its_own():
    """Two trainings interleaved each get the model they get alone, bit for bit: nothing is shared."""
    alone = list(live_training.train_live(MOONS, "moons", steps=20, preview_every=10, seed=5, preview_n=20))
    a = live_training.train_live(MOONS, "moons", steps=20, preview_every=10, seed=5, preview_n=20)
    b = live_training.train_live(MOONS * 0.5, "drawing", "flow", steps=20, preview_every=10, seed=6, preview_n=20)
    together = [next(a), next(b), next(a), next(b)]
    assert [u.step for u in alone] == [10, 20] and alone[-1].done and not alone[0].done
    for x, y in zip(weights(alone[-1].model), weights(together[2].model)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert together[3].model.objective == "flow" and together[3].model.reference is not None
    assert together[3].model.pipe.model is not together[2].model.pipe.model
    assert together[2].samples.shape == (20, 2) and together[2].losses[-1][0] == 20


def test_trainings_at_once_are_bounded_and_stop_frees_a_slot_and_keeps_the_model():
    runs = [live_training.train_live(MOONS, "moons", steps=1000, preview_every=5, preview_n=20) for _ in range(3)]
    first = [next(r) for r in runs[:2]]
    with pytest.raises(live_training.Busy, match="2 trainings are running"):
        next(runs[2])
    kept = weights(first[0].model)
    runs[0].close()  # Stop: the generator is closed at its yield
    for x, y in zip(kept, weights(first[0].model)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)  # a snapshot: later steps do not reach it
    again = live_training.train_live(MOONS, "moons", steps=5, preview_every=5, preview_n=20)
    assert next(again).done  # a free slot again
    runs[1].close()
    with pytest.raises(ValueError, match="at most 120 s"):
        next(live_training.train_live(MOONS, "moons", seconds=1000))


def test_compare_runs_both_from_the_same_noise_and_tabulates_few_steps():
    diffusion, flow, measure = tiny_pipe(), tiny_pipe("flow"), lab.measure_for("moons")
    fig, text = lab_views.compare(diffusion, flow, measure, seed=3, num=60, sampler="ddim", flow_sampler="heun",
                                  steps=4)
    traces = fig.to_dict()["data"]
    starts = [t for t in traces if t.get("marker", {}).get("symbol") == "circle-open"]
    np.testing.assert_array_equal(starts[0]["x"], starts[1]["x"])  # the same initial noise in both panels
    assert "| 8 |" in text and "flow matching, Heun" in text and "as long as straight lines" in text
    assert "of their length in the last quarter of the steps" in text
    straight = np.stack([np.linspace(0, 1, 5)] * 2, -1)[:, None]
    assert lab_views.straightness(straight) == pytest.approx(1.0)
    assert lab_views.late_share(straight) == pytest.approx(0.25)  # an even pace: 1 of 4 steps' length
    late = np.stack([np.array([0, 0.01, 0.02, 0.03, 1.0])] * 2, -1)[:, None]
    assert lab_views.late_share(late) == pytest.approx(0.97)
    assert lab_views.late_share(straight[:2]) == pytest.approx(1.0)  # one step: all of it is the last


def test_on_the_shipped_spiral_ddim_curves_and_moves_late_and_ot_flow_matching_goes_straight():
    """What the comparison's words claim, on the page's default noise (seed 0, 1,000 points, 8 steps): DDIM's paths
    curve (measured 1.06x the straight distance) and cover most of their way in the last quarter of the steps
    (56 %); the OT-coupled flow model's Euler paths are straight (1.001x), at an even pace (26 %), and land near
    the data in one step (0.039 against DDIM's 0.98)."""
    spiral, flow = (Pipeline.load(ROOT / "checkpoints" / n, device=torch.device("cpu")) for n in ("spiral",
                                                                                                   "spiral_flow"))
    x_T = torch.randn((1000, 2), generator=torch.Generator().manual_seed(0))
    ddim, euler = (lab_views.run_from(p, x_T, s, 8, "").paths for p, s in ((spiral, "ddim"), (flow, "euler")))
    assert lab_views.straightness(ddim) > 1.04 > 1.01 > lab_views.straightness(euler)
    assert lab_views.late_share(ddim) > 0.5 > 0.3 > lab_views.late_share(euler)
    measure = lab.measure_for("spiral")
    one_step = [measure.distance(lab_views.run_from(p, x_T, s, 1, "").final) for p, s in ((spiral, "ddim"),
                                                                                          (flow, "euler"))]
    assert one_step[1] < 0.1 < 0.5 < one_step[0]


LAB_CHECKPOINTS = ["spiral_flow", "moons", "moons_flow", "gaussians", "gaussians_flow", "checkerboard",
                   "checkerboard_flow"]


@pytest.mark.parametrize("name", LAB_CHECKPOINTS)
def test_each_lab_checkpoints_recorded_command_asks_for_its_config(name):
    """The lab's shipped models were trained by the train command their cards quote (test_train's check)."""
    from tests import test_train

    test_train.test_each_shipped_checkpoints_recorded_commands_ask_for_the_config_it_was_trained_with(name)
    pipe = Pipeline.load(str(ROOT / "checkpoints" / name))
    assert (pipe.info.diffusion.prediction == "flow") == name.endswith("_flow")
    coupling = json.loads((ROOT / "checkpoints" / name / "config.json").read_text())["training"]["config"]
    assert coupling.get("coupling", "independent") == ("ot" if name.endswith("_flow") else "independent")
    assert pipe.measured.startswith("Euler, 100 steps" if name.endswith("_flow") else "DDPM, 1000 steps")
