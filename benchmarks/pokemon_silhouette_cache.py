"""The first stage of a Pokémon cascade: a model of silhouettes alone. This writes the data cache such a run reads: the
sprites the latent denoiser learns from (the third run's caps: 4 a family, 2 colourings a drawing, the older drawings
in), each replaced by its silhouette (`sprites.foreground`) drawn black on white, with its colour class and name.

    .venv/bin/python -m benchmarks.pokemon_silhouette_cache --out runs/silhouette_cache [--picture FILE]
    DIFFUSION_CORE_CACHE=runs/silhouette_cache .venv/bin/python -m diffusion_core.train --dataset pokemon \\
        --config configs/pokemon_silhouette_layout.json --out runs/pokemon_silhouette_layout --threads 2

The caps are applied to the sprites here, before their drawings are lost (`sprites.cap_drawings` compares lines), so
the run's config sets none. A sample of the layout model is a silhouette once thresholded at mid-grey; the
silhouette-conditioned latent denoiser (`benchmarks/pokemon_silhouette_fill.py`) then draws a Pokémon into it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from diffusion_core.data.datasets import load_dataset, to_uint8
from diffusion_core.data.sprites import foreground
from diffusion_core.files.pictures import image_grid, save_png

from .pokemon_subset import write_cache

CAPS = {"max_per_family": 4, "max_per_drawing": 2, "older_drawings": True}  # configs/pokemon_latent_ft3.json's


def silhouettes(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images [N, H, W, 3] of the sprites' silhouettes: black figure on white."""
    return np.where(foreground(images)[..., None], 0, 255).astype(np.uint8).repeat(3, axis=-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the folder to write pokemon.npz into")
    p.add_argument("--picture", type=Path, help="a grid of the first 64 silhouettes beside their sprites")
    args = p.parse_args()
    data = load_dataset("pokemon", **CAPS)
    sprites = to_uint8(data.x)
    shapes = silhouettes(sprites)
    path = write_cache(args.out, {"images": shapes, "labels": data.labels.numpy(), "names": np.array(data.item_names)})
    if args.picture:
        save_png(image_grid(np.concatenate([sprites[:32], shapes[:32]]), nrow=8, scale=2), args.picture)
    print(f"wrote the silhouettes of {len(shapes)} sprites to {path}")


if __name__ == "__main__":
    main()
