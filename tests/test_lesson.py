"""How it works: one call of a network, checked against the exact denoiser of Gaussian data, whose x0_pred is the
posterior mean E[x0 | x_t] in closed form; and the forward process and the one step share their noise."""
import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.pipeline import ModelInfo, Pipeline
from diffusion_core.playground import lesson, lesson_viz
from tests.analytic import gaussian_eps_fn, gaussian_v_fn

MU, STD = 0.3, 0.5


class Exact(nn.Module):
    """A 'network' that is the exact E[eps | x_t] (or E[v | x_t]) of x0 ~ N(MU, STD^2 I)."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.dummy = fn, nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, labels=None):
        return self.fn(x_t, t)


def exact_pipeline(prediction: str, schedule: str = "cosine") -> Pipeline:
    diffusion = DiffusionConfig(schedule=schedule, prediction=prediction, clip_x0=False)
    s = diffusion.make_schedule()
    fn = {"eps": gaussian_eps_fn, "v": gaussian_v_fn}[prediction](s, MU, STD)
    return Pipeline(Exact(fn), ModelInfo("spiral", (2,), diffusion=diffusion), device=torch.device("cpu"))


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("t", [0, 300, 999])
def test_one_step_x0_pred_is_the_posterior_mean(prediction, t):
    pipe = exact_pipeline(prediction)
    x0 = MU + STD * torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    out = lesson.one_step(pipe, x0, t)
    a, b = float(pipe.schedule.sqrt_alpha_bar[t]), float(pipe.schedule.sqrt_one_minus_alpha_bar[t])
    posterior_mean = MU + a * STD**2 * (out.x_t.double() - a * MU) / (a**2 * STD**2 + b**2)
    assert torch.allclose(out.x0_pred.double(), posterior_mean, atol=1e-3)  # eps at t = 999: float32 / 5e-5
    assert torch.equal(out.eps, lesson.example_noise(x0))  # the forward section's eps
    assert torch.allclose(out.x_t, a * x0 + b * out.eps, atol=1e-6)
    # the RMS error of the posterior mean: sqrt(posterior variance) = STD b / sqrt(a^2 STD^2 + b^2)
    assert out.x0_error == pytest.approx(STD * b / (a**2 * STD**2 + b**2) ** 0.5, rel=0.05, abs=1e-4)


def test_error_curve_is_the_posterior_spread_at_every_t():
    pipe = exact_pipeline("v")
    x0 = MU + STD * torch.randn(4000, 2, generator=torch.Generator().manual_seed(2))
    curve = lesson.error_curve(pipe, x0, num=9)
    assert curve["t"].tolist() == [0, 125, 250, 375, 500, 624, 749, 874, 999]
    s = pipe.schedule
    a, b = s.sqrt_alpha_bar[curve["t"]].numpy(), s.sqrt_one_minus_alpha_bar[curve["t"]].numpy()
    np.testing.assert_allclose(curve["x0_error"], STD * b / np.sqrt(a**2 * STD**2 + b**2), rtol=0.05, atol=1e-4)
    assert (curve["x0_error"] <= curve["x_t_error"]).all()  # the posterior mean beats the input at every t


def test_at_the_last_step_x0_pred_is_the_average_of_the_data():
    out = lesson.one_step(exact_pipeline("v"), torch.full((500, 2), 1.0), 999)
    assert torch.allclose(out.x0_pred, torch.full_like(out.x0_pred, MU), atol=1e-3)  # x0 = 1 is forgotten
    assert out.x0_error == pytest.approx(1.0 - MU, abs=1e-3) and out.eps_error < 1e-3


class ExactPerLabel(nn.Module):
    """The exact v-predictor of class k's data N(MEANS[k], STD^2 I); the null label (2) gets N(MEANS[2], ...)."""

    def __init__(self, s):
        super().__init__()
        self.fns, self.dummy = [gaussian_v_fn(s, m, STD) for m in MEANS], nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, labels):
        return torch.stack([self.fns[int(k)](x[None], tk[None])[0] for x, tk, k in zip(x_t, t, labels)])


MEANS = (-0.6, 0.6, 0.1)


@pytest.mark.parametrize("label, g, expected", [
    (None, 1.0, MEANS[2]), ("none", 3.0, MEANS[2]), ("a", 1.0, MEANS[0]), ("b", 1.0, MEANS[1]),
    ("b", 0.0, MEANS[2]), ("a", 2.0, MEANS[2] + 2 * (MEANS[0] - MEANS[2])),  # eps_null + g (eps_a - eps_null)
])
def test_one_step_with_a_label_follows_classifier_free_guidance(label, g, expected):
    diffusion = DiffusionConfig(prediction="v", clip_x0=False)
    pipe = Pipeline(ExactPerLabel(diffusion.make_schedule()), ModelInfo("spiral", (2,), ("a", "b"), diffusion),
                    device=torch.device("cpu"))
    out = lesson.one_step(pipe, torch.zeros(6, 2), 999, label=label, guidance=g)  # x_t is noise: x0_pred = the mean
    assert torch.allclose(out.x0_pred, torch.full_like(out.x0_pred, expected), atol=1e-3)


def test_one_step_refuses_a_bad_label():
    pipe = exact_pipeline("eps")
    with pytest.raises(ValueError, match="takes no label"):
        lesson.one_step(pipe, torch.zeros(3, 2), 10, label="3")
    labelled = Pipeline(Exact(lambda x_t, t: x_t), ModelInfo("spiral", (2,), ("a", "b")), device=torch.device("cpu"))
    for bad, message in (("c", "label must be"), ("all", "one label")):
        with pytest.raises(ValueError, match=message):
            lesson.one_step(labelled, torch.zeros(3, 2), 10, label=bad)
    with pytest.raises(ValueError, match="guidance must be between"):
        lesson.one_step(labelled, torch.zeros(3, 2), 10, label="a", guidance=11)


def test_one_step_refuses_a_bad_t_or_shape():
    pipe = exact_pipeline("eps", "linear")
    with pytest.raises(ValueError, match="t must be between 0 and 999"):
        lesson.one_step(pipe, torch.zeros(3, 2), 1000)
    with pytest.raises(ValueError, match="takes"):
        lesson.one_step(pipe, torch.zeros(1, 1, 28, 28), 10)


def test_x0_pred_picture_draws_where_the_network_pulls_each_point():
    pic = lesson_viz.x0_pred_picture(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]))
    assert pic.shape == (280, 280, 3) and tuple(pic[140, 140]) == (214, 39, 40)  # x0_pred, in red, at the centre
    assert tuple(pic[140, 187]) == (240, 170, 170)  # half way along the line to x_t = (2, 0)
    image = torch.rand(1, 1, 28, 28) * 2 - 1
    np.testing.assert_array_equal(lesson_viz.x0_pred_picture(image, image), lesson_viz.forward_picture(image))
