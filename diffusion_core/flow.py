"""Flow matching on straight paths (Lipman et al. 2023, "Flow Matching for Generative Modeling"; rectified flow,
Liu et al. 2023, "Flow Straight and Fast"): the maths the objective 'flow' adds beside diffusion.

Notation (diffusion.py's names where they mean the same thing):
    s         the path's time in [0, 1]: s = 0 is clean data, s = 1 pure noise (the reverse of Lipman et al.'s t)
    x_s       the point on the straight path from x0 to eps: x_s = (1 - s) x0 + s eps
    v         the velocity along it, dx_s/ds = eps - x0, and the model's prediction of it (its output)
    x0_pred   where the straight line through x_s with velocity v lands at s = 0: x_s - s v
A flow model has no alpha_bar schedule. Its times sit on the samplers' grid of timesteps t = 0 .. T-1 with
s = (t + 1) / T, so t = T - 1 is s = 1 (pure noise) and t = -1 is s = 0 (clean data), as for diffusion; the network
sees the integer t like a diffusion model does.
"""
from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # v_fn(x_s, t) -> the predicted velocity


def flow_time(t: torch.Tensor | int, T: int, ndim: int = 1) -> torch.Tensor:
    """s = (t + 1) / T for timesteps t (a batch [N] broadcast to [N, 1, ...] over `ndim` dimensions, or an int)."""
    if isinstance(t, int):
        return torch.tensor((t + 1) / T, dtype=torch.float64)
    return ((t.double() + 1) / T).float().reshape(t.shape[0], *([1] * (ndim - 1)))


def flow_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, T: int) -> torch.Tensor:
    """The straight path (Liu et al. 2023, eq. 1; Lipman et al. 2023, eq. 20 with sigma_min = 0):
    x_s = (1 - s) x0 + s eps."""
    s = flow_time(t, T, x0.ndim).to(x0)
    return (1 - s) * x0 + s * eps


def flow_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The conditional velocity the model regresses on (Lipman et al. 2023, eq. 23; Liu et al. 2023, eq. 1):
    dx_s/ds = eps - x0. Its least-squares solution is the marginal field E[eps - x0 | x_s]."""
    return eps - x0


def flow_x0_and_eps(x_s: torch.Tensor, t: torch.Tensor, v: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_pred, eps) from a velocity: the ends of the straight line through x_s with slope v,
    x0_pred = x_s - s v and eps = x_s + (1 - s) v."""
    s = flow_time(t, T, x_s.ndim).to(x_s)
    return x_s - s * v, x_s + (1 - s) * v


def euler_step(x_s: torch.Tensor, t: int, t_prev: int, v: torch.Tensor, T: int) -> torch.Tensor:
    """One Euler step of the ODE dx/ds = v from s to s_prev (Liu et al. 2023, sec. 2.1): x + (s_prev - s) v."""
    s, s_prev = (t + 1) / T, (t_prev + 1) / T
    return x_s + (s_prev - s) * v


def heun_step(v_fn: VelocityFn, x_s: torch.Tensor, t: int, t_prev: int, v: torch.Tensor, T: int) -> torch.Tensor:
    """Heun's second-order step (Karras et al. 2022, Algorithm 1, lines 5-8): an Euler step to s_prev, the velocity
    there, and the step again with the mean of both velocities; the last step (s_prev = 0) is Euler's."""
    x_euler = euler_step(x_s, t, t_prev, v, T)
    if t_prev < 0:
        return x_euler
    v_prev = v_fn(x_euler, torch.full((x_s.shape[0],), t_prev, dtype=torch.long, device=x_s.device))
    return euler_step(x_s, t, t_prev, 0.5 * (v + v_prev), T)
