"""Does a sample redraw a training sprite? The evaluation's line-copy rule, shipped so the app runs it on every sample.

A sample whose dark pixels (`sprites.dark_pixels`: outline, inner lines, black areas) overlap one sprite's, or its
mirror image's, with IoU >= `metrics.LINE_COPY_IOU` (0.6) redraws that sprite whatever its colours; the model card
counts such line copies over 500 samples. The app needs no data cache for it: `assets/sprite_outlines.npz` holds the
dark pixels of every sprite the evaluation compares with (the 2,705 gen8 sprites and the 790 older gen7x drawings,
`sprites.OLDER`), packed to bits, with their names. Rebuild it from the data cache with

    python -m diffusion_core.evaluation.outlines        (after: python -m diffusion_core.data fetch pokemon)
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.sprites import dark_pixels
from .metrics import LINE_COPY_IOU, closest_drawing

ASSET = Path(__file__).resolve().parent.parent / "assets" / "sprite_outlines.npz"


@dataclass(frozen=True)
class Outlines:
    """The drawings of the training sprites: dark-pixel masks [M, H, W] and one name per sprite."""

    lines: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def from_sprites(cls, images: np.ndarray, names: tuple[str, ...] | list[str]) -> "Outlines":
        """The drawings of uint8 sprites [M, H, W, 3] on white."""
        if len(images) != len(names):
            raise ValueError(f"{len(images)} sprites but {len(names)} names")
        return cls(dark_pixels(images), tuple(names))

    def save(self, path: Path) -> None:
        """Write the masks packed to bits (a sprite's 48 x 48 in 288 bytes), compressed."""
        np.savez_compressed(path, bits=np.packbits(self.lines, axis=-1), width=self.lines.shape[-1],
                            names=np.array(self.names))

    @classmethod
    def load(cls, path: Path) -> "Outlines":
        with np.load(path, allow_pickle=False) as z:
            lines = np.unpackbits(z["bits"], axis=-1, count=int(z["width"])).astype(bool)
            return cls(lines, tuple(str(n) for n in z["names"]))


@functools.lru_cache(maxsize=1)
def shipped_outlines() -> Outlines:
    """The outlines shipped with the package (read once)."""
    if not ASSET.exists():
        raise FileNotFoundError(f"{ASSET} is missing; rebuild it with: python -m diffusion_core.evaluation.outlines")
    return Outlines.load(ASSET)


def closest_sprites(samples: np.ndarray, outlines: Outlines) -> tuple[np.ndarray, list[str], np.ndarray]:
    """For uint8 samples [N, H, W, 3]: the highest dark-pixel IoU with a sprite or its mirror image, that sprite's
    name, and whether the sample is a line copy of it (IoU >= LINE_COPY_IOU)."""
    if samples.shape[1:3] != outlines.lines.shape[1:]:
        raise ValueError(f"samples of {samples.shape[1:3]} px against outlines of {outlines.lines.shape[1:]} px")
    iou, index = closest_drawing(dark_pixels(samples), outlines.lines)
    return iou, [outlines.names[i] for i in index], iou >= LINE_COPY_IOU


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ASSET)
    args = p.parse_args(argv)
    from ..data.datasets import load_dataset, to_uint8  # the data cache: only here, never in the app

    sprites = load_dataset("pokemon", older_drawings=True)
    outlines = Outlines.from_sprites(to_uint8(sprites.x), sprites.item_names)
    outlines.save(args.out)
    print(f"{args.out}: the drawings of {len(outlines.names)} sprites, {args.out.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
