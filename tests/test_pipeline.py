"""Pipeline: seeds, interleaved runs, labels, SDEdit, sampling-time corrections, and loading a checkpoint folder
strictly."""
import json
from pathlib import Path

import pytest
import torch

from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.files.checkpoint import CheckpointError, save_checkpoint
from diffusion_core.models import UNetConfig, build_model
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults, checkpoint_config

CONFIG = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=3)
INFO = ModelInfo(dataset="digits", data_shape=(1, 8, 8), class_names=("a", "b", "c"),
                 diffusion=DiffusionConfig(T=100), sampling=SamplingDefaults(sampler="ddim", steps=5, guidance=2.0))


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    model = build_model(CONFIG)
    torch.nn.init.normal_(model.out[-1].weight, std=0.1)
    return Pipeline(model, INFO, device=torch.device("cpu"))


def final(pipe, **kw):
    return pipe.generate(4, **kw)[0]


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_same_seed_same_samples(pipe, sampler):
    kw = dict(seed=3, label=1, sampler=sampler, eta=1.0)
    assert torch.equal(final(pipe, **kw), final(pipe, **kw))
    assert not torch.equal(final(pipe, **kw), final(pipe, **{**kw, "seed": 4}))


def test_interleaved_runs_equal_sequential_runs(pipe):
    kw = dict(label="all", sampler="ddim", steps=10, eta=0.5)
    a_alone, b_alone = [o.x_t for o in pipe.run(4, seed=1, **kw)], [o.x_t for o in pipe.run(4, seed=2, **kw)]
    ga, gb = pipe.run(4, seed=1, **kw), pipe.run(4, seed=2, **kw)
    for (xa, xb), oa, ob in zip(zip(a_alone, b_alone), ga, gb, strict=True):
        assert torch.equal(oa.x_t, xa) and torch.equal(ob.x_t, xb)


def test_run_yields_every_step_and_can_stop_early(pipe):
    steps = list(pipe.run(2, seed=0, sampler="ddim", steps=7))
    assert [o.index for o in steps] == list(range(7)) and steps[-1].t == -1
    assert torch.equal(steps[-1].x_t, steps[-1].x0_pred)  # DDIM's last step lands on x0_pred
    assert steps[-1].x0_pred.abs().max() <= 1  # clipped for images
    gen = pipe.run(2, seed=0, sampler="ddim", steps=7)
    next(gen)
    gen.close()  # early stop: no error, nothing left running


def test_labels(pipe):
    assert pipe.labels_for(6, "all").tolist() == [0, 0, 1, 1, 2, 2]
    assert pipe.labels_for(2, 2).tolist() == [2, 2]
    for bad in (3, -1, "7"):
        with pytest.raises(ValueError, match="label"):
            pipe.labels_for(2, bad)


@pytest.mark.parametrize("bad", [dict(guidance=-1), dict(guidance=11), dict(eta=2.0), dict(steps=101),
                                 dict(sampler="euler")])
def test_bad_settings_raise_value_error(pipe, bad):
    with pytest.raises(ValueError):
        final(pipe, seed=0, **bad)


def test_sdedit_starts_from_the_noised_drawing(pipe):
    x0 = torch.ones(1, 8, 8)
    small = list(pipe.run(2, seed=0, x0=x0, t_start=5, sampler="ddim", steps=3))
    assert len(small) == 3
    # at t_start = 5 of 100 the drawing is barely noised, so the result stays close to it
    assert (small[-1].x_t - 1).abs().mean() < 0.3


def test_checkpoint_round_trip_and_mismatch(tmp_path, pipe):
    save_checkpoint(tmp_path / "ok", pipe.model.state_dict(), checkpoint_config(CONFIG, INFO))
    loaded = Pipeline.load(str(tmp_path / "ok"), device=torch.device("cpu"))
    assert torch.equal(final(loaded, seed=5, label=0), final(pipe, seed=5, label=0))
    bigger = UNetConfig(**{**CONFIG.__dict__, "base_channels": 16})
    save_checkpoint(tmp_path / "bad", pipe.model.state_dict(), checkpoint_config(bigger, INFO))
    with pytest.raises(CheckpointError, match="model.safetensors does not match its config.json"):
        Pipeline.load(str(tmp_path / "bad"))


def test_guidance_interval_default_from_config_and_override(pipe):
    interval = SamplingDefaults(**{**INFO.sampling.__dict__, "guidance_interval": [20, 80]})  # JSON gives a list
    assert interval.guidance_interval == (20, 80)
    windowed = Pipeline(pipe.model, ModelInfo(**{**INFO.__dict__, "sampling": interval}), device=torch.device("cpu"))
    kw = dict(seed=5, label="all", sampler="ddim", steps=10)
    assert torch.equal(final(windowed, **kw), final(pipe, **kw, guidance_interval=(20, 80)))
    assert torch.equal(final(windowed, **kw, guidance_interval=(-1, 99)), final(pipe, **kw))  # every step
    assert not torch.equal(final(windowed, **kw), final(pipe, **kw))


def test_a_correction_sees_the_guided_eps_and_the_labels_and_leaves_the_pipeline_as_it_was(pipe):
    seen = []

    def halve(fn, labels):
        seen.append(labels)
        return lambda x_t, t: fn(x_t, t) / 2

    kw = dict(seed=6, label="all", sampler="ddim", steps=5, eta=0.0)
    corrected = pipe.with_correction(halve)
    x_t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 60)
    torch.testing.assert_close(corrected.eps_fn(pipe.labels_for(4, "all"), 2.0)(x_t, t),
                               pipe.eps_fn(pipe.labels_for(4, "all"), 2.0)(x_t, t) / 2)
    assert not torch.equal(final(corrected, **kw), final(pipe, **kw))
    assert torch.equal(seen[-1], pipe.labels_for(4, "all")) and corrected.model is pipe.model
    assert torch.equal(final(pipe, **kw), final(Pipeline(pipe.model, INFO, device=torch.device("cpu")), **kw))


@pytest.mark.parametrize("name", ["spiral", "digits", "fashion", "pokemon"])
def test_a_loaded_checkpoint_quotes_its_cards_measured_quality(name):
    """The page says how good the model is, with the numbers of its own model card (evaluate --write-card)."""
    folder = Path(__file__).resolve().parent.parent / "checkpoints" / name
    config = json.loads((folder / "config.json").read_text())
    measured = Pipeline.load(str(folder)).measured
    values = {"spiral": ("ddpm-1000", "mean_distance", "{:.4f}"), "digits": ("ddim-20 g=2", "fld", "{:.1f}"),
              "fashion": ("ddim-20 g=2", "fld", "{:.1f}"), "pokemon": ("ddim-50 default guidance", "line_copies", "{} of 500")}[name]
    assert values[2].format(config["metrics"][values[0]][values[1]]) in measured, measured


def test_a_checkpoint_without_those_measurements_quotes_none(tmp_path, pipe):
    save_checkpoint(tmp_path / "mine", pipe.model.state_dict(), checkpoint_config(CONFIG, INFO))  # no metrics yet
    assert Pipeline.load(str(tmp_path / "mine")).measured == ""
    config = {**checkpoint_config(CONFIG, INFO), "metrics": {"ddim-20 g=2": {"fld": 3.0}}}  # accuracy missing
    save_checkpoint(tmp_path / "partial", pipe.model.state_dict(), config)
    assert Pipeline.load(str(tmp_path / "partial")).measured == ""
