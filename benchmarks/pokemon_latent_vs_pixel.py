"""The Pokémon models side by side: the pixel-space one and the latent one (Rombach et al. 2022), each at its own
default sampling settings, on the same seeds and labels (one row per colour class), with the card's metrics
(`evaluate.evaluate_pokemon`: colour-class accuracy, coherence against the sprites', colour and line copies) and
the CPU time each took to train (both stages for the latent one, from the cards' training records).

    .venv/bin/python -m benchmarks.pokemon_latent_vs_pixel --pixel checkpoints/pokemon \\
        --latent checkpoints/pokemon_latent [--num 500] [--picture docs/pokemon_latent_vs_pixel.png]

Prints JSON; the picture shows 4 samples of each class from the pixel model (left) beside the latent model's
(right), drawn with the same seed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import to_uint8
from diffusion_core.evaluate import EVAL_SEED, evaluate
from diffusion_core.files.card import training_lineage
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline

PER_CLASS = 4  # samples of each class in the picture


def training_minutes(config: dict) -> float:
    """Minutes of training behind a checkpoint: every run of its lineage, and its autoencoder's for a latent one."""
    records = training_lineage(config.get("training", {})) + training_lineage(config.get("autoencoder_training", {}))
    return round(sum(r.get("seconds", 0.0) for r in records) / 60, 1)


def grid(pipe: Pipeline, seed: int) -> np.ndarray:
    """PER_CLASS samples of every class at the model's defaults, one row per class."""
    k = pipe.info.num_classes
    x, _ = pipe.generate(PER_CLASS * k, seed=seed, label="all")
    return image_grid(to_uint8(x.cpu()), nrow=PER_CLASS, scale=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixel", default="checkpoints/pokemon")
    p.add_argument("--latent", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=500, help="samples per model for the metrics (0: the picture only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the picture's samples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--picture", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out, grids = {}, []
    for name, folder in (("pixel", args.pixel), ("latent", args.latent)):
        pipe = Pipeline.load(folder)
        config = json.loads((Path(folder) / "config.json").read_text())
        out[name] = {"checkpoint": folder, "training_minutes": training_minutes(config),
                     "sampling": config.get("sampling", {})}
        if args.num:
            out[name] |= evaluate(pipe, num=args.num, seed=EVAL_SEED)
        grids.append(grid(pipe, args.seed))
    if args.picture:
        gap = np.full((grids[0].shape[0], 16, 3), 255, dtype=np.uint8)
        save_png(np.concatenate([grids[0], gap, grids[1]], axis=1), args.picture)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
