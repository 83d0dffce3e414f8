"""A classifier two-sample test for Pokémon samples (Lopez-Paz and Oquab 2017, "Revisiting classifier two-sample
tests"): a small CNN learns to tell 80 % of a set of sprites from 80 % of a set of samples, and its accuracy on the
other 20 % of each is the score: 0.5 when the two cannot be told apart, 1.0 when they always can. A probe towards a
number for "reads as a creature" (docs/TRAINING.md), calibrated here on sets whose place is known: other sprites
(0.5), the autoencoder's reconstructions of sprites, and draws of a Gaussian fitted to the latents per class
(`benchmarks/pokemon_gaussian.py`).

    .venv/bin/python -m diffusion_core.sample --checkpoint checkpoints/pokemon_latent --num 500 --label all \\
        --seed 0 --out runs/latent_500.npz
    .venv/bin/python -m benchmarks.pokemon_c2st [--samples runs/latent_500.npz ...] [--seeds 3] [--shapes]

With --shapes the critic sees only where the figure is and where its dark pixels are (`sprites.foreground`,
`sprites.dark_pixels`), not its colours or textures. Prints JSON: each set's held-out accuracy for each seed (the
seed picks the sprites, the split and the CNN's start).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.data.datasets import from_uint8, load_dataset, to_uint8
from diffusion_core.data.sprites import dark_pixels, foreground

from .pokemon_gaussian import class_gaussians, encoded_run, gaussian_latents

REAL = 500  # sprites on the real side of each test, and at most as many samples


def critic() -> nn.Module:
    """Three strided convs and a linear read-out of their global average: [N, 3, H, W] -> a logit."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.SiLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),
                         nn.Conv2d(64, 64, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def two_sample_accuracy(a: torch.Tensor, b: torch.Tensor, seed: int, epochs: int = 40) -> float:
    """Held-out accuracy of a critic trained (Adam, mirror images as augmentation) to tell images a from images b,
    equally many of each, on an 80 / 20 split."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(a), len(b))
    a, b = a[torch.randperm(len(a), generator=g)[:n]], b[torch.randperm(len(b), generator=g)[:n]]
    k = int(0.8 * n)
    x_train, y_train = torch.cat([a[:k], b[:k]]), torch.cat([torch.zeros(k), torch.ones(k)])
    x_test, y_test = torch.cat([a[k:], b[k:]]), torch.cat([torch.zeros(n - k), torch.ones(n - k)])
    torch.manual_seed(seed)
    net = critic()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x_train), generator=g).split(64):
            x = x_train[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1, generator=g) < 0.5, x.flip(-1), x)
            loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((net(x_test).squeeze(1) > 0).float() == y_test).float().mean())


def shapes(x: torch.Tensor) -> torch.Tensor:
    """Images [N, 3, H, W] in [-1, 1] to their shapes, as three +-1 channels: the figure, its dark pixels, and the
    rest of the figure."""
    images = to_uint8(x)
    figure, dark = torch.from_numpy(foreground(images)), torch.from_numpy(dark_pixels(images))
    return torch.stack([figure, dark, figure & ~dark], dim=1).float() * 2 - 1


def reference_sets(checkpoint: str, num: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The real side (num gen8 sprites) and the calibration sets: num other sprites, the checkpoint's autoencoder's
    reconstructions of num training sprites, and num draws of its latents' Gaussians (one row per class)."""
    real = load_dataset("pokemon").x
    perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(1))
    pipe, data = encoded_run(checkpoint)
    pick = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(2))[:num]
    labels = pipe.labels_for(num, "all").cpu()
    gaussian = gaussian_latents(class_gaussians(data.x, data.labels, pipe.info.num_classes), labels,
                                pipe.info.data_shape, seed=0)
    return real[perm[:num]], {"other sprites": real[perm[num:2 * num]],
                              "autoencoder reconstructions": pipe.decode(data.x[pick]).cpu(),
                              "gaussian per class": pipe.decode(gaussian).cpu()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent", help="the latent model whose autoencoder "
                   "and latents make the calibration sets")
    p.add_argument("--samples", nargs="*", default=[], help=".npz files written by diffusion_core.sample")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", action="store_true", help="the critic sees the figures' shapes only")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    real, sets = reference_sets(args.checkpoint, REAL)
    for path in args.samples:
        sets[path] = from_uint8(np.load(path)["samples"])
    view = shapes if args.shapes else (lambda x: x.float())
    out = {name: [round(two_sample_accuracy(view(real), view(x), seed), 3) for seed in range(args.seeds)]
           for name, x in sets.items()}
    print(json.dumps({"real": REAL, "shapes": args.shapes, "held_out_accuracy": out}, indent=1))


if __name__ == "__main__":
    main()
