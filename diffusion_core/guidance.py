"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper that turns a model into eps_fn(x_t, t).

eps = eps_uncond + g (eps_cond - eps_uncond), the seed's form: at g = 1 it is eps_cond alone and at
g = 0 eps_uncond alone, so those cases take a single forward pass. For a v-predicting model the same
combination of v outputs gives exactly the guided eps: at fixed x_t, eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v
is affine in v and the combination's weights (1 - g) + g sum to 1. The unconditional ("null") label is
the extra class index `num_classes`.
"""
from __future__ import annotations

import torch
from torch import nn

from .samplers import EpsFn


def guided_eps_fn(model: nn.Module, labels: torch.Tensor | None, g: float, null_label: int | None) -> EpsFn:
    """eps_fn(x_t, t) for `model(x_t, t, labels)` under guidance scale g, one forward pass of a doubled batch."""
    if labels is None or null_label is None:  # an unconditional model: guidance does not apply
        return lambda x_t, t: model(x_t, t)
    if g < 0:
        raise ValueError(f"guidance scale must be >= 0, got {g}")
    null = torch.full_like(labels, null_label)
    if g == 1:
        return lambda x_t, t: model(x_t, t, labels)
    if g == 0:
        return lambda x_t, t: model(x_t, t, null)

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([null, labels]))
        eps_uncond, eps_cond = both.chunk(2)
        return eps_uncond + g * (eps_cond - eps_uncond)

    return eps_fn
