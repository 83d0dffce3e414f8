"""Does the silhouette carry the creature? A latent denoiser conditioned on each sprite's silhouette
(`configs/pokemon_latent_silhouette.json`: `UNetConfig.cond_channels`, `datasets.silhouette_condition`) is asked to
draw into silhouettes it never saw: those of the Black/White battle sprites (front view, first frame, halved:
`benchmarks/pokeapi_frames.py`), new drawings in new poses of Pokémon it knows only as box sprites. If what it draws
into them reads as creatures, a layout (the silhouette) is what the unconditioned denoiser fails to invent, and a
cascade (a silhouette model, then this one) is the design to train; if it draws blobs that fill the outline, it is not.

    .venv/bin/python -m benchmarks.pokemon_silhouette_fill --checkpoint runs/pokemon_latent_silhouette \\
        --frames runs/bw_cache/pokemon.npz [--num 32] [--seeds 2] [--picture docs/pokemon_silhouette_fill.png]

Each silhouette is filled at the checkpoint's defaults (DDIM 50, eta 1, g = 4) with the frame's own colour class as
the label. Prints JSON: how far the fills keep to their silhouettes (IoU of the fill's figure with the given one), how
far they redraw the unseen frame (IoU of dark pixels with it, which a copy of a drawing it never saw cannot reach by
memory), line copies of the training sprites by the card's rule, colour coherence and colour-class accuracy. The
picture shows, in blocks of 8 columns, the frames and under each block their fills, one row per seed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusion_core.data.datasets import from_uint8, silhouette_condition, to_uint8
from diffusion_core.data.sprites import foreground, line_iou, mask_iou
from diffusion_core.evaluate import coherence, pokemon_metrics
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline

COLUMNS = 8


def front_frames(path: Path, num: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [num, H, W, 3], colour labels) of `num` Black/White front views (first frame, not shiny) spread
    evenly over the species in the cache at `path`."""
    with np.load(path, allow_pickle=False) as z:
        names, images, labels = z["names"], z["images"], z["labels"]
    fronts = np.flatnonzero([str(n).startswith("bw") and str(n).endswith("-front-f0") for n in names])
    if len(fronts) < num:
        raise ValueError(f"{path} holds {len(fronts)} Black/White front frames, fewer than {num}")
    picks = fronts[np.linspace(0, len(fronts) - 1, num).round().astype(int)]
    return images[picks], labels[picks]


def fills(pipe: Pipeline, frames: np.ndarray, labels: np.ndarray, seed: int) -> torch.Tensor:
    """The denoiser's drawings [N, 3, H, W] into the frames' silhouettes, at the checkpoint's defaults."""
    cond = silhouette_condition(from_uint8(frames), pipe.info.data_shape[-1])
    x, _ = pipe.generate(len(frames), seed=seed, label=torch.from_numpy(labels), cond=cond)
    return x.cpu()


def measure(drawn: torch.Tensor, frames: np.ndarray, labels: np.ndarray) -> dict:
    """How the fills keep to their silhouettes and their frames' lines, and the card's Pokémon metrics."""
    images = to_uint8(drawn)
    pairs = np.diag(mask_iou(foreground(images), foreground(frames))), np.diag(line_iou(images, frames))
    return {"silhouette_iou_median": float(np.median(pairs[0])), "frame_line_iou_median": float(np.median(pairs[1])),
            **pokemon_metrics(drawn, torch.from_numpy(labels))}


def picture(frames: np.ndarray, drawn: list[torch.Tensor], path: Path) -> None:
    """Blocks of COLUMNS frames, each followed by one row of their fills per seed."""
    rows = []
    for i in range(0, len(frames), COLUMNS):
        rows.append(frames[i:i + COLUMNS])
        rows += [to_uint8(x[i:i + COLUMNS]) for x in drawn]
    save_png(image_grid(np.concatenate(rows), nrow=COLUMNS, scale=2), path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="runs/pokemon_latent_silhouette")
    p.add_argument("--frames", type=Path, default=Path("runs/bw_cache/pokemon.npz"))
    p.add_argument("--num", type=int, default=32)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--picture", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint, device=torch.device("cpu"))
    frames, labels = front_frames(args.frames, args.num)
    drawn = [fills(pipe, frames, labels, seed) for seed in range(args.seeds)]
    report = {"checkpoint": args.checkpoint, "frames": len(frames), "seeds": args.seeds,
              "frames_coherence_median": coherence(from_uint8(frames)),
              "fills": measure(torch.cat(drawn), np.concatenate([frames] * args.seeds),
                               np.concatenate([labels] * args.seeds))}
    if args.picture:
        picture(frames, drawn, args.picture)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
