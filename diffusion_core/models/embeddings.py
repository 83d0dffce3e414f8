"""Timestep embeddings shared by the models."""
from __future__ import annotations

import math

import torch


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal position embedding of integer timesteps (Vaswani et al. 2017; Ho et al. 2020, App. B): [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return torch.nn.functional.pad(emb, (0, dim % 2))
