"""The sprite files of npm `pokesprite-images@2.7.0`: which PNGs the Pokémon dataset is read from.

Sprite source (measured on the 2.7.0 tarball):
- `package/pokemon-gen8/{regular,shiny}/*.png` plus their `female/` variants:
  1,332 + 1,333 top-level sprites and 20 + 20 female ones, all 68×56, modes RGBA,
  P and LA (every one is converted to RGBA first). None is empty.
- `package/pokemon-gen7x/{regular,shiny}/*.png`: of its 2,154 sprites 1,364 are byte-for-byte
  the same picture as in gen8 (skipped), 789 are older, smaller drawings of the same Pokémon
  (median bounding box 23×25 px) and 1 is new (`genesect-standard`).
  These 790 `OLDER` drawings are named `<name>-gen7x` and kept apart: `older_drawing_paths`;
  `data.load_dataset(..., older_drawings=True)` adds them (more drawings per Pokémon, so a
  model has fewer reasons to learn any one of them by heart).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .sprites import OLDER, SIZE, square_sprite, to_rgba


def sprite_paths(package_dir: Path) -> list[tuple[str, Path]]:
    """(name, path) of every gen8 sprite in an extracted npm package: regular, shiny, female."""
    root = Path(package_dir) / "pokemon-gen8"
    found = []
    for variant in ("regular", "shiny"):
        for sub, suffix in (("", ""), ("female", "-female")):
            tail = suffix + ("-shiny" if variant == "shiny" else "")
            found += [(p.stem + tail, p) for p in sorted((root / variant / sub).glob("*.png"))]
    return found


def older_drawing_paths(package_dir: Path) -> list[tuple[str, Path]]:
    """(name + OLDER, path) of every gen7x sprite that is not the very picture gen8 has under its name."""
    root = Path(package_dir)
    found = []
    for variant in ("regular", "shiny"):
        for path in sorted((root / "pokemon-gen7x" / variant).glob("*.png")):
            twin = root / "pokemon-gen8" / variant / path.name
            with Image.open(path) as im:
                rgba = to_rgba(im)
            if twin.exists():
                with Image.open(twin) as im:
                    if np.array_equal(rgba, to_rgba(im)):
                        continue
            found.append((path.stem + ("-shiny" if variant == "shiny" else "") + OLDER, path))
    return found


def read_sprites(package_dir: Path, size: int = SIZE) -> tuple[np.ndarray, list[str]]:
    """All non-empty gen8 sprites, then the older gen7x drawings, as uint8 [N, size, size, 3] on white, with their
    names."""
    images, names = [], []
    for name, path in sprite_paths(package_dir) + older_drawing_paths(package_dir):
        with Image.open(path) as im:
            square = square_sprite(to_rgba(im), size)
        if square is not None:
            images.append(square)
            names.append(name)
    if not images:
        raise ValueError(f"no sprites found under {Path(package_dir) / 'pokemon-gen8'}")
    return np.stack(images), names
