"""A Pokémon cascade, end to end: a silhouette from the layout model (`benchmarks/pokemon_silhouette_cache.py`,
`configs/pokemon_silhouette_layout.json`), then the silhouette-conditioned latent denoiser
(`configs/pokemon_latent_silhouette.json`) draws a Pokémon into it, both with the same colour class; beside them, the
shipped latent model's samples at the same seeds and labels.

    .venv/bin/python -m benchmarks.pokemon_cascade --layout runs/pokemon_silhouette_layout \\
        --fill runs/pokemon_latent_silhouette [--num 80] [--picture docs/pokemon_cascade.png]

Each stage samples at its checkpoint's defaults. Prints JSON: the card's Pokémon metrics of the cascade's and the
shipped model's samples, and how far the layouts copy a training silhouette (the highest IoU of each layout with
one of the silhouettes the layout model learnt from, or its mirror image; the median and the share at >= 0.8), beside
the same for the shipped model's samples' silhouettes. The picture has one row per colour class: 8 layouts, their
fills, the shipped model's samples.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import load_dataset, silhouette_condition, to_uint8
from diffusion_core.data.sprites import foreground, mask_iou
from diffusion_core.evaluate import pokemon_metrics
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline

from .pokemon_silhouette_cache import CAPS
from .pokemon_silhouette_fill import COLUMNS

SHIPPED = "checkpoints/pokemon_latent"
COPY_IOU = 0.8  # a layout this close to a training silhouette is counted as its copy


def layouts(pipe: Pipeline, num: int, seed: int) -> torch.Tensor:
    """`num` silhouettes [num, 3, H, W] from the layout model (label 'all'), thresholded to black on white."""
    x, _ = pipe.generate(num, seed=seed, label="all")
    return torch.where(x.cpu().mean(1, keepdim=True) < 0, -1.0, 1.0).expand(-1, 3, -1, -1)


def silhouette_copies(images: np.ndarray, known: np.ndarray) -> dict:
    """The median highest IoU of each image's silhouette with one of the training silhouettes `known` [M, H, W] (or
    its mirror image), and the share of those >= COPY_IOU."""
    best = mask_iou(foreground(images), np.concatenate([known, known[:, :, ::-1]])).max(1)
    return {"silhouette_iou_median": float(np.median(best)), "silhouette_copies": float((best >= COPY_IOU).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layout", default="runs/pokemon_silhouette_layout")
    p.add_argument("--fill", default="runs/pokemon_latent_silhouette")
    p.add_argument("--num", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--picture", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    layout_pipe, fill_pipe = Pipeline.load(args.layout, device=cpu), Pipeline.load(args.fill, device=cpu)
    shapes = layouts(layout_pipe, args.num, args.seed)
    cond = silhouette_condition(shapes, fill_pipe.info.data_shape[-1])
    drawn, labels = fill_pipe.generate(args.num, seed=args.seed, label="all", cond=cond)
    shipped, _ = Pipeline.load(SHIPPED, device=cpu).generate(args.num, seed=args.seed, label="all")
    known = foreground(to_uint8(load_dataset("pokemon", **CAPS).x))  # once, for both models
    report = {"num": args.num, "seed": args.seed,
              "cascade": pokemon_metrics(drawn.cpu(), labels.cpu()) | silhouette_copies(to_uint8(shapes), known),
              "shipped": pokemon_metrics(shipped.cpu(), labels.cpu()) | silhouette_copies(to_uint8(shipped), known)}
    if args.picture:
        blocks = [to_uint8(x.cpu()).reshape(-1, COLUMNS, *x.shape[2:], 3) for x in (shapes, drawn, shipped)]
        rows = np.concatenate(blocks, axis=1)  # [rows, 3 * COLUMNS, H, W, 3]
        save_png(image_grid(rows.reshape(-1, *rows.shape[2:]), nrow=3 * COLUMNS, scale=2), args.picture)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
