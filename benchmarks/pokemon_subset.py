"""Where does the latent Pokémon denoiser begin to draw creatures? Train it on a fraction of the sprite families and
look: this writes the data cache such a run reads, the cached sprites of every `every`-th family.

    .venv/bin/python -m benchmarks.pokemon_subset --every 16 --out runs/subset16_cache
    DIFFUSION_CORE_CACHE=runs/subset16_cache .venv/bin/python -m diffusion_core.train --dataset pokemon \\
        --stage latent --config configs/pokemon_latent_subset16.json --out runs/subset16 --threads 1
    .venv/bin/python -m diffusion_core.evaluate --checkpoint runs/subset16 --num 200

OUT/pokemon.npz holds the images, labels and names of the sprites whose family has crc32(family) % every == rest
(the rule `autoencoder_stage.is_heldout` holds families out by, so a family goes whole, shiny twins and older
drawings with it). With the same rest the subsets nest: every 16th family is among every 4th. The evaluation
compares the samples with every sprite, as the model card's does, so a copy of a sprite in the subset counts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from diffusion_core.data.datasets import cache_dir
from diffusion_core.data.sprites import family_bucket


def family_subset(names: list[str], every: int, rest: int) -> list[int]:
    """Indices of the names whose family falls in bucket `rest` of `every` (`sprites.family_bucket`)."""
    if not 0 <= rest < every:
        raise ValueError(f"rest must be in 0..{every - 1}, got {rest}")
    return [i for i, n in enumerate(names) if family_bucket(n, every) == rest]


def read_cache() -> dict[str, np.ndarray]:
    """Every array of the sprite cache (`cache_dir() / "pokemon.npz"`): images, labels, names."""
    with np.load(cache_dir() / "pokemon.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_cache(out: Path, data: dict[str, np.ndarray]) -> Path:
    """Write `data` as OUT/pokemon.npz, the cache a run with DIFFUSION_CORE_CACHE=OUT reads; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "pokemon.npz", **data)
    return out / "pokemon.npz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, required=True, help="keep one family in this many")
    p.add_argument("--rest", type=int, default=3, help="which one: crc32(family) % every == rest")
    p.add_argument("--out", type=Path, required=True, help="the folder to write pokemon.npz into")
    args = p.parse_args()
    data = read_cache()
    keep = family_subset([str(n) for n in data["names"]], args.every, args.rest)
    path = write_cache(args.out, {k: v[keep] for k, v in data.items()})
    print(f"wrote {len(keep)} of {len(data['names'])} sprites to {path}")


if __name__ == "__main__":
    main()
