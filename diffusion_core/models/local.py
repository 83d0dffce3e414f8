"""A local denoiser: each cell's output sees only the P x P patch of x_t around it, its own position, t and the class.
This is the structure of Kamb and Ganguli's local score machine (2024, "An analytic theory of creativity in
convolutional diffusion models", sec. 3): the best denoiser under a locality constraint is a posterior mean over the
training set's patches, which a network of this shape can learn. One P x P convolution reads the patch; a learnt
embedding of each cell's position makes the map position-aware (their LS machine, not the shift-equivariant ELS);
residual 1 x 1 blocks (an MLP per cell, conditioned on t and the class, each cell normalised on its own) compute the
rest."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .embeddings import time_class_embedding
from .unet import CellNorm, ResBlock


@dataclass(frozen=True)
class LocalConfig:
    """Shape of a LocalDenoiser."""

    in_channels: int = 8  # channels of x_t (a latent's)
    image_size: int = 12  # height = width of x_t
    patch: int = 5  # odd: each output cell sees the patch x patch cells of x_t around it, no more
    channels: int = 256  # width of every per-cell layer
    depth: int = 4  # residual 1 x 1 blocks after the patch reader
    position: bool = True  # a learnt embedding per cell (position-aware); False: shift-equivariant
    num_classes: int = 0  # 0: unconditional; else labels 0..num_classes-1 plus the null label num_classes

    def __post_init__(self) -> None:
        if self.patch < 1 or self.patch % 2 == 0:
            raise ValueError(f"patch must be a positive odd number of cells, got {self.patch}")


class LocalDenoiser(nn.Module):
    """eps_theta(x_t, t[, label]) (or v) with a receptive field of exactly config.patch cells."""

    def __init__(self, config: LocalConfig):
        super().__init__()
        self.config = c = config
        emb_dim = c.channels
        self.time_mlp = nn.Sequential(nn.Linear(c.channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        self.read = nn.Conv2d(c.in_channels, c.channels, c.patch, padding=c.patch // 2)
        size = (c.channels, c.image_size, c.image_size)
        self.position = nn.Parameter(torch.randn(size) * 0.02) if c.position else None
        self.blocks = nn.ModuleList(ResBlock(c.channels, c.channels, emb_dim, 0, kernel=1)
                                    for _ in range(c.depth))
        self.out = nn.Sequential(CellNorm(c.channels), nn.SiLU(), nn.Conv2d(c.channels, c.in_channels, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output for x_t [N, C, H, W] at integer timesteps t [N] (labels as the UNet takes them)."""
        emb = time_class_embedding(self.time_mlp, self.label_emb, t, labels, self.config.channels)
        h = self.read(x_t)
        if self.position is not None:
            h = h + self.position
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)
