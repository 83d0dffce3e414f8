"""Editing over the one sampling loop: RePaint's plan and jumps, inpainting (pixel and latent models), slerped
interpolation between seeds and labels, the samplers side by side, and the CLI's --inpaint."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_core import editing
from diffusion_core.data.datasets import to_uint8
from diffusion_core.diffusion import DiffusionConfig, q_sample
from diffusion_core.evaluation.metrics import spiral_distance
from diffusion_core.guidance import guided_eps_fn
from diffusion_core.models import UNetConfig, build_model
from diffusion_core.models.autoencoder import Autoencoder, AutoencoderConfig
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults
from diffusion_core.playground import editing_views as ev
from diffusion_core.playground.runs import RunSettings
from diffusion_core.samplers import repaint_plan, renoise, timestep_plan
from diffusion_core.schedules import make_schedule

torch.set_num_threads(1)
CONFIG = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=3)
INFO = ModelInfo(dataset="digits", data_shape=(1, 8, 8), class_names=("a", "b", "c"),
                 diffusion=DiffusionConfig(T=100), sampling=SamplingDefaults(sampler="ddim", steps=5, guidance=2.0))


def tiny(config: UNetConfig = CONFIG, info: ModelInfo = INFO, autoencoder=None) -> Pipeline:
    """A tiny class-conditional UNet with random (non-zero) output weights."""
    torch.manual_seed(0)
    model = build_model(config)
    torch.nn.init.normal_(model.out[-1].weight, std=0.1)
    return Pipeline(model, info, device=torch.device("cpu"), autoencoder=autoencoder)


@pytest.fixture(scope="module")
def pipe():
    return tiny()


def picture(shape=(1, 8, 8)) -> torch.Tensor:
    """A fixed picture in [-1, 1] on the uint8 grid (as a visitor's upload would be)."""
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, shape)).float() / 127.5 - 1


# ---------------------------------------------------------------- RePaint's plan and jumps

def test_repaint_plan_goes_back_up_j_levels_r_minus_1_times_at_every_jump_point():
    plan = timestep_plan("ddpm", 6)  # levels 5, 4, 3, 2, 1, 0, -1
    assert repaint_plan(plan, 1, 2) == plan  # r = 1: plain replacement, the plan itself
    ts = [plan[0][0], *(t_prev for _, t_prev in repaint_plan(plan, 2, 2))]
    assert ts == [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    ts = [plan[0][0], *(t_prev for _, t_prev in repaint_plan(plan, 3, 1))]  # every level from 4 down, three times
    assert ts == [5, 4, 5, 4, 5, 4, 3, 4, 3, 4, 3, 2, 3, 2, 3, 2, 1, 2, 1, 2, 1, 0, 1, 0, 1, 0, -1]
    with pytest.raises(ValueError, match="r >= 1"):
        repaint_plan(plan, 0, 2)


def test_renoise_gives_the_forward_process_marginal_at_the_higher_level():
    """x_t ~ q(x_t | x0) jumped up to t_up has the law of q(x_{t_up} | x0): mean sqrt(ab_up) x0, variance 1 - ab_up."""
    s, n, x0 = make_schedule("cosine", 1000), 400_000, 0.7
    g = torch.Generator().manual_seed(0)
    t, t_up = 300, 700
    x_t = q_sample(s, torch.full((n, 1), x0), torch.full((n,), t), torch.randn(n, 1, generator=g))
    x_up = renoise(s, x_t, t, t_up, torch.randn(n, 1, generator=g))
    ab = s.alpha_bar[t_up].item()
    std = math.sqrt(1 - ab)
    assert abs(x_up.mean().item() - math.sqrt(ab) * x0) < 4 * std / math.sqrt(n)
    assert abs(x_up.var().item() - (1 - ab)) < 4 * (1 - ab) * math.sqrt(2 / n)


# ---------------------------------------------------------------- inpainting

@pytest.mark.parametrize("sampler,resample", [("ddim", (1, 1)), ("ddim", (3, 2)), ("ddpm", (2, 10)),
                                              ("dpm++", (2, 2))])
def test_known_pixels_equal_the_input_exactly_and_the_hole_is_sampled(pipe, sampler, resample):
    image, hole = picture(), editing.preset_mask("centre square", 8, 8)
    x = editing.inpaint_final(pipe, image, hole, 3, seed=1, label=1, sampler=sampler, resample=resample, eta=0.5)
    assert torch.equal(x[:, :, ~hole], image[:, ~hole].expand(3, -1, -1))
    assert not torch.equal(x[:, :, hole], image[:, hole].expand(3, -1, -1))  # the hole is the model's
    again = editing.inpaint_final(pipe, image, hole, 3, seed=1, label=1, sampler=sampler, resample=resample, eta=0.5)
    assert torch.equal(x, again)  # all randomness from the seed


def test_every_step_reimposes_the_known_region_noised_to_its_level(pipe):
    """After every step, down or back up, the known pixels are the picture noised to that step's t:
    sqrt(ab_t) x0 + sqrt(1 - ab_t) eps with eps standard Gaussian (2,000 samples, about 7 standard errors)."""
    image, hole = picture(), editing.preset_mask("left half", 8, 8)
    s = pipe.schedule
    outs = list(editing.inpaint(pipe, image, hole, 2000, seed=0, label=0, sampler="ddim", steps=5, resample=(2, 2)))
    assert [o.t for o in outs][:6] == [79, 59, 79, 99, 79, 59]  # back up two levels after two steps
    for o in outs[:-1]:
        ab = s.alpha_bar[o.t].item()
        noise = (o.x_t[:, :, ~hole] - math.sqrt(ab) * image[:, ~hole]) / math.sqrt(1 - ab)
        assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02, o.t


def test_bad_masks_and_settings_are_refused_with_a_reason(pipe):
    image = picture()
    cases = [(torch.zeros(8, 8, dtype=torch.bool), "empty"), (torch.ones(8, 8, dtype=torch.bool), "whole picture"),
             (torch.ones(4, 8, dtype=torch.bool), "8×8 pixels")]
    for hole, reason in cases:
        with pytest.raises(ValueError, match=reason):
            next(editing.inpaint(pipe, image, hole, 1, seed=0))
    hole = editing.preset_mask("top half", 8, 8)
    with pytest.raises(ValueError, match="resampling"):
        next(editing.inpaint(pipe, image, hole, 1, seed=0, resample=(0, 3)))
    with pytest.raises(ValueError, match="picture must be"):
        next(editing.inpaint(pipe, picture((3, 8, 8)), hole, 1, seed=0))
    with pytest.raises(ValueError, match="preset"):
        editing.preset_mask("a circle", 8, 8)


def tiny_latent() -> Pipeline:
    """A tiny latent model: 16×16 RGB pictures, 2×4×4 latents (an untrained autoencoder), 3 classes."""
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(latent_channels=2, channels=(8, 16, 16), image_size=16)).eval()
    unet = UNetConfig(in_channels=2, image_size=4, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=3)
    info = ModelInfo(dataset="tiny", data_shape=(2, 4, 4), class_names=("a", "b", "c"),  # no reader: untagged
                     diffusion=DiffusionConfig(T=100), sampling=SamplingDefaults(steps=4))
    return tiny(unet, info, ae)


def test_a_latent_model_reimposes_known_latents_and_pastes_the_known_pixels_back():
    latent = tiny_latent()
    hole = torch.zeros(16, 16, dtype=torch.bool)
    hole[5, 5] = True  # one pixel: only the latent cell above it is unknown (max-pooled, factor 4)
    cells = editing.latent_hole(hole, (4, 4))
    assert cells.sum() == 1 and cells[1, 1]
    image = picture((3, 16, 16))
    steps = list(editing.inpaint(latent, image, hole, 2, seed=0, label=2))
    z0 = latent.encode(image[None])
    assert torch.equal(steps[-1].x_t[:, :, ~cells], z0[:, :, ~cells].expand(2, -1, -1))  # known latents, exactly
    x = editing.inpaint_final(latent, image, hole, 2, seed=0, label=2)
    assert x.shape == (2, 3, 16, 16) and torch.equal(x[:, :, ~hole], image[:, ~hole].expand(2, -1, -1))


def test_the_cli_inpaints_a_picture_and_refuses_a_mask_of_the_wrong_size(tmp_path, capsys):
    from diffusion_core.files.checkpoint import save_checkpoint
    from diffusion_core.pipeline import checkpoint_config
    from diffusion_core.sample import main

    pipe = tiny()
    save_checkpoint(tmp_path / "ckpt", pipe.model.state_dict(), checkpoint_config(CONFIG, INFO))
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255  # fill the top half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["--checkpoint", str(tmp_path / "ckpt"), "--num", "3", "--label", "1", "--seed", "0", "--inpaint",
            str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--resample", "2", "2"]
    assert main([*args, "--out", str(tmp_path / "out.npz")]) == 0
    out = np.load(tmp_path / "out.npz")["samples"][..., 0]
    assert out.shape == (3, 8, 8) and (out[:, 4:] == pixels[4:]).all() and not (out[:, :4] == pixels[:4]).all()
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "mask.png")
    assert main([*args, "--out", str(tmp_path / "bad.npz")]) == 2
    assert "the mask must be 8×8 pixels" in capsys.readouterr().err


# ---------------------------------------------------------------- interpolation

def test_one_hot_label_weights_are_the_integer_labels_and_guidance_works_on_them(pipe):
    model, x = pipe.model, torch.randn(3, 1, 8, 8)
    t, labels = torch.tensor([10, 50, 90]), torch.tensor([0, 2, 1])
    soft = torch.nn.functional.one_hot(labels, 4).float()
    assert torch.equal(model.embed(t, soft), model.embed(t, labels))
    w, half = model.label_emb.weight, torch.tensor([[0.5, 0.5, 0, 0]] * 3)
    torch.testing.assert_close(model.embed(t, half), model.embed(t, None) - w[3] + (w[0] + w[1]) / 2)
    with torch.inference_mode():
        for g in (0.0, 1.0, 2.5):
            torch.testing.assert_close(guided_eps_fn(model, soft, g, 3)(x, t), guided_eps_fn(model, labels, g, 3)(x, t),
                                       rtol=0, atol=1e-6)


def test_slerp_keeps_the_norm_of_gaussian_noise_where_lerp_shrinks_it():
    g, d = torch.Generator().manual_seed(0), 784
    a, b = torch.randn(200, d, generator=g), torch.randn(200, d, generator=g)
    band = 4 / math.sqrt(2)  # the norm of d-dimensional Gaussian noise: sqrt(d) with standard deviation 1 / sqrt(2)
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        norms = torch.stack([editing.slerp(x, y, w) for x, y in zip(a, b)]).norm(dim=1)
        assert (norms - math.sqrt(d)).abs().max() < band, w
    lerp = (0.5 * a + 0.5 * b).norm(dim=1)
    assert (lerp - math.sqrt(d / 2)).abs().max() < band  # a straight line cuts inside the sphere
    assert torch.equal(editing.slerp(a[0], b[0], 0.0), a[0]) and torch.equal(editing.slerp(a[0], b[0], 1.0), b[0])


@pytest.mark.parametrize("labels", [(1, 1), (0, 2)])
def test_interpolation_end_frames_are_the_seeds_own_samples(pipe, labels):
    outs = list(editing.interpolate(pipe, 3, 8, 5, *labels, steps=6))
    frames = outs[-1].x_t
    for seed, label, frame in ((3, labels[0], frames[0]), (8, labels[1], frames[-1])):
        own, _ = pipe.generate(1, seed=seed, label=label, sampler="ddim", eta=0.0, steps=6)
        torch.testing.assert_close(frame, own[0], rtol=0, atol=1e-5)
    assert not torch.allclose(frames[1], frames[0], atol=1e-3) and not torch.allclose(frames[1], frames[-1], atol=1e-3)
    with pytest.raises(ValueError, match="frames must be between 2 and"):
        next(editing.interpolate(pipe, 0, 1, editing.MAX_FRAMES + 1, 0, 0))


# ---------------------------------------------------------------- the samplers side by side

def test_compare_runs_the_three_samplers_from_the_same_noise_in_step(pipe):
    steps = list(editing.compare_samplers(pipe, seed=4, steps=5, label=2))
    counts = {s: sum(1 for st in steps if st.sampler == s) for s in ("ddpm", "ddim", "dpm++")}
    assert counts == {"ddpm": 100, "ddim": 5, "dpm++": 5}
    done = dict.fromkeys(counts, 0)
    for st in steps:  # in step: the fractions of the three runs done never differ by more than one DDIM step
        done[st.sampler] += 1
        fractions = [done[s] / counts[s] for s in counts]
        assert max(fractions) - min(fractions) <= 1 / 5 + 1e-9 and st.seconds > 0
    for sampler in ("ddim", "dpm++"):
        final = [st for st in steps if st.sampler == sampler][-1].out.x_t
        own, _ = pipe.generate(1, seed=4, label=2, sampler=sampler, steps=5, eta=0.0)
        assert torch.equal(final, own)  # the same initial noise as the seed's own run


# ---------------------------------------------------------------- RePaint on the shipped digits model

def test_repaint_completes_held_out_digits_as_asked_more_often_than_plain_replacement():
    """The top half of 40 digits the shipped LeNet never trained on (its held-out split: lenet.train, seed 0; the
    diffusion model saw all 10,000) is masked and the true label asked (g = 0.5, DDIM 8 steps); the LeNet reads the
    asked digit in >= 90 % of completions with r = 10, j = 2, and more often than with r = 1. Measured: 40 of 40
    against 35 of 40 (about 90 s on one loaded CPU thread)."""
    from diffusion_core.data.datasets import load_dataset
    from diffusion_core.evaluation.lenet import predict

    data = load_dataset("digits")
    held = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:40]
    x, labels = data.x[held], data.labels[held]
    digits = Pipeline.load("checkpoints/digits", device=torch.device("cpu"))
    hole = editing.preset_mask("top half", 28, 28)
    rates = {}
    for r in (1, 10):
        out = editing.inpaint_final(digits, x, hole, len(x), seed=0, resample=(r, 2), label=labels, steps=8,
                                    guidance=0.5)
        assert torch.equal(out[:, :, ~hole], x[:, :, ~hole])
        rates[r] = (predict(out) == labels).double().mean().item()
    print(f"LeNet reads the asked digit: r = 1 {rates[1]:.1%}, r = 10 {rates[10]:.1%}")
    assert rates[10] >= 0.9 and rates[10] > rates[1]


def test_the_page_shows_every_editing_run_of_a_latent_model_in_pixels(tmp_path):
    """Inpainting, interpolation and the samplers side by side go through playground.record_run: every frame kept is
    pixels (the preview while streaming), the last one the decoder's (with the known pixels pasted back)."""
    latent = tiny_latent()
    s = RunSettings(sampler="ddim", steps=3, eta=0.0, guidance=2.0, label=1, seed=0, num=2, per_row=2, refresh_s=0.02)
    image, hole = picture((3, 16, 16)), editing.preset_mask("top half", 16, 16)
    runs = {"inpaint": ev.inpaint_stream(latent, s, image, hole, 2, 1), "compare": ev.compare_stream(latent, s),
            "interpolate": ev.interpolate_stream(latent, s, 5, "c", 3, tmp_path)}
    finals = {}
    for name, run in runs.items():
        kept = list(run)[-1].rec.steps
        assert all(x_t.shape[1:] == x0.shape[1:] == (16, 16, 3) for _, x_t, x0 in kept.values()), name
        finals[name] = kept[max(kept)][1]
    completed = editing.inpaint_final(latent, image, hole, 2, seed=0, resample=(2, 1), label=1, sampler="ddim",
                                      steps=3, eta=0.0, guidance=2.0)
    assert np.array_equal(finals["inpaint"], to_uint8(completed))
    x_T = editing.seed_noise(latent, 0)
    own = [latent.generate(1, seed=0, label=1, sampler=n, steps=3, eta=0.0, guidance=2.0, x_T=x_T)[0]
           for n in ev.SAMPLER_NAMES]
    assert np.array_equal(finals["compare"], to_uint8(torch.cat(own)))


def test_samplers_side_by_side_on_the_shipped_spiral_report_each_ones_distance_to_the_curve():
    """The points model (checkpoints/spiral, T = 1000): DDPM, DDIM and DPM-Solver++ from the same 200 noise points;
    all three land near the curve (the noise lies 0.48 from it), DDPM with every step nearest (measured 0.007, against
    0.06 and 0.05 for 20 steps); the page adapter reports the same distances, one live plot per sampler."""
    spiral = Pipeline.load("checkpoints/spiral", device=torch.device("cpu"))
    finals = {st.sampler: st for st in editing.compare_samplers(spiral, seed=0, steps=20, num=200)}
    assert {n: st.total for n, st in finals.items()} == {"ddpm": 1000, "ddim": 20, "dpm++": 20}
    own, _ = spiral.generate(200, seed=0, sampler="ddim", steps=20, eta=0.0)
    assert torch.equal(finals["ddim"].out.x_t, own)  # the seed's own noise
    distance = {n: spiral_distance(st.out.x_t) for n, st in finals.items()}
    assert spiral_distance(editing.seed_noise(spiral, 0, 200)) > 0.4
    assert max(distance.values()) < 0.1 and distance["ddpm"] < min(distance["ddim"], distance["dpm++"])
    s = RunSettings(sampler="ddim", steps=20, eta=0.0, guidance=0.0, label=None, seed=0, num=200, per_row=1,
                    refresh_s=0.5)
    frames = list(ev.compare_stream(spiral, s))
    assert len(frames[-1].outputs) == 3 and all(plot["done"] for plot in frames[-1].outputs)
    for n, name in ev.SAMPLER_NAMES.items():
        assert f"{name} {finals[n].total} steps: {distance[n]:.3f}, " in frames[-1].status


def test_samplers_side_by_side_on_another_points_set_are_captioned_replayed_and_animated(tmp_path):
    """The shipped moons model measured against the moons (lab.measure_for): each live plot carries its backdrop and
    a caption that gives, once that sampler is done, its distance to the data and its seconds; a finished plot is
    not sent again until the last frame; the recording keeps the three runs as groups, replayed as three captioned
    plots and drawn side by side in the GIF."""
    from diffusion_core.playground import lab, viz
    from diffusion_core.playground.runs import replay_frame

    moons, measure = Pipeline.load("checkpoints/moons", device=torch.device("cpu")), lab.measure_for("moons")
    s = RunSettings(sampler="ddim", steps=10, eta=0.0, guidance=0.0, label=None, seed=3, num=100, per_row=1,
                    refresh_s=0.02)
    frames = list(ev.compare_stream(moons, s, measure))
    last, rec = frames[-1], frames[-1].rec
    assert rec.groups == ("DDPM, 1000 steps", "DDIM, 10 steps", "DPM-Solver++, 10 steps")
    for plot, title in zip(last.outputs, rec.groups):
        assert plot["done"] and plot["cloud"] and plot["caption"].startswith(f"{title}: ")
        assert " from the two moons, " in plot["caption"]
    assert last.status.startswith("Done · mean distance to the two moons: DDPM 1000 steps: ")
    assert frames[0].outputs[1]["caption"] == "DDIM, 10 steps: step 1/10"
    assert all(f.outputs[1] is None for f in frames[:-1] if f.step > 1000)  # DDIM was done: not sent again
    replayed = replay_frame(rec, rec.total - 1)
    assert [v["caption"] for v in replayed.outputs] == list(rec.groups)
    assert [v["xt"] for v in replayed.outputs] != [replayed.outputs[0]["xt"]] * 3
    picture = viz.replay_picture(rec, rec.total - 1)
    assert picture.shape[1] >= 3 * 280  # the three runs' x_t side by side
    assert viz.run_gif(rec, tmp_path).exists()
