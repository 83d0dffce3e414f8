"""Does conditioning on shape draw creatures? Cluster the sprites by shape and give the latent denoiser the cluster
as its class: this writes the data cache such a run reads, the cached sprites with their colour-class labels
replaced by shape clusters.

    .venv/bin/python -m benchmarks.pokemon_shape_clusters --clusters 10 --out runs/shape10_cache
    DIFFUSION_CORE_CACHE=runs/shape10_cache .venv/bin/python -m diffusion_core.train --dataset pokemon \\
        --stage latent --config configs/pokemon_latent_shapes.json --out runs/shape10 \\
        --init-from checkpoints/pokemon_latent --threads 2

Why: an unconditional (or weakly conditioned) model that cannot hold its data draws what its modes have in common,
and conditioning on k-means clusters of the data's own features recovers much of what a labelled model draws
(Bao et al. 2022, "Why Are Conditional Generative Models Better Than Unconditional Ones?"; Hu et al. 2023,
"Self-Guided Diffusion Models"). The sprites' only class is their colour, which says nothing of the shape; the
latent model draws blobs in the asked colour. A shape cluster is a class that does, and guidance on it pushes each
sample away from the average figure towards its cluster's. The probe keeps the ten class slots of the colour
classes (so every command and file works unchanged; the slot names are the colours', their meaning the clusters'),
so `--clusters` is at most 10.

A sprite's shape features: its figure mask (`sprites.foreground`) and its dark pixels (`sprites.dark_pixels`: the
outline, inner lines, eyes), each averaged over 4 x 4 pixel cells (the latent's 12 x 12 grid), 288 numbers; the
clusters are Lloyd's k-means on them from k sprites drawn with the seed (`palette.lloyd_step`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diffusion_core.data.datasets import COLOUR_CLASSES
from diffusion_core.data.sprites import dark_pixels, foreground
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.models.palette import lloyd_step

from .pokemon_subset import read_cache, write_cache


def shape_features(images: np.ndarray, cell: int = 4) -> torch.Tensor:
    """[N, 2 * (H / cell) * (W / cell)] features of uint8 sprites [N, H, W, 3]: figure and dark-pixel fractions per
    cell x cell block."""
    maps = torch.from_numpy(np.stack([foreground(images), dark_pixels(images)], axis=1).astype(np.float32))
    return F.avg_pool2d(maps, cell).flatten(1)


def kmeans(x: torch.Tensor, k: int, seed: int, iters: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels [N], centres [k, D]) of Lloyd's k-means on points x [N, D], started from k points drawn with seed
    (a local minimum: other seeds give other clusters of about the same spread); the labels are renumbered by cluster
    size, largest first."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)}, got {k}")
    start = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:k]
    centres, ink = x[start][None], torch.ones(1, len(x), dtype=torch.bool)
    for _ in range(iters):
        centres = lloyd_step(x[None], ink, centres)
    labels = torch.cdist(x, centres[0]).argmin(1)
    order = torch.bincount(labels, minlength=k).argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    return rank[labels], centres[0][order]


def members_picture(images: np.ndarray, labels: torch.Tensor, per_row: int, seed: int) -> np.ndarray:
    """One row per cluster: `per_row` of its sprites drawn with seed (fewer where the cluster is smaller)."""
    gen, rows = torch.Generator().manual_seed(seed), []
    for k in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == k).flatten()
        pick = members[torch.randperm(len(members), generator=gen)[:per_row]].numpy()
        row = np.full((per_row, *images.shape[1:]), 255, dtype=np.uint8)
        row[:len(pick)] = images[pick]
        rows.append(row)
    return image_grid(np.concatenate(rows), nrow=per_row, scale=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clusters", type=int, default=len(COLOUR_CLASSES), help=f"at most {len(COLOUR_CLASSES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="the folder to write pokemon.npz into")
    p.add_argument("--picture", type=Path, default=None, help="a PNG of 12 sprites of each cluster, one row each")
    args = p.parse_args()
    if not 1 <= args.clusters <= len(COLOUR_CLASSES):
        p.error(f"--clusters must be in 1..{len(COLOUR_CLASSES)} (the class slots), got {args.clusters}")
    data = read_cache()
    labels, _ = kmeans(shape_features(data["images"]), args.clusters, args.seed)
    data["labels"] = labels.numpy().astype(data["labels"].dtype)
    if args.picture:
        save_png(members_picture(data["images"], labels, 12, args.seed), args.picture)
    path = write_cache(args.out, data)
    sizes = np.bincount(data["labels"], minlength=args.clusters).tolist()
    print(json.dumps({"sprites": len(labels), "clusters": args.clusters, "sizes": sizes, "out": str(path)}))


if __name__ == "__main__":
    main()
