"""Flow matching on straight paths (Lipman et al. 2023, "Flow Matching for Generative Modeling"; rectified flow,
Liu et al. 2023, "Flow Straight and Fast"): the maths the objective 'flow' adds beside diffusion, and the minibatch
OT coupling (Tong et al. 2023; Pooladian et al. 2023) that pairs a batch's noise with its data so that the straight
training paths hardly cross and the sampled paths come out straight too.

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


# ---------------------------------------------------------------- minibatch optimal-transport coupling
COUPLINGS = ("independent", "ot")  # how a training batch pairs noise with data: at random, or by an OT plan
OT_REG = 0.004  # Sinkhorn's final entropic regularisation, relative to cost_scale (the sets' spread)
OT_ANNEAL = 0.1  # the regularisation shrinks by this factor per stage, from cost_scale down to OT_REG times it
OT_ITERS = 10  # Sinkhorn iterations per stage
MIN_LOG_KERNEL = -80.0  # exp(-80) ~ 2e-35: floors the kernel above float32's denormals (slow) and zero (no log 0)


def log_kernel(eps: torch.Tensor, x0: torch.Tensor, f: torch.Tensor, g: torch.Tensor, reg: float) -> torch.Tensor:
    """(f_i + g_j - ||eps_i - x0_j||^2) / reg as one matrix product, (f_i - |eps_i|^2) + (g_j - |x0_j|^2) +
    2 eps_i . x0_j, without a cost matrix."""
    ones_n, ones_m = eps.new_ones(len(eps), 1), x0.new_ones(len(x0), 1)
    rows = torch.cat([2 * eps, (f - eps.square().sum(1))[:, None], ones_n], 1) / reg
    cols = torch.cat([x0, ones_m, (g - x0.square().sum(1))[:, None]], 1)
    return rows @ cols.T


def gibbs_kernel(eps: torch.Tensor, x0: torch.Tensor, f: torch.Tensor, g: torch.Tensor, reg: float) -> torch.Tensor:
    """The stabilised Gibbs kernel exp((f_i + g_j - ||eps_i - x0_j||^2) / reg) (Schmitzer 2019, "Stabilized sparse
    scaling algorithms for entropy regularized transport problems", eq. 3.4), floored at exp(MIN_LOG_KERNEL)."""
    return log_kernel(eps, x0, f, g, reg).clamp_(min=MIN_LOG_KERNEL).exp_()


def sinkhorn_scalings(kernel: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinkhorn's iterations (Cuturi 2013, Algorithm 1) for uniform marginals scaled to rows of sum 1:
    u = 1 / K v, v = (n / m) / K^T u; the last update makes the plan diag(u) K diag(v) have exact column sums."""
    n, m = kernel.shape
    v = kernel.new_ones(m)
    for _ in range(iters):
        u = 1.0 / (kernel @ v)
        v = (n / m) / (kernel.T @ u)
    return u, v


def cost_scale(eps: torch.Tensor, x0: torch.Tensor) -> float:
    """The scale the regularisations are relative to: the mean squared distance between the sets about their means,
    tr Cov(eps) + tr Cov(x0), which a translation of either set (that changes no OT plan) leaves as it is."""
    return float(eps.var(0, unbiased=False).sum() + x0.var(0, unbiased=False).sum())


def sinkhorn_potentials(eps: torch.Tensor, x0: torch.Tensor, reg: float = OT_REG,
                        iters: int = OT_ITERS) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Entropic OT between uniform weights on eps [n, D] and x0 [m, D], squared Euclidean cost (Cuturi 2013), by
    eps-annealed Sinkhorn with the scalings absorbed into log-domain potentials (f, g) after each stage (Schmitzer
    2019, Algorithm 3): (f, g, the final regularisation)."""
    g = x0.new_zeros(len(x0))
    f = -log_kernel(eps, x0, eps.new_zeros(len(eps)), g, 1.0).amax(1)  # min_j cost: each row's largest entry is 1
    reg_now, reg_final = cost_scale(eps, x0), reg * cost_scale(eps, x0)
    while reg_now > reg_final:
        reg_now = max(reg_now * OT_ANNEAL, reg_final)
        u, v = sinkhorn_scalings(gibbs_kernel(eps, x0, f, g, reg_now), iters)
        f, g = f + reg_now * u.log(), g + reg_now * v.log()
    return f, g, reg_now


def ot_noise_for(x0: torch.Tensor, eps: torch.Tensor, generator: torch.Generator | None = None,
                 reg: float = OT_REG) -> torch.Tensor:
    """Minibatch OT coupling (Tong et al. 2023, "Improving and generalizing flow-based generative models with
    minibatch optimal transport", sec. 3.2; Pooladian et al. 2023): eps reordered so that each x0[j] gets a
    partner drawn from column j of the entropic OT plan on squared Euclidean cost ||eps_i - x0_j||^2."""
    e, x = eps.flatten(1).float(), x0.flatten(1).float()
    e, x = e - e.mean(0), x - x.mean(0)  # no plan changes, Sinkhorn converges faster and the exponents stay small
    f, g, reg_final = sinkhorn_potentials(e, x, reg)
    cdf = gibbs_kernel(x, e, g, f, reg_final).cumsum_(1)  # row j: column j of the plan, cumulated
    u = torch.rand((len(x0), 1), generator=generator, device=generator.device if generator else None).to(cdf)
    i = torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(1).clamp_(max=len(eps) - 1)
    return eps[i]
