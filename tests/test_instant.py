"""Instant mode's one-call grid (playground/instant.py) on a tiny distilled-style checkpoint: checked settings, g held to the
distilled range, the same samples for the same settings; and the shipped student of each step count."""
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.playground.instant import STUDENTS, instant_grid, student_name
from diffusion_core.models import UNet, UNetConfig
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, image_size=28, base_channels=8, channel_mults=(1, 2), groups=4,
                            num_classes=10, guidance_embedding=True))
    info = ModelInfo("digits", (1, 28, 28), tuple("0123456789"), DiffusionConfig(prediction="v"),
                     SamplingDefaults(sampler="distilled", steps=2, guidance=2.0))
    return Pipeline(model, info, device=torch.device("cpu"))


def test_a_grid_and_its_status(pipe):
    grid, status = instant_grid(pipe, "digits", 2.0, "all", 0, 1)
    assert grid.ndim == 3 and grid.dtype == np.uint8
    assert status.startswith("Instant: 2 distilled steps at g = 2 in ") and "of 10 samples" in status
    again, _ = instant_grid(pipe, "digits", 2.0, "all", 0, 1)
    assert np.array_equal(grid, again)


def test_g_above_the_distilled_range_is_held_and_said(pipe):
    _, status = instant_grid(pipe, "digits", 9.0, "3", 1, 2)
    assert "g = 4 (held at 4" in status


@pytest.mark.parametrize("bad", [dict(guidance=-1), dict(seed=-3), dict(label="eleven"), dict(per_label=0)])
def test_bad_settings_raise_value_error(pipe, bad):
    kw = dict(guidance=2.0, label="all", seed=0, per_label=1) | bad
    with pytest.raises(ValueError):
        instant_grid(pipe, "digits", **kw)


def test_the_grid_is_held_to_instant_max_and_the_status_says_so(pipe):
    """The tab's default 4 per label would be 40 digits, too many to redraw while a slider moves: 1 per label."""
    grid, status = instant_grid(pipe, "digits", 2.0, "all", 0, 4)
    one_each, _ = instant_grid(pipe, "digits", 2.0, "all", 0, 1)
    assert np.array_equal(grid, one_each)
    assert "10 of the 40 asked" in status and "of 10 samples" in status
    sixteen, status = instant_grid(pipe, "digits", 2.0, "7", 0, 20)
    assert "16 of the 20 asked" in status
    _, status = instant_grid(pipe, "digits", 2.0, "7", 0, 16)
    assert "Generate draws them all" not in status


@pytest.mark.parametrize("tab, steps", [(tab, n) for tab, students in STUDENTS.items() for n in students])
def test_each_instant_step_count_has_a_shipped_student_that_samples_in_those_steps(tab, steps):
    """Instant's step choices load their shipped students (digits: checkpoints/digits_fast, _2, _1; fashion:
    fashion_fast, _2): each a g-embedding student of its tab's data, sampled by the distilled sampler at its own
    steps, one forward pass of the batch per step."""
    torch.set_num_threads(1)
    pipe = Pipeline.load(Path(__file__).resolve().parent.parent / "checkpoints" / student_name(tab, steps))
    assert pipe.info.dataset == tab and pipe.model.config.guidance_embedding
    assert pipe.info.sampling.sampler == "distilled" and pipe.info.sampling.steps == steps
    calls = []
    pipe.model.register_forward_hook(lambda *_: calls.append(1))
    grid, status = instant_grid(pipe, tab, 3.0, "all", 0, 1)
    assert len(calls) == steps and grid.shape[2] == 3
    assert status.startswith(f"Instant: {steps} distilled steps at g = 3 in ")


@pytest.mark.parametrize("tab, bad", [("digits", 3), ("digits", 0), ("digits", 8), ("digits", 2.5), ("digits", "two"),
                                      ("digits", None), ("fashion", 1)])
def test_instant_steps_other_than_the_students_are_refused(tab, bad):
    with pytest.raises(ValueError, match="instant steps"):
        student_name(tab, bad)


@pytest.mark.parametrize("tab", ["spiral", "pokemon"])
def test_tabs_without_students_have_no_instant_mode(tab):
    with pytest.raises(ValueError, match="no distilled model"):
        student_name(tab, 2)
