"""A time-conditioned MLP for 2D points, like the seed's ConditionalChain: the time embedding is added to every hidden layer."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .embeddings import sinusoidal_embedding


@dataclass(frozen=True)
class MLPConfig:
    """Shape of a TimeMLP."""

    data_dim: int = 2  # dimension of a data point
    hidden: int = 128  # width of every hidden layer
    num_layers: int = 4  # number of hidden layers, each with its own projection of the time embedding
    time_dim: int = 64  # size of the sinusoidal timestep embedding
    num_classes: int = 0  # 0: unconditional; else labels 0..num_classes-1 plus the null label num_classes


class TimeMLP(nn.Module):
    """eps_theta(x_t, t[, label]) for points: h_{i+1} = SiLU(W_i h_i + E_i(emb(t)))."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        c = config
        self.time_mlp = nn.Sequential(nn.Linear(c.time_dim, c.hidden), nn.SiLU())
        self.label_emb = nn.Embedding(c.num_classes + 1, c.hidden) if c.num_classes else None
        dims = [c.data_dim] + [c.hidden] * c.num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.time_proj = nn.ModuleList(nn.Linear(c.hidden, c.hidden) for _ in range(c.num_layers))
        self.out = nn.Linear(c.hidden, c.data_dim)
        self.act = nn.SiLU()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output (eps, or v for a v-trained model) for x_t [N, data_dim] at integer timesteps t [N]."""
        emb = self.time_mlp(sinusoidal_embedding(t, self.config.time_dim))
        if self.label_emb is not None:
            labels = torch.full_like(t, self.config.num_classes) if labels is None else labels
            emb = emb + self.label_emb(labels)
        h = x_t
        for layer, proj in zip(self.layers, self.time_proj):
            h = self.act(layer(h) + proj(emb))
        return self.out(h)
