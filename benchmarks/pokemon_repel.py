"""Anti-memorisation guidance for a latent Pokémon denoiser (Chen et al. 2024, "Towards Memorization-Free Diffusion
Models"): does steering x0_pred away from its nearest sprite while sampling keep a model's creatures and lose its
copies?

At each step `guidance.repel_eps_fn` moves the model's x0_pred out to RMS distance `radius` from the nearest of the
latents of every sprite the card's metrics compare with (gen 8 and the older drawings, with their mirror images,
encoded once) when it is closer. For each radius (0: off) the card's metrics are measured on the same seeds, with
how often a sample redraws another sample of the same run (dark-pixel IoU >= the copy rule's 0.6 with another sample
or its mirror image) and how closely its silhouette matches another's, beside the same for as many sprites drawn at
random: a model can lose its copies of the sprites and still draw one creature again and again.

    .venv/bin/python -m benchmarks.pokemon_repel --checkpoint runs/subset16 [--radii 0 0.4] [--num 500]
        [--guidance G] [--picture FILE] [--threads 2]

Prints JSON (progress on stderr). The picture: the first 8 samples of each class, one row per class, a block per
radius from left to right.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from diffusion_core.data.datasets import Dataset, load_dataset, to_uint8
from diffusion_core.data.sprites import dark_pixels, foreground, is_older
from diffusion_core.evaluate import EVAL_SEED, pokemon_metrics, pokemon_samples
from diffusion_core.evaluation.metrics import LINE_COPY_IOU, closest_drawing
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.guidance import repel_eps_fn
from diffusion_core.pipeline import Pipeline

PER_ROW = 8  # samples of each class in the picture


def sprite_latents(pipe: Pipeline, sprites: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """E(x) of the sprites [N, 3, H, W] and of their mirror images."""
    x = torch.cat([sprites, sprites.flip(-1)])
    return torch.cat([pipe.encode(x[i:i + batch]).cpu() for i in range(0, len(x), batch)])


def repeats(images: np.ndarray) -> dict:
    """How often uint8 images [N, H, W, 3] redraw one another: each one's highest dark-pixel IoU with another of
    them or its mirror image (`closest_drawing` with itself skipped), its median, and how many reach LINE_COPY_IOU;
    and the median of the same highest IoU of their silhouettes (`sprites.foreground`), which a sample keeps when
    only its inner lines change."""
    skip = np.eye(len(images), dtype=bool)
    lines, _ = closest_drawing(dark_pixels(images), dark_pixels(images), skip)
    shapes, _ = closest_drawing(foreground(images), foreground(images), skip)
    return {"repeats": int((lines >= LINE_COPY_IOU).sum()), "repeat_iou_median": float(np.median(lines)),
            "shape_repeat_iou_median": float(np.median(shapes))}


def sprites_repeats(data: Dataset, num: int, seed: int = 0) -> dict:
    """`repeats` of `num` of the gen 8 sprites in `data` drawn at random: the data's own rate (shiny twins redraw
    each other)."""
    gen8 = [i for i, n in enumerate(data.item_names) if not is_older(n)]
    pick = np.random.default_rng(seed).choice(gen8, size=min(num, len(gen8)), replace=False)
    return repeats(to_uint8(data.x[torch.from_numpy(pick)]))


def repelled(pipe: Pipeline, bank: torch.Tensor, radius: float) -> Pipeline:
    """The pipeline with x0_pred kept `radius` away from the bank (radius 0: the pipeline itself)."""
    if radius == 0:
        return pipe
    bank = bank.to(pipe.device)
    return pipe.with_correction(lambda fn, labels: repel_eps_fn(fn, bank, pipe.schedule, radius,
                                                                 pipe.info.diffusion.prediction))


def first_of_each_class(x: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """The first PER_ROW images of each class, in class order."""
    return torch.cat([x[labels == c][:PER_ROW] for c in range(classes)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.4])
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--guidance", type=float, default=None, help="default: the card's")
    p.add_argument("--picture", default="")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    if pipe.autoencoder is None:
        raise SystemExit(f"{args.checkpoint} is not a latent model: the radius is measured on its latents")
    sprites = load_dataset("pokemon", older_drawings=True)  # every sprite `pokemon_metrics` compares with
    bank = sprite_latents(pipe, sprites.x)
    report = {"checkpoint": args.checkpoint, "guidance": args.guidance, "bank": len(bank),
              "sprites": sprites_repeats(sprites, args.num), "radii": {}}
    kw, blocks = {} if args.guidance is None else {"guidance": args.guidance}, []
    for radius in args.radii:
        x, labels = pokemon_samples(repelled(pipe, bank, radius), args.num, EVAL_SEED, **kw)
        report["radii"][str(radius)] = pokemon_metrics(x, labels) | repeats(to_uint8(x))
        print(json.dumps({str(radius): report["radii"][str(radius)]}), file=sys.stderr, flush=True)
        blocks.append(image_grid(to_uint8(first_of_each_class(x, labels, pipe.info.num_classes)), nrow=PER_ROW))
    if args.picture:
        save_png(image_grid(np.stack(blocks), nrow=len(blocks), pad=16, scale=2), args.picture)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
