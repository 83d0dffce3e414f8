"""How much more than a Gaussian has a latent Pokémon denoiser learnt? Fit one Gaussian per colour class to the
latents it trained on (the run's own data options, mirror images included: `encode_dataset`), draw from it, decode,
and score those sprites with the card's metrics (`evaluate.pokemon_metrics`) beside the checkpoint's own.

A Gaussian is what a denoiser collapses to when it has learnt only the data's mean and covariance: for Gaussian data
the optimal denoiser is linear (the Wiener filter, E[x0 | x_t] = mu + Sigma sqrt(abar) (abar Sigma + (1 - abar) I)^-1
(x_t - sqrt(abar) mu)), and sampling with it gives samples of N(mu, Sigma) exactly. So samples that look like the
Gaussian's are a model that has learnt the data's second moments and no shapes.

    .venv/bin/python -m benchmarks.pokemon_gaussian [--checkpoint checkpoints/pokemon_latent] [--num 500]
        [--picture docs/pokemon_gaussian.png]

Prints JSON; the picture shows 4 Gaussian samples of each class (left) beside 4 of the checkpoint's at its defaults
(right), one row per class.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import Dataset, to_uint8
from diffusion_core.evaluate import EVAL_SEED, evaluate, pokemon_metrics
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline
from diffusion_core.training.autoencoder_stage import encode_dataset

from .latent_stats import latent_run
from .pokemon_latent_vs_pixel import PER_CLASS, picture_samples


def class_gaussians(z: torch.Tensor, labels: torch.Tensor, classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per class: the mean of the flattened latents and a square root of their covariance, V diag(sqrt(lambda)) from
    its eigendecomposition (fewer examples than dimensions: the covariance is singular, so no Cholesky)."""
    out = []
    for c in range(classes):
        flat = z[labels == c].flatten(1).double()
        mu = flat.mean(0)
        lam, v = torch.linalg.eigh(torch.cov(flat.T))
        out.append((mu, v * lam.clamp_min(0).sqrt()))
    return out


def gaussian_latents(gaussians: list, labels: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """z = mu_y + sqrt(Sigma_y) xi, xi ~ N(0, I), for each label y."""
    g = torch.Generator().manual_seed(seed)
    xi = torch.randn(len(labels), shape[0] * shape[1] * shape[2], generator=g, dtype=torch.float64)
    z = torch.stack([gaussians[y][0] + gaussians[y][1] @ e for y, e in zip(labels.tolist(), xi)])
    return z.float().reshape(len(labels), *shape)


def encoded_run(checkpoint: str) -> tuple[Pipeline, Dataset]:
    """A latent checkpoint's pipeline and the latents of the sprites its last run trained on (its data options, and
    the mirror images' where it flipped)."""
    pipe, sprites, trained = latent_run(checkpoint)
    return pipe, encode_dataset(pipe.autoencoder, sprites, mirrored=trained["hflip"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=500, help="Gaussian samples for the metrics")
    p.add_argument("--model", action="store_true", help="evaluate the checkpoint's own samples too (as its card)")
    p.add_argument("--seed", type=int, default=0, help="seed of the picture's samples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--picture", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data = encoded_run(args.checkpoint)
    gaussians = class_gaussians(data.x, data.labels, pipe.info.num_classes)
    labels = pipe.labels_for(args.num, "all").cpu()
    x = pipe.decode(gaussian_latents(gaussians, labels, pipe.info.data_shape, EVAL_SEED)).cpu()
    out = {"checkpoint": args.checkpoint, "latents": len(data.x), "gaussian": pokemon_metrics(x, labels)}
    if args.model:
        out["model"] = evaluate(pipe, num=args.num, seed=EVAL_SEED)
    if args.picture:
        shown = pipe.labels_for(PER_CLASS * pipe.info.num_classes, "all").cpu()
        left = pipe.decode(gaussian_latents(gaussians, shown, pipe.info.data_shape, args.seed)).cpu()
        right = picture_samples(pipe, args.seed)[0]
        grids = [image_grid(to_uint8(im), nrow=PER_CLASS, scale=2) for im in (left, right)]
        gap = np.full((grids[0].shape[0], 16, 3), 255, dtype=np.uint8)
        save_png(np.concatenate([grids[0], gap, grids[1]], axis=1), args.picture)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
