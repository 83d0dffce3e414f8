"""Noise schedules: the precomputed tensors of the forward process q(x_t | x_{t-1}).

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eqs. 2-7):
    beta_t        variance of the noise added at step t
    alpha_t       1 - beta_t
    alpha_bar_t   prod_{s<=t} alpha_s, so that q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)
Timesteps are 0-based, t = 0 ... T-1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Frozen record of every per-timestep coefficient the samplers need (all float32, shape [T])."""

    kind: str
    T: int
    beta: torch.Tensor  # beta_t
    alpha: torch.Tensor  # alpha_t = 1 - beta_t
    alpha_bar: torch.Tensor  # \bar{alpha}_t = prod_{s<=t} alpha_s
    alpha_bar_prev: torch.Tensor  # \bar{alpha}_{t-1}, with \bar{alpha}_{-1} = 1
    sqrt_alpha_bar: torch.Tensor  # sqrt(\bar{alpha}_t): signal scale of x_t
    sqrt_one_minus_alpha_bar: torch.Tensor  # sqrt(1 - \bar{alpha}_t): noise scale of x_t
    posterior_variance: torch.Tensor  # \tilde{beta}_t = beta_t (1 - \bar{alpha}_{t-1}) / (1 - \bar{alpha}_t)   (eq. 7)
    posterior_log_variance_clipped: torch.Tensor  # log \tilde{beta}_t, with \tilde{beta}_0 := \tilde{beta}_1
    posterior_mean_coef1: torch.Tensor  # coefficient of x0 in \tilde{mu}_t: beta_t sqrt(\bar{alpha}_{t-1}) / (1 - \bar{alpha}_t)
    posterior_mean_coef2: torch.Tensor  # coefficient of x_t in \tilde{mu}_t: (1 - \bar{alpha}_{t-1}) sqrt(alpha_t) / (1 - \bar{alpha}_t)

    def to(self, device: torch.device | str) -> "Schedule":
        """The same schedule with every tensor on `device`."""
        fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Schedule(**fields)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021)."""
        return self.alpha_bar / (1 - self.alpha_bar)


def linear_betas(T: int) -> torch.Tensor:
    """Ho et al. 2020: beta from 1e-4 to 0.02 over 1000 steps, rescaled by 1000/T for other T."""
    scale = 1000.0 / T
    return torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2), betas clipped at 0.999."""
    f = lambda i: math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def make_schedule(kind: str = "cosine", T: int = 1000) -> Schedule:
    """Precompute the schedule `kind` ('linear' or 'cosine') with T steps, in float64 then stored as float32."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}: choose one of {SCHEDULES}")
    if T < 2:
        raise ValueError(f"T must be at least 2, got {T}")
    beta = linear_betas(T) if kind == "linear" else cosine_betas(T)
    alpha = 1 - beta
    alpha_bar = torch.cumprod(alpha, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    posterior_variance = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
    clipped = torch.cat([posterior_variance[1:2], posterior_variance[1:]])
    tensors = dict(
        beta=beta,
        alpha=alpha,
        alpha_bar=alpha_bar,
        alpha_bar_prev=alpha_bar_prev,
        sqrt_alpha_bar=alpha_bar.sqrt(),
        sqrt_one_minus_alpha_bar=(1 - alpha_bar).sqrt(),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=clipped.log(),
        posterior_mean_coef1=beta * alpha_bar_prev.sqrt() / (1 - alpha_bar),
        posterior_mean_coef2=(1 - alpha_bar_prev) * alpha.sqrt() / (1 - alpha_bar),
    )
    return Schedule(kind=kind, T=T, **{k: v.float() for k, v in tensors.items()})
