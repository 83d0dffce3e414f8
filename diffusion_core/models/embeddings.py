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


def time_class_embedding(time_mlp: torch.nn.Module, label_emb: torch.nn.Embedding | None, t: torch.Tensor,
                         labels: torch.Tensor | None, dim: int) -> torch.Tensor:
    """time_mlp(sinusoidal(t)) plus the class embedding (the null class, the last row, when labels is None); float
    labels [N, classes + 1] are weights that mix the class embeddings (one-hot rows give the integer labels' rows)."""
    emb = time_mlp(sinusoidal_embedding(t, dim))
    if label_emb is not None:
        labels = torch.full_like(t, label_emb.num_embeddings - 1) if labels is None else labels
        emb = emb + (labels @ label_emb.weight if labels.is_floating_point() else label_emb(labels))
    return emb
