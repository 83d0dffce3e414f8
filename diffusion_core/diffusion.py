"""Diffusion maths: the forward process, x0 prediction, the posterior and the training loss.

Glossary (used everywhere in this package and in the UI):
    x0        a clean data sample (images in [-1, 1], [N, C, H, W]; points [N, 2])
    x_t       the noisy sample at timestep t: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
    eps       standard Gaussian noise, and the model's prediction of it
    x0_pred   the estimate of x0 from x_t and a predicted eps
    t_prev    the timestep a sampler step moves to (t_prev < t; -1 means "clean data")
    alpha_bar the cumulative product of alpha_t = 1 - beta_t (see schedules.py)
    g         the classifier-free guidance scale (see guidance.py)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .schedules import SCHEDULES, Schedule, make_schedule

LOSSES = ("mse", "l1")


@dataclass(frozen=True)
class DiffusionConfig:
    """How a model was trained to denoise: its schedule, number of steps and loss."""

    schedule: str = "cosine"  # 'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)
    T: int = 1000  # number of diffusion steps
    loss: str = "mse"  # 'mse' or 'l1' on eps
    clip_x0: bool = True  # clip x0_pred to [-1, 1] while sampling (images); False for 2D points

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: choose one of {SCHEDULES}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}: choose one of {LOSSES}")

    def make_schedule(self) -> Schedule:
        """The Schedule this config describes."""
        return make_schedule(self.schedule, self.T)


def extract(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] reshaped to [N, 1, ..., 1] so it broadcasts over a batch with `ndim` dimensions."""
    out = values.to(t.device)[t]
    return out.reshape(t.shape[0], *([1] * (ndim - 1)))


def q_sample(s: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Forward shortcut q(x_t | x0) (Ho et al. 2020, eq. 4): x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    return extract(s.sqrt_alpha_bar, t, x0.ndim) * x0 + extract(s.sqrt_one_minus_alpha_bar, t, x0.ndim) * eps


def predict_x0(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for x0 (Ho et al. 2020, eq. 15): x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    return (x_t - extract(s.sqrt_one_minus_alpha_bar, t, x_t.ndim) * eps) / extract(s.sqrt_alpha_bar, t, x_t.ndim)


def predict_eps(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for eps: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    return (x_t - extract(s.sqrt_alpha_bar, t, x_t.ndim) * x0) / extract(s.sqrt_one_minus_alpha_bar, t, x_t.ndim)


def q_posterior(
    s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior q(x_{t-1} | x_t, x0) = N(mu_tilde, beta_tilde I) (Ho et al. 2020, eqs. 6-7): (mean, variance, log variance)."""
    n = x_t.ndim
    mean = extract(s.posterior_mean_coef1, t, n) * x0 + extract(s.posterior_mean_coef2, t, n) * x_t
    return mean, extract(s.posterior_variance, t, n), extract(s.posterior_log_variance_clipped, t, n)


def training_loss(
    eps_pred: torch.Tensor, eps: torch.Tensor, kind: str = "mse"
) -> torch.Tensor:
    """The simplified objective L_simple (Ho et al. 2020, eq. 14): || eps - eps_theta(x_t, t) ||, MSE or L1."""
    if kind == "mse":
        return F.mse_loss(eps_pred, eps)
    if kind == "l1":
        return F.l1_loss(eps_pred, eps)
    raise ValueError(f"unknown loss {kind!r}: choose one of {LOSSES}")


def noisy_batch(
    s: Schedule, x0: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw t ~ U{0..T-1} and eps ~ N(0, I) for a training batch (Ho et al. 2020, Algorithm 1): (x_t, t, eps)."""
    t = torch.randint(0, s.T, (x0.shape[0],), generator=generator, device=generator.device).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    return q_sample(s, x0, t, eps), t, eps
