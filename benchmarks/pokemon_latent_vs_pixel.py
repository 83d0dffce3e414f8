"""The Pokémon models side by side: the pixel-space one and the latent one (Rombach et al. 2022), each at its own
default sampling settings, on the same seeds and labels (one row per colour class), with the card's metrics
(`evaluate.evaluate_pokemon`: colour-class accuracy, coherence against the sprites', colour and line copies) and
the CPU time each took to train (both stages for the latent one, from the cards' training records).

    .venv/bin/python -m benchmarks.pokemon_latent_vs_pixel --pixel checkpoints/pokemon \\
        --latent checkpoints/pokemon_latent [--num 500] [--picture docs/pokemon_latent_vs_pixel.png]

Prints JSON; the picture shows 4 samples of each class from the pixel model (left) beside the latent model's
(right), drawn with the same seed, and the median coherence of those samples with and without a palette (the pixel
model's snapped to --palette colours afterwards; the latent model's decoded without its own palette).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import to_uint8
from diffusion_core.evaluate import EVAL_SEED, coherence, evaluate
from diffusion_core.files.card import training_lineage
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.models.palette import snap_to_palette
from diffusion_core.pipeline import Pipeline

PER_CLASS = 4  # samples of each class in the picture


def training_minutes(config: dict) -> float:
    """Minutes of training behind a checkpoint: every run of its lineage, and its autoencoder's for a latent one."""
    records = training_lineage(config.get("training", {})) + training_lineage(config.get("autoencoder_training", {}))
    return round(sum(r.get("seconds", 0.0) for r in records) / 60, 1)


def picture_samples(pipe: Pipeline, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PER_CLASS samples of every class at the model's defaults, in class order: (as shown, before any palette), one
    run: a latent model's last latents through its decoder with and without the decoder's palette, a pixel model's
    samples twice."""
    for out in pipe.run(PER_CLASS * pipe.info.num_classes, seed=seed, label="all"):
        pass
    if pipe.autoencoder is None:
        return out.x_t.cpu(), out.x_t.cpu()
    return pipe.decode(out.x_t).cpu(), pipe.autoencoder.decode(out.x_t, snap=False).cpu()


def palette_effect(pipe: Pipeline, shown: torch.Tensor, raw: torch.Tensor, k: int) -> dict:
    """Median coherence of the picture's samples with and without a palette: the pixel model's samples snapped to k
    colours afterwards, the latent model's decoded without its own palette, so that what the palette does is told
    from what the latent design does."""
    if pipe.autoencoder is None:
        return {"coherence": coherence(raw), f"coherence_palette_{k}": coherence(snap_to_palette(raw, k))}
    return {f"coherence_palette_{pipe.autoencoder.config.palette}": coherence(shown),
            "coherence_without_palette": coherence(raw)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixel", default="checkpoints/pokemon")
    p.add_argument("--latent", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=500, help="samples per model for the metrics (0: the picture only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the picture's samples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--palette", type=int, default=10, help="colours to snap the pixel model's samples to")
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
        shown, raw = picture_samples(pipe, args.seed)
        out[name]["picture_samples"] = palette_effect(pipe, shown, raw, args.palette)
        grids.append(image_grid(to_uint8(shown), nrow=PER_CLASS, scale=2))
    if args.picture:
        gap = np.full((grids[0].shape[0], 16, 3), 255, dtype=np.uint8)
        save_png(np.concatenate([grids[0], gap, grids[1]], axis=1), args.picture)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
