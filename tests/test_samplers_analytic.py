"""Samplers driven by the exact eps-predictor of Gaussian data must reproduce that data's statistics.

Data at the scale we train on (std 0.5, as images in [-1, 1]) on the cosine schedule: what remains
is the samplers' own discretisation error, which is why DDIM at 50 steps gets a wider tolerance than
DDPM at 1000 (measured: DDIM-50 eta=1 loses ~7 % of the std, eta=0 ~3 %; both vanish as steps grow).
"""
import pytest
import torch

from diffusion_core import make_schedule, sample_final
from tests.analytic import gaussian_eps_fn, mixture_eps_fn

N = 6000
# (sampler, steps, eta, relative tolerance on the std)
RUNS = [("ddpm", None, 0.0, 0.02), ("ddim", 50, 0.0, 0.04), ("ddim", 50, 1.0, 0.09), ("dpm++", 20, 0.0, 0.02)]


@pytest.mark.parametrize("sampler,steps,eta,rel", RUNS)
def test_gaussian_mean_and_std(sampler, steps, eta, rel):
    s = make_schedule("cosine", 1000)
    mu, std = 0.5, 0.5
    g = torch.Generator().manual_seed(0)
    x = sample_final(gaussian_eps_fn(s, mu, std), s, (N, 2), generator=g, sampler=sampler, steps=steps, eta=eta)
    se = std / (2 * N) ** 0.5
    assert abs(x.mean().item() - mu) < 5 * se
    assert x.std().item() == pytest.approx(std, rel=rel)


def test_ddpm_linear_schedule_gaussian():
    s = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x = sample_final(gaussian_eps_fn(s, -0.3, 0.4), s, (N, 2), generator=g, sampler="ddpm")
    assert abs(x.mean().item() + 0.3) < 5 * 0.4 / (2 * N) ** 0.5
    assert x.std().item() == pytest.approx(0.4, rel=0.02)


@pytest.mark.parametrize("sampler,steps,eta,rel", RUNS)
def test_mixture_keeps_both_modes_and_weights(sampler, steps, eta, rel):
    """Two well separated modes with weights 0.3 / 0.7: a collapse or a re-weighting shows at once."""
    s = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(1)
    eps_fn = mixture_eps_fn(s, (0.3, 0.7), (-0.7, 0.6), (0.2, 0.25))
    x = sample_final(eps_fn, s, (N, 1), generator=g, sampler=sampler, steps=steps, eta=eta).squeeze(1)
    left = x < 0
    assert abs(left.float().mean().item() - 0.3) < 4 * (0.3 * 0.7 / N) ** 0.5
    assert x[left].mean().item() == pytest.approx(-0.7, abs=0.04)
    assert x[~left].mean().item() == pytest.approx(0.6, abs=0.03)
    assert x[left].std().item() == pytest.approx(0.2, rel=0.15)
    assert x[~left].std().item() == pytest.approx(0.25, rel=0.15)
