"""Are a model's creatures its copies? Sort sprite samples by how far their drawing (dark pixels) overlaps the
closest training sprite's, as the Pokémon tab's copy check does (`outlines.closest_sprites`), and show the samples
that overlap least, those around the median and those that overlap most.

    .venv/bin/python -m benchmarks.pokemon_by_overlap --samples runs/subset16_500.npz \\
        [--show 16] [--picture docs/pokemon_latent_subset16_by_overlap.png]

The samples are an .npz written by `diffusion_core.sample`. Prints JSON: the number of line copies (IoU >=
`metrics.LINE_COPY_IOU`), the IoU's deciles and quartiles, and the IoU of each row shown; the picture has three
rows of `show` samples, least overlap on top.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from diffusion_core.evaluation.outlines import closest_sprites, shipped_outlines
from diffusion_core.files.pictures import image_grid, save_png


def rows_by_overlap(iou: np.ndarray, show: int) -> list[np.ndarray]:
    """Indices of the `show` samples with the lowest IoU, the `show` around the median, the `show` highest."""
    if not 0 < show <= len(iou) // 3:
        raise ValueError(f"show must be in 1..{len(iou) // 3} for {len(iou)} samples, got {show}")
    order = np.argsort(iou, kind="stable")
    middle = (len(iou) - show) // 2
    return [order[:show], order[middle:middle + show], order[-show:]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", required=True, help="an .npz written by diffusion_core.sample")
    p.add_argument("--show", type=int, default=16)
    p.add_argument("--picture", default=None)
    args = p.parse_args()
    samples = np.load(args.samples)["samples"]
    iou, _, copy = closest_sprites(samples, shipped_outlines())
    rows = rows_by_overlap(iou, args.show)
    print(json.dumps({"samples": args.samples, "n": len(iou), "line_copies": int(copy.sum()),
                      "iou_quantiles": {q: round(float(np.quantile(iou, q)), 3) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
                      "rows_iou": [[round(float(v), 2) for v in iou[r]] for r in rows]}, indent=1))
    if args.picture:
        save_png(image_grid(samples[np.concatenate(rows)], nrow=args.show, scale=2), args.picture)


if __name__ == "__main__":
    main()
