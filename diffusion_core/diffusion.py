"""Diffusion maths: the forward process, x0 prediction, the posterior and the training loss.

Glossary (used everywhere in this package and in the UI):
    x0        a clean data sample (images in [-1, 1], [N, C, H, W]; points [N, 2])
    x_t       the noisy sample at timestep t: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
    eps       standard Gaussian noise, and the model's prediction of it
    x0_pred   the estimate of x0 from x_t and the model's output
    v         the velocity sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (Salimans & Ho 2022), an alternative target
              (a flow model's v is eps - x0 on straight paths: flow.py)
    SNR_t     the signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t)
    t_prev    the timestep a sampler step moves to (t_prev < t; -1 means "clean data")
    alpha_bar the cumulative product of alpha_t = 1 - beta_t (see schedules.py)
    g         the classifier-free guidance scale (see guidance.py)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .flow import flow_sample, flow_target, flow_x0_and_eps, ot_noise_for
from .schedules import SCHEDULES, Schedule, make_schedule

LOSSES = ("mse", "l1")
PREDICTIONS = ("eps", "v", "flow")  # flow: the velocity on straight paths (flow matching, flow.py)


@dataclass(frozen=True)
class DiffusionConfig:
    """How a model was trained to denoise: its schedule, number of steps, what it predicts and its loss."""

    schedule: str = "cosine"  # 'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)
    T: int = 1000  # number of diffusion steps
    loss: str = "mse"  # 'mse' or 'l1' on the prediction target
    clip_x0: bool = True  # clip x0_pred to [-1, 1] while sampling (images); False for 2D points
    prediction: str = "eps"  # the network's output: 'eps' (Ho et al. 2020), 'v' (Salimans & Ho 2022) or 'flow'
    snr_gamma: float = 0.0  # > 0: Min-SNR-gamma loss weighting (Hang et al. 2023); 0: uniform (L_simple)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: choose one of {SCHEDULES}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}: choose one of {LOSSES}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.prediction!r}: choose one of {PREDICTIONS}")
        if self.snr_gamma < 0:
            raise ValueError(f"snr_gamma must be >= 0 (0 turns the weighting off), got {self.snr_gamma}")
        if self.prediction == "flow" and (self.clip_x0 or self.snr_gamma):
            raise ValueError("a flow model (prediction 'flow') samples unclipped and unweighted: "
                             "set clip_x0 false and snr_gamma 0")

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


def v_target(s: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The velocity (Salimans & Ho 2022, sec. 4): v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0."""
    return extract(s.sqrt_alpha_bar, t, x0.ndim) * eps - extract(s.sqrt_one_minus_alpha_bar, t, x0.ndim) * x0


def x0_and_eps(
    s: Schedule, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor, prediction: str = "eps"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_pred, eps) from the network's output.

    eps-prediction: x0_pred by eq. 15 of Ho et al. 2020, which divides by sqrt(alpha_bar_t) (2.4e-9 squared at the
    cosine schedule's last step). v-prediction (Salimans & Ho 2022, eq. 22 and its eps counterpart) needs no
    division: x0_pred = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v, eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v.
    """
    if prediction == "eps":
        return predict_x0(s, x_t, t, output), output
    if prediction == "flow":
        return flow_x0_and_eps(x_t, t, output, s.T)
    if prediction == "v":
        a, sigma = extract(s.sqrt_alpha_bar, t, x_t.ndim), extract(s.sqrt_one_minus_alpha_bar, t, x_t.ndim)
        return a * x_t - sigma * output, sigma * x_t + a * output
    raise ValueError(f"unknown prediction {prediction!r}: choose one of {PREDICTIONS}")


def snr_weight(s: Schedule, t: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023, eq. 10): min(SNR_t, gamma) on the x0 error, i.e. on the eps error
    min(SNR_t, gamma) / SNR_t and on the v error min(SNR_t, gamma) / (SNR_t + 1), since ||eps err||^2 = SNR ||x0 err||^2
    and ||v err||^2 = (SNR + 1) ||x0 err||^2."""
    snr = s.snr().to(t.device)[t]
    return snr.clamp(max=gamma) / (snr if prediction == "eps" else snr + 1)


def training_loss(
    output: torch.Tensor, target: torch.Tensor, kind: str = "mse", weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The simplified objective L_simple (Ho et al. 2020, eq. 14) on eps or v, MSE or L1, optionally weighted per
    example (`weight`, shape [N])."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}: choose one of {LOSSES}")
    loss_fn = F.mse_loss if kind == "mse" else F.l1_loss
    if weight is None:
        return loss_fn(output, target)
    per_example = loss_fn(output, target, reduction="none").flatten(1).mean(1)
    return (weight * per_example).mean()


def denoising_loss(
    config: DiffusionConfig, s: Schedule, output: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """The training loss `config` describes for a batch noised with (t, eps): target eps or v, optional Min-SNR weights."""
    targets = {"eps": lambda: eps, "v": lambda: v_target(s, x0, t, eps), "flow": lambda: flow_target(x0, eps)}
    target = targets[config.prediction]()
    weight = snr_weight(s, t, config.prediction, config.snr_gamma) if config.snr_gamma > 0 else None
    return training_loss(output, target, config.loss, weight)


def noisy_batch(
    s: Schedule, x0: torch.Tensor, generator: torch.Generator, prediction: str = "eps", coupling: str = "independent"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw t ~ U{0..T-1} and eps ~ N(0, I) for a training batch (Ho et al. 2020, Algorithm 1): (x_t, t, eps);
    a flow model's x_t is on the straight path instead (flow.flow_sample), its eps paired with x0 at random or,
    coupling 'ot', by a minibatch OT plan (flow.ot_noise_for)."""
    t = torch.randint(0, s.T, (x0.shape[0],), generator=generator, device=generator.device).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    if coupling == "ot":
        eps = ot_noise_for(x0, eps, generator)
    x_t = flow_sample(x0, t, eps, s.T) if prediction == "flow" else q_sample(s, x0, t, eps)
    return x_t, t, eps
