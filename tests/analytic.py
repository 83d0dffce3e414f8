"""Closed-form eps-predictors for Gaussian and Gaussian-mixture data: the exact E[eps | x_t]."""
from __future__ import annotations

import torch

from diffusion_core.schedules import Schedule


def _coeffs(s: Schedule, t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (t.shape[0],) + (1,) * (ndim - 1)
    return s.sqrt_alpha_bar[t].reshape(shape).double(), s.sqrt_one_minus_alpha_bar[t].reshape(shape).double()


def gaussian_eps_fn(s: Schedule, mu: float, std: float):
    """x0 ~ N(mu, std^2 I): x_t ~ N(a mu, a^2 std^2 + b^2), E[eps | x_t] = b (x_t - a mu) / (a^2 std^2 + b^2)."""
    def eps_fn(x_t, t):
        a, b = _coeffs(s, t, x_t.ndim)
        return (b * (x_t.double() - a * mu) / (a**2 * std**2 + b**2)).to(x_t.dtype)
    return eps_fn


def mixture_eps_fn(s: Schedule, weights, mus, stds):
    """x0 ~ sum_k w_k N(mu_k, std_k^2 I) per coordinate-vector: E[eps | x_t] = sum_k r_k(x_t) b (x_t - a mu_k) / v_k."""
    w, m, sd = (torch.tensor(v, dtype=torch.float64) for v in (weights, mus, stds))

    def eps_fn(x_t, t):
        a, b = _coeffs(s, t, x_t.ndim)
        x = x_t.double().unsqueeze(-1)  # [..., D, 1] against K components
        a, b = a.unsqueeze(-1), b.unsqueeze(-1)
        v = a**2 * sd**2 + b**2
        log_p = (-(x - a * m) ** 2 / (2 * v) - 0.5 * torch.log(v)).sum(dim=-2, keepdim=True) + w.log()
        r = torch.softmax(log_p, dim=-1)
        return (r * b * (x - a * m) / v).sum(-1).to(x_t.dtype)
    return eps_fn


def gaussian_v_fn(s: Schedule, mu: float, std: float):
    """The exact v-predictor for x0 ~ N(mu, std^2 I): E[v | x_t] = a E[eps | x_t] - b E[x0 | x_t], with
    E[x0 | x_t] = mu + a std^2 (x_t - a mu) / (a^2 std^2 + b^2) (no division by a anywhere)."""
    eps_fn = gaussian_eps_fn(s, mu, std)

    def v_fn(x_t, t):
        a, b = _coeffs(s, t, x_t.ndim)
        x0 = mu + a * std**2 * (x_t.double() - a * mu) / (a**2 * std**2 + b**2)
        return (a * eps_fn(x_t, t).double() - b * x0).to(x_t.dtype)
    return v_fn


def ddim_gaussian_law(s: Schedule, plan: list[tuple[int, int]], mu: float, std: float, eta: float
                      ) -> tuple[float, float]:
    """Exact (mean, std) of DDIM's output from x_T ~ N(0, 1) when eps_fn is gaussian_eps_fn(s, mu, std): each step
    (Song et al. 2021, eq. 12, sigma_t from eq. 16 times eta) is x' = A x + B + sigma z with eps = k (x - a mu),
    k = b / (a^2 std^2 + b^2), so mean' = A mean + B and var' = A^2 var + sigma^2."""
    ab = s.alpha_bar.double()
    m, v = 0.0, 1.0
    for t, t_prev in plan:
        a_t, ab_p = ab[t], (ab[t_prev] if t_prev >= 0 else torch.ones((), dtype=torch.float64))
        a, b = a_t.sqrt(), (1 - a_t).sqrt()
        k = b / (a**2 * std**2 + b**2)
        sigma = eta * ((1 - ab_p) / (1 - a_t) * (1 - a_t / ab_p)).sqrt()
        c = (1 - ab_p - sigma**2).clamp(min=0).sqrt()
        A = ab_p.sqrt() * (1 - b * k) / a + c * k  # x0_pred = (x - b eps) / a, direction c eps
        B = (ab_p.sqrt() * b * k - c * k * a) * mu
        m, v = float(A * m + B), float(A**2 * v + sigma**2)
    return m, v ** 0.5
