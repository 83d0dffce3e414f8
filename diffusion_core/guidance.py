"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper that turns a model into eps_fn(x_t, t).

eps = eps_uncond + g (eps_cond - eps_uncond), the seed's form: at g = 1 it is eps_cond alone and at
g = 0 eps_uncond alone, so those cases take a single forward pass. For a v-predicting model the same
combination of v outputs gives exactly the guided eps: at fixed x_t, eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v
is affine in v and the combination's weights (1 - g) + g sum to 1. The unconditional ("null") label is
the extra class index `num_classes`.

Guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
distribution quality in diffusion models"): with `interval=(t_lo, t_hi)` and g > 1 the guided combination is used
only at steps with t_lo < t <= t_hi, and the conditional prediction alone (g = 1, one forward pass) elsewhere;
g <= 1 (towards the unconditional model, g = 0 ignoring the label) stays the same at every step. Guidance at
the highest noise levels is what costs diversity; EDM2's sigma interval (0.28, 5.42] is t in (166, 881] on the
cosine schedule (`interval_from_sigma(schedule, *EDM2_SIGMA)`); (-1, T - 1] guides every step.

Discriminator guidance (Kim et al. 2023, "Refining Generative Process with Discriminator Guidance in Score-based
Diffusion Models", eq. 8): a critic d(x_t, t) trained to tell noised data from noised samples of the model estimates
the density ratio p_data / p_model at every noise level, so the model's score plus w grad log(d / (1 - d)) is the data's
score (w = 1) where the critic is right; `discriminator_eps_fn` adds that term to any eps_fn.

Anti-memorisation guidance (Chen et al. 2024, "Towards Memorization-Free Diffusion Models", sec. 4.3): while
sampling, compare the model's x0_pred with its nearest training example and, where they are too alike, steer x0_pred
away from it. `repel_eps_fn` does so without a gradient through the model: x0_pred closer than `radius` (RMS over
its numbers) to its nearest example is moved along the line from that example out to the radius, and the eps (or v)
that gives the moved x0_pred at the same x_t replaces the model's (Ho et al. 2020, eq. 4 solved for eps).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .diffusion import extract, predict_eps, v_target, x0_and_eps
from .samplers import EpsFn
from .schedules import Schedule

EDM2_SIGMA = (0.28, 5.42)  # Kynkäänniemi et al. 2024's guidance interval for EDM2-S, in Karras et al.'s sigma


def guided_eps_fn(model: nn.Module, labels: torch.Tensor | None, g: float, null_label: int | None,
                  interval: tuple[int, int] | None = None) -> EpsFn:
    """eps_fn(x_t, t) for `model(x_t, t, labels)` under guidance scale g, one forward pass of a doubled batch;
    with `interval=(t_lo, t_hi)` and g > 1, guided only where t_lo < t <= t_hi and conditional (g = 1) elsewhere."""
    t_lo, t_hi = check_interval(interval) if interval is not None else (None, None)
    if getattr(getattr(model, "config", None), "guidance_embedding", False):  # g is the model's input: one pass
        return distilled_eps_fn(model, labels, g)
    if labels is None or null_label is None:  # an unconditional model: guidance does not apply
        return lambda x_t, t: model(x_t, t)
    if g < 0:
        raise ValueError(f"guidance scale must be >= 0, got {g}")
    if interval is not None and g > 1:  # g <= 1 only blends towards the unconditional model: every step
        guided, cond = guided_eps_fn(model, labels, g, null_label), guided_eps_fn(model, labels, 1.0, null_label)
        return lambda x_t, t: guided(x_t, t) if t_lo < int(t.max()) <= t_hi else cond(x_t, t)
    null = torch.full_like(labels, null_label)
    if labels.is_floating_point():  # class-embedding weights (UNet.embed): the null label as a one-hot row
        null = torch.nn.functional.one_hot(null[:, 0].long(), labels.shape[1]).to(labels)
    if g == 1:
        return lambda x_t, t: model(x_t, t, labels)
    if g == 0:
        return lambda x_t, t: model(x_t, t, null)

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([null, labels]))
        eps_uncond, eps_cond = both.chunk(2)
        return eps_uncond + g * (eps_cond - eps_uncond)

    return eps_fn


def distilled_eps_fn(model: nn.Module, labels: torch.Tensor | None, g: float) -> EpsFn:
    """eps_fn for a guidance-distilled model (Meng et al. 2023, eq. 6): one pass, g an input. Its training already
    folded the teacher's guidance interval into what g means, so no interval applies here."""
    if g < 0:
        raise ValueError(f"guidance scale must be >= 0, got {g}")
    return lambda x_t, t: model(x_t, t, labels, torch.full(t.shape, float(g), device=t.device))


def check_interval(interval: tuple[int, int]) -> tuple[int, int]:
    """(t_lo, t_hi) as integers, or ValueError unless -1 <= t_lo < t_hi."""
    t_lo, t_hi = (int(v) for v in interval)
    if not -1 <= t_lo < t_hi:
        raise ValueError(f"guidance interval (t_lo, t_hi] needs -1 <= t_lo < t_hi, got {tuple(interval)}")
    return t_lo, t_hi


def describe_interval(interval: tuple[int, int]) -> str:
    """The steps an interval guides, as a person reads it: "t ≤ 600", "166 < t ≤ 881"."""
    t_lo, t_hi = check_interval(interval)
    return f"{'' if t_lo < 0 else f'{t_lo} < '}t ≤ {t_hi}"


def interval_from_sigma(schedule, sigma_lo: float, sigma_hi: float) -> tuple[int, int]:
    """The timestep interval (t_lo, t_hi] whose noise-to-signal ratio sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)
    lies in (sigma_lo, sigma_hi] (Karras et al. 2022's sigma of a VP schedule)."""
    sigma = schedule.snr().rsqrt()
    inside = ((sigma > sigma_lo) & (sigma <= sigma_hi)).nonzero().flatten()
    if len(inside) == 0:
        raise ValueError(f"no timestep has sigma in ({sigma_lo}, {sigma_hi}]")
    return int(inside.min()) - 1, int(inside.max())


LogitFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # logit_fn(x_t, t) -> log(d / (1 - d)) [N]


def discriminator_eps_fn(eps_fn: EpsFn, logit_fn: LogitFn, schedule: Schedule, weight: float,
                         prediction: str = "eps", interval: tuple[int, int] | None = None) -> EpsFn:
    """eps_fn corrected by a critic's density ratio (Kim et al. 2023, eq. 8): the score -eps / sqrt(1 - alpha_bar_t)
    gains w grad_x log(d / (1 - d)), so eps gains -w sqrt(1 - alpha_bar_t) grad; a v-predicting model's output gains
    that divided by sqrt(alpha_bar_t) (eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v at fixed x_t). With
    `interval=(t_lo, t_hi)` only steps with t_lo < t <= t_hi are corrected (at the last noise levels of a cosine
    schedule sqrt(alpha_bar_t) is ~0, where a v model's correction would be unbounded)."""
    if prediction not in ("eps", "v"):
        raise ValueError(f"discriminator guidance needs an eps or v model, got prediction {prediction!r}")
    t_lo, t_hi = check_interval(interval) if interval is not None else (-1, schedule.T - 1)

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = eps_fn(x_t, t)
        if weight == 0 or not t_lo < int(t.max()) <= t_hi:
            return out
        with torch.inference_mode(False), torch.enable_grad():
            x = x_t.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(logit_fn(x, t).sum(), x)
        delta = -weight * extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.ndim) * grad
        return out + (delta if prediction == "eps" else delta / extract(schedule.sqrt_alpha_bar, t, x_t.ndim))

    return fn


def push_out(x0: torch.Tensor, bank: torch.Tensor, radius: float, rounds: int = 3) -> torch.Tensor:
    """x0 [N, ...] with each row that lies within RMS distance `radius` of its nearest row of `bank` [M, ...] moved
    along the line from that row out to the radius; repeated `rounds` times, as a move can bring a row near another
    example. A row equal to an example has no line to move along and stays."""
    z = x0.flatten(1).clone()
    flat, scale = bank.flatten(1).to(z), z.shape[1] ** 0.5
    for _ in range(rounds):
        dist, idx = torch.cdist(z, flat).min(1)
        rms = dist / scale
        near = (rms < radius) & (rms > 0)
        if not near.any():
            break
        anchor = flat[idx[near]]
        z[near] = anchor + (z[near] - anchor) * (radius / rms[near])[:, None]
    return z.view_as(x0)


def repel_eps_fn(eps_fn: EpsFn, bank: torch.Tensor, schedule: Schedule, radius: float,
                 prediction: str = "eps") -> EpsFn:
    """eps_fn whose x0_pred keeps RMS distance >= radius from every example of `bank` (`push_out`; anti-memorisation
    guidance, Chen et al. 2024): the output is the eps, or for a v model the v, that gives the moved x0_pred at the
    same x_t; unchanged where x0_pred is far enough already."""
    if prediction not in ("eps", "v"):
        raise ValueError(f"anti-memorisation guidance needs an eps or v model, got prediction {prediction!r}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = eps_fn(x_t, t)
        x0, _ = x0_and_eps(schedule, x_t, t, out, prediction)
        moved = push_out(x0, bank, radius)
        if torch.equal(moved, x0):
            return out
        eps = predict_eps(schedule, x_t, t, moved)
        return eps if prediction == "eps" else v_target(schedule, moved, t, eps)

    return fn
