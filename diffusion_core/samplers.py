"""Samplers: one generator loop over pure step functions (DDPM, DDIM, DPM-Solver++(2M); Euler and Heun for flow models).

The loop is: run the model -> (x0_pred, eps) from its output (eps or v) -> step -> yield. Samplers differ only in their plan of
(t, t_prev) pairs and in a pure step function. Notation: see diffusion.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .diffusion import predict_eps, x0_and_eps
from .flow import euler_step, heun_step
from .schedules import Schedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps_fn(x_t, t) -> the model's eps (or v) prediction
SAMPLERS = ("ddpm", "ddim", "dpm++")
FLOW_SAMPLERS = ("euler", "heun")  # a flow model's ODE solvers (flow.py): its output is a velocity
FEW_STEP_SAMPLERS = ("distilled",)  # a distilled student's 1-4 steps (training/distill.py); any v or eps model
MAX_FEW_STEPS = 4


@dataclass(frozen=True)
class StepOutput:
    """One step of a run: x_t now sits at timestep t (t = -1: x_t is the final sample); x0_pred made on the way."""

    index: int  # 0-based step number within the run
    t: int  # timestep of x_t after this step; -1 means fully denoised
    x_t: torch.Tensor
    x0_pred: torch.Tensor


def timestep_plan(sampler: str, T: int, steps: int | None = None, t_start: int | None = None) -> list[tuple[int, int]]:
    """The (t, t_prev) pairs of a run from t_start (default T-1, pure noise) down to t_prev = -1 (clean data).

    DDPM visits every timestep. DDIM and DPM-Solver++ take `steps` evenly spaced timesteps that start at
    t_start, like diffusers' "trailing" spacing (Lin et al. 2023, "Common Diffusion Noise Schedules and
    Sample Steps are Flawed", Table 2): t_i = round((t_start + 1) (1 - i / steps)) - 1. Euler and Heun (flow models)
    take the same spacing, which is s_i = 1 - i / steps in flow time (flow.py) when T is a multiple of steps.
    """
    known = SAMPLERS + FLOW_SAMPLERS + FEW_STEP_SAMPLERS
    if sampler not in known:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {known}")
    t_start = T - 1 if t_start is None else int(t_start)
    if not 0 <= t_start < T:
        raise ValueError(f"t_start must be in [0, {T - 1}], got {t_start}")
    span = t_start + 1
    if sampler == "ddpm" and steps not in (None, span):
        raise ValueError(f"DDPM visits every timestep: steps must be {span}, got {steps} (use DDIM for fewer)")
    if sampler in FEW_STEP_SAMPLERS:  # the trailing plan a distilled student is trained on (training/distill.py)
        steps = MAX_FEW_STEPS if steps is None else int(steps)
        if not 1 <= steps <= MAX_FEW_STEPS:
            raise ValueError(f"the distilled sampler takes 1 to {MAX_FEW_STEPS} steps, got {steps}")
    steps = span if steps is None else int(steps)
    if not 1 <= steps <= span:
        raise ValueError(f"steps must be between 1 and {span} for {sampler}, got {steps}")
    # diffusers' float arange, cut to `steps`: its last stride can overshoot 0 by a rounding error (span 201 in
    # 50 steps gave 51 levels, the last one -1, and NaNs)
    ts = (np.round(np.arange(span, 0, -span / steps)[:steps]).astype(np.int64) - 1).tolist()
    return list(zip(ts, ts[1:] + [-1]))


def repaint_plan(plan: list[tuple[int, int]], resample: int, jump: int) -> list[tuple[int, int]]:
    """A plan with RePaint's resampling jumps (Lugmayr et al. 2022, sec. 4.2 and their code's schedule): after
    arriving at every `jump`-th level from the last noisy one, go back up `jump` levels and denoise again, so that each
    of those stretches is denoised `resample` times. Upward pairs have t_prev > t (samplers.renoise); r = 1: `plan`."""
    if resample < 1 or jump < 1:
        raise ValueError(f"resampling needs r >= 1 and j >= 1, got r = {resample}, j = {jump}")
    levels = [plan[0][0], *(t_prev for _, t_prev in plan)]  # levels[i]: where x is after i steps of `plan`
    n = len(plan)
    jumps = {i: resample - 1 for i in range(n - 1, jump - 1, -jump)}
    path, i = [0], 0
    while i < n:
        i += 1
        path.append(i)
        if jumps.get(i, 0) > 0:
            jumps[i] -= 1
            path += range(i - 1, i - jump - 1, -1)
            i -= jump
    return [(levels[a], levels[b]) for a, b in zip(path, path[1:])]


def renoise(s: Schedule, x_t: torch.Tensor, t: int, t_up: int, noise: torch.Tensor) -> torch.Tensor:
    """Jump back up: x_{t_up} ~ q(x_{t_up} | x_t) = N(sqrt(ab_up / ab_t) x_t, (1 - ab_up / ab_t) I), the forward
    process (Ho et al. 2020, eq. 4) run on from t (Lugmayr et al. 2022, Algorithm 1, line 11, over t_up - t steps)."""
    ratio = (_alpha_bar(s, t_up) / _alpha_bar(s, t)).to(x_t)
    return ratio.sqrt() * x_t + (1 - ratio).sqrt() * noise


@dataclass(frozen=True)
class Known:
    """The known part of x for inpainting: x0 (in the sampler's space) and mask (1 where x0 is known, else 0)."""

    x0: torch.Tensor
    mask: torch.Tensor


def impose_known(s: Schedule, x: torch.Tensor, t_prev: int, known: Known, noise: torch.Tensor | None) -> torch.Tensor:
    """x_{t_prev} = m * x_known + (1 - m) * x with x_known ~ q(x_{t_prev} | x0) (Lugmayr et al. 2022, Algorithm 1,
    lines 5-8; eq. 4 of Ho et al. 2020); at t_prev = -1 the known pixels are x0 exactly."""
    if t_prev < 0 or noise is None:
        x_known = known.x0.to(x)
    else:
        ab = _alpha_bar(s, t_prev).to(x)
        x_known = ab.sqrt() * known.x0.to(x) + (1 - ab).sqrt() * noise
    return torch.where(known.mask.to(x.device).bool(), x_known, x)


def _alpha_bar(s: Schedule, t: int) -> torch.Tensor:
    """alpha_bar_t as a scalar tensor, with alpha_bar_{-1} = 1 (the clean end of every plan)."""
    return s.alpha_bar[t] if t >= 0 else torch.ones((), dtype=s.alpha_bar.dtype)


def ddim_step(
    s: Schedule, x_t: torch.Tensor, t: int, t_prev: int, x0_pred: torch.Tensor, eps: torch.Tensor,
    noise: torch.Tensor | None, eta: float,
) -> torch.Tensor:
    """DDIM update (Song et al. 2021, eq. 12), with sigma_t from eq. 16 scaled by eta."""
    ab_t, ab_prev = _alpha_bar(s, t).to(x_t), _alpha_bar(s, t_prev).to(x_t)
    # 1. sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)   (eq. 16)
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
    # 2. "direction pointing to x_t": sqrt(1 - ab_prev - sigma^2) eps   (eq. 12)
    direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    # 3. x_{t_prev} = sqrt(ab_prev) x0_pred + direction + sigma z   (eq. 12)
    x_prev = ab_prev.sqrt() * x0_pred + direction
    return x_prev if noise is None else x_prev + sigma * noise


def ddpm_step(
    s: Schedule, x_t: torch.Tensor, t: int, t_prev: int, x0_pred: torch.Tensor, eps: torch.Tensor,
    noise: torch.Tensor | None, eta: float,
) -> torch.Tensor:
    """Ancestral step: x_{t-1} ~ q(x_{t-1} | x_t, x0_pred) = N(mu_tilde, beta_tilde) (Ho et al. 2020, eqs. 6-7)."""
    mean = s.posterior_mean_coef1[t].to(x_t) * x0_pred + s.posterior_mean_coef2[t].to(x_t) * x_t
    if noise is None:  # t = 0: the mean is the sample
        return mean
    return mean + s.posterior_variance[t].clamp(min=1e-20).sqrt().to(x_t) * noise


def few_step_step(
    s: Schedule, x_t: torch.Tensor, t: int, t_prev: int, x0_pred: torch.Tensor, eps: torch.Tensor,
    noise: torch.Tensor | None, eta: float,
) -> torch.Tensor:
    """A distilled student's step: x_{t_prev} = alpha_prev x0_pred + sigma_prev (sqrt(1 - eta^2) eps + eta z).
    eta = 0 is the deterministic step progressive distillation trains its student for (Salimans & Ho 2022,
    Algorithm 2: z_t' = alpha_t' x + (sigma_t' / sigma_t)(z_t - alpha_t x), i.e. DDIM with eta = 0); eta = 1 draws the
    noise afresh, the multistep sampling of consistency models (Song et al. 2023, Algorithm 1, line 5)."""
    ab_prev = _alpha_bar(s, t_prev).to(x_t)
    # 1. alpha_{t_prev} = sqrt(ab_prev), sigma_{t_prev} = sqrt(1 - ab_prev); t_prev = -1: sigma = 0, x = x0_pred
    alpha_prev, sigma_prev = ab_prev.sqrt(), (1 - ab_prev).sqrt()
    # 2. the noise direction: the model's eps, with a fraction eta of it replaced by fresh noise z
    direction = eps if noise is None or eta == 0 else (1 - eta**2) ** 0.5 * eps + eta * noise
    # 3. x_{t_prev} = alpha_prev x0_pred + sigma_prev direction   (Algorithm 2 of Salimans & Ho 2022)
    return alpha_prev * x0_pred + sigma_prev * direction


def _lam(s: Schedule, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t, lambda_t) of the VP SDE: alpha_t = sqrt(ab_t), sigma_t = sqrt(1 - ab_t), lambda = log(alpha/sigma)."""
    ab = _alpha_bar(s, t).double()
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    return alpha, sigma, alpha.log() - sigma.log()


def dpmpp_2m_step(
    s: Schedule, x_t: torch.Tensor, t: int, t_prev: int, x0_pred: torch.Tensor,
    prev_t: int | None, prev_x0: torch.Tensor | None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), first order at the first and last steps."""
    if t_prev < 0:  # sigma_{t_prev} = 0: the first-order update lands exactly on x0_pred
        return x0_pred
    alpha_s, sigma_s, lam_s = _lam(s, t)
    alpha_t, sigma_t, lam_t = _lam(s, t_prev)
    h = lam_t - lam_s
    d = x0_pred
    if prev_t is not None and prev_x0 is not None:
        # 1. r = h_{i-1} / h_i; D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}   (Algorithm 2, line 6)
        r = (lam_s - _lam(s, prev_t)[2]) / h
        d = (1 + 1 / (2 * r)).item() * x0_pred - (1 / (2 * r)).item() * prev_x0
    # 2. x_{t_prev} = (sigma_t / sigma_s) x_t - alpha_t (e^{-h} - 1) D   (eq. 10 / Algorithm 2, line 7)
    return (sigma_t / sigma_s).item() * x_t - (alpha_t * torch.expm1(-h)).item() * d


def sample(
    eps_fn: EpsFn, schedule: Schedule, shape: tuple[int, ...], *, generator: torch.Generator,
    sampler: str = "ddim", steps: int | None = None, eta: float = 0.0, clip_x0: bool = False,
    x_T: torch.Tensor | None = None, t_start: int | None = None, prediction: str = "eps",
    known: Known | None = None, resample: tuple[int, int] | None = None,
) -> Iterator[StepOutput]:
    """Run the reverse process from x_T (drawn from `generator` unless given) and yield a StepOutput per step.

    `prediction` says what eps_fn returns: eps, or v for a v-predicting model (diffusion.x0_and_eps), or a flow
    model's velocity (sampler 'euler' or 'heun': flow.py; x0_pred and eps are then the ends of its straight line).
    Close the generator to stop early. `t_start` < T-1 with an `x_T` already noised to t_start gives SDEdit.
    Inpainting (RePaint): `known` is re-imposed at each step's t_prev, and `resample=(r, j)` adds RePaint's jumps
    (repaint_plan; an upward step yields the x0_pred it last made). All randomness comes from `generator`.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 and 1, got {eta}")
    flow = prediction == "flow"
    if flow != (sampler in FLOW_SAMPLERS):
        raise ValueError(f"a model that predicts {prediction} samples with one of "
                         f"{', '.join(FLOW_SAMPLERS if flow else SAMPLERS)}, not {sampler!r}")
    if flow and (known is not None or clip_x0):
        raise ValueError("a flow model samples unclipped and without inpainting")
    plan = timestep_plan(sampler, schedule.T, steps, t_start)
    plan = plan if resample is None else repaint_plan(plan, *resample)
    device = generator.device
    x = torch.randn(shape, generator=generator, device=device) if x_T is None else x_T.to(device)
    stochastic = sampler == "ddpm" or (sampler in ("ddim", "distilled") and eta > 0)
    prev_t, prev_x0, x0_pred = None, None, None  # no x0_pred before the first step
    for index, (t, t_prev) in enumerate(plan):
        if t_prev > t:  # a RePaint jump back up; a multistep solver starts its history afresh
            x = renoise(schedule, x, t, t_prev, torch.randn(shape, generator=generator, device=device))
            prev_t, prev_x0 = None, None
            yield StepOutput(index=index, t=t_prev, x_t=x, x0_pred=x0_pred)
            continue
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        output = eps_fn(x, t_batch)
        x0_pred, eps = x0_and_eps(schedule, x, t_batch, output, prediction)
        if clip_x0:
            x0_pred = x0_pred.clamp(-1, 1)
            eps = predict_eps(schedule, x, t_batch, x0_pred)
        noise = torch.randn(shape, generator=generator, device=device) if stochastic and t_prev >= 0 else None
        if flow:  # the output is the velocity v; Heun calls the model once more, at t_prev
            x = euler_step(x, t, t_prev, output, schedule.T) if sampler == "euler" else heun_step(
                eps_fn, x, t, t_prev, output, schedule.T)
        elif sampler == "dpm++":
            x = dpmpp_2m_step(schedule, x, t, t_prev, x0_pred, prev_t, prev_x0)
        elif sampler == "distilled":
            x = few_step_step(schedule, x, t, t_prev, x0_pred, eps, noise, eta)
        else:
            step = ddpm_step if sampler == "ddpm" else ddim_step
            x = step(schedule, x, t, t_prev, x0_pred, eps, noise, 1.0 if sampler == "ddpm" else eta)
        if known is not None:
            fresh = torch.randn(shape, generator=generator, device=device) if t_prev >= 0 else None
            x = impose_known(schedule, x, t_prev, known, fresh)
        prev_t, prev_x0 = t, x0_pred
        yield StepOutput(index=index, t=t_prev, x_t=x, x0_pred=x0_pred)


def sample_final(eps_fn: EpsFn, schedule: Schedule, shape: tuple[int, ...], **kwargs) -> torch.Tensor:
    """Run `sample` to the end and return only the final x (x_t at t = -1)."""
    out = None
    for out in sample(eps_fn, schedule, shape, **kwargs):
        pass
    return out.x_t
