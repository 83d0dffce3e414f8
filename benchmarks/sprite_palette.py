"""How many colours the sprite decoder should draw in: held-out PSNR and colour coherence of an autoencoder's
reconstructions snapped to palettes of k colours of their own (models/palette.py), and the real sprites' own
palette sizes.

    .venv/bin/python -m benchmarks.sprite_palette [--checkpoint checkpoints/pokemon_autoencoder] [--sizes 0 8 ...]
        [--set K] [--picture PNG]

--set K writes K into the checkpoint's config (model.palette), with the held-out report at K and this sweep, and
re-renders its card; --picture draws originals over raw over snapped reconstructions.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import load_dataset, to_uint8
from diffusion_core.data.sprites import foreground
from diffusion_core.files.card import autoencoder_card, command_line, hardware_description
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.models.palette import snap_to_palette
from diffusion_core.training.autoencoder_stage import (fidelity, load_autoencoder, reconstruct, reconstruction_report,
                                                     split_heldout)


def palette_sizes(images: np.ndarray) -> list[int]:
    """Distinct colours inside each uint8 sprite's figure."""
    fg = foreground(images)
    return [len(np.unique(im[m], axis=0)) for im, m in zip(images, fg)]


def sweep(model, x: torch.Tensor, sizes: list[int]) -> list[dict]:
    """The held-out PSNR and coherence of the model's reconstructions of x in each palette size (0 = the decoder's
    raw output), the decoder run once."""
    real, raw = to_uint8(x), reconstruct(model, x, snap=False)
    return [{"palette": k, **{m: round(v, 3 if m == "psnr" else 4) for m, v in
                              fidelity(snap_to_palette(raw, k) if k else raw, real).items()}} for k in sizes]


def write_choice(folder: Path, model, x: torch.Tensor, k: int, rows: list[dict], argv: list[str]) -> None:
    """model.palette = k in the checkpoint's config.json, the held-out report at k, the sweep, a re-rendered card."""
    config = json.loads((folder / "config.json").read_text())
    model.config = replace(model.config, palette=k)
    config["model"]["palette"] = k
    config["training"]["heldout"] = reconstruction_report(model, x)
    config["palette_choice"] = {"command": command_line("benchmarks.sprite_palette", argv), "sweep": rows,
                                "hardware": hardware_description()}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(autoencoder_card(config))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_autoencoder")
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 8, 10, 12, 14, 16, 24])
    p.add_argument("--set", type=int, default=None, help="write this palette size into the checkpoint")
    p.add_argument("--picture", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, record = load_autoencoder(args.checkpoint)
    config = record.get("config", {})
    data = load_dataset("pokemon", older_drawings=config.get("older_drawings", True))
    held = split_heldout(data, config.get("holdout_every", 20))[1]
    rows = sweep(model, held.x, args.sizes)
    sizes = palette_sizes(to_uint8(held.x))
    print(json.dumps({"heldout": rows, "real_palette_sizes": {"median": float(np.median(sizes)),
                      "p10": float(np.percentile(sizes, 10)), "p90": float(np.percentile(sizes, 90))},
                      "images": len(held.x), "machine": hardware_description()}, indent=2))
    if args.picture:
        k = args.set or max(args.sizes)
        x = held.x[:8]
        raw = reconstruct(model, x, snap=False)
        save_png(image_grid(to_uint8(torch.cat([x, raw, snap_to_palette(raw, k)])), nrow=8, scale=3), args.picture)
    if args.set is not None:
        write_choice(Path(args.checkpoint), model, held.x, args.set, rows, sys.argv[1:])


if __name__ == "__main__":
    main()
