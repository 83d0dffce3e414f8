"""Samplers driven by the exact eps-predictor of Gaussian data must reproduce that data's statistics.

Data at the scale we train on (std 0.5, as images in [-1, 1]) on the cosine schedule: what remains
is the samplers' own discretisation error. For DDIM that error is known exactly (every step is affine in x_t
plus Gaussian noise: tests.analytic.ddim_gaussian_law): at 50 steps it loses 3.1 % of the std at eta = 0,
3.8 % at eta = 0.5 and 6.5 % at eta = 1, so DDIM is held to its exact law, tightly enough to tell the etas apart.
"""
import pytest
import torch

from diffusion_core import make_schedule, sample_final, timestep_plan
from tests.analytic import ddim_gaussian_law, gaussian_eps_fn, mixture_eps_fn

N = 6000
# (sampler, steps, eta, relative tolerance on the std)
RUNS = [("ddpm", None, 0.0, 0.02), ("ddim", 50, 0.0, 0.04), ("ddim", 50, 1.0, 0.09), ("dpm++", 20, 0.0, 0.02)]


@pytest.mark.parametrize("sampler,steps,eta,rel", [run for run in RUNS if run[0] != "ddim"])
def test_gaussian_mean_and_std(sampler, steps, eta, rel):
    s = make_schedule("cosine", 1000)
    mu, std = 0.5, 0.5
    g = torch.Generator().manual_seed(0)
    x = sample_final(gaussian_eps_fn(s, mu, std), s, (N, 2), generator=g, sampler=sampler, steps=steps, eta=eta)
    se = std / (2 * N) ** 0.5
    assert abs(x.mean().item() - mu) < 5 * se
    assert x.std().item() == pytest.approx(std, rel=rel)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_gaussian_follows_its_exact_law_for_each_eta(eta):
    """400,000 values put the std within 0.11 % (one standard error) of DDIM-50's exact std for this eta; the
    tolerance, 4 standard errors, is under the gap between eta = 0 and 0.5 (0.7 %) and 0.5 and 1 (2.8 %)."""
    s, n = make_schedule("cosine", 1000), 400_000
    mean, std = ddim_gaussian_law(s, timestep_plan("ddim", s.T, 50), 0.5, 0.5, eta)
    g = torch.Generator().manual_seed(0)
    x = sample_final(gaussian_eps_fn(s, 0.5, 0.5), s, (n // 2, 2), generator=g, sampler="ddim", steps=50, eta=eta)
    se = std / n ** 0.5
    assert abs(x.mean().item() - mean) < 4 * se
    assert abs(x.std().item() - std) < 4 * se / 2 ** 0.5  # the standard error of a std is std / sqrt(2 n)


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
