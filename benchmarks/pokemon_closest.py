"""The Pokémon samples closest to the training set, drawn beside their nearest training sprites: what the card's
near-copy count (distance below the sprites' own 1st-percentile nearest-neighbour distance) cannot see when a
family of near-identical sprites sets that percentile.

    .venv/bin/python -m benchmarks.pokemon_closest [--checkpoint checkpoints/pokemon] [--num 500] [--show 8]
                                                   [--out docs/pokemon_closest.png]

The samples are the evaluation's (`evaluate --suite`: `num` at the default settings, one row per class, seed 1234).
Prints JSON: for each shown sample its distance, the nearest sprite's name and the RMS difference in 1/255.
The picture: samples on top, their nearest sprites (or mirror images' originals) below.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

from diffusion_core.data import UINT8_SCALE, load_dataset, to_uint8
from diffusion_core.evaluate import EVAL_SEED, pokemon_samples, suite
from diffusion_core.metrics import nearest_neighbours
from diffusion_core.pipeline import Pipeline
from diffusion_core.viz import image_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--show", type=int, default=8)
    p.add_argument("--out", default="docs/pokemon_closest.png")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    card_settings = suite(pipe)["ddim-50 default guidance"]
    x, _ = pokemon_samples(pipe, args.num, EVAL_SEED, **card_settings)  # the samples the card's metrics measured
    data = load_dataset("pokemon")
    dist, index = nearest_neighbours(x, data.x, hflip=True)
    order = np.argsort(dist)[:args.show]
    values = x[order].numel() // len(order)
    rows = [{"sample": int(i), "distance": round(float(dist[i]), 3),
             "rms_per_255": round(float(dist[i]) / np.sqrt(values) * UINT8_SCALE, 2),
             "nearest_sprite": data.item_names[index[i]] if data.item_names else int(index[i])} for i in order]
    pairs = np.concatenate([to_uint8(x[order]), to_uint8(data.x[index[order]])])
    Image.fromarray(image_grid(pairs, nrow=len(order), scale=3)).save(args.out)
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "closest": rows, "picture": args.out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
