"""Pixel-art palettes: a sprite is drawn from a small indexed palette (the pokesprite sprites use a median of 12
colours, flat fills between 1-pixel outlines), so a decoder's output can be snapped to a palette of its own. Each
image's figure (its pixels that are not paper white) gets k colours by Lloyd's k-means in RGB ("Least squares
quantization in PCM", Lloyd 1982), started from k pixels at evenly spaced quantiles of brightness so that the result
is a deterministic function of the image; the near-white pixels become white."""
from __future__ import annotations

import torch
import torch.nn.functional as F

PAPER = 240 / 127.5 - 1  # a pixel whose channels are all >= this (240 of 255) is white paper (sprites.NEAR_WHITE)


def initial_centres(px: torch.Tensor, ink: torch.Tensor, k: int) -> torch.Tensor:
    """[N, k, C] starting colours: the ink pixels at brightness quantiles (i + 1/2) / k of each image."""
    brightness = px.mean(-1).masked_fill(~ink, float("inf"))
    order = brightness.argsort(dim=1)
    count = ink.sum(1, keepdim=True)
    quantiles = (torch.arange(k, device=px.device) + 0.5) / k
    index = (quantiles * count).long().clamp(max=px.shape[1] - 1)
    pick = order.gather(1, index)
    return px.gather(1, pick[..., None].expand(-1, -1, px.shape[-1]))


def lloyd_step(px: torch.Tensor, ink: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """One k-means update: each centre moves to the mean of the ink pixels nearest to it (an empty one stays)."""
    nearest = torch.cdist(px, centres).argmin(-1)
    members = F.one_hot(nearest, centres.shape[1]).to(px.dtype) * ink[..., None]  # [N, HW, k]
    count = members.sum(1)[..., None]
    means = members.transpose(1, 2) @ px / count.clamp(min=1)
    return torch.where(count > 0, means, centres)


@torch.no_grad()
def snap_to_palette(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Images [N, C, H, W] in [-1, 1] with each figure redrawn in k colours of its own and the paper in white."""
    if k < 1:
        raise ValueError(f"a palette needs at least one colour, got k = {k}")
    n, c, h, w = x.shape
    px = x.float().flatten(2).transpose(1, 2).contiguous()  # [N, HW, C]
    ink = px.min(-1).values < PAPER
    centres = initial_centres(px, ink, k)
    for _ in range(iters):
        centres = lloyd_step(px, ink, centres)
    snapped = centres.gather(1, torch.cdist(px, centres).argmin(-1)[..., None].expand(-1, -1, c))
    out = torch.where(ink[..., None], snapped, torch.ones_like(px))
    return out.transpose(1, 2).reshape(n, c, h, w).to(x.dtype)
