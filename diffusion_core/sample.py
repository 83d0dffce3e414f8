"""Sample from a checkpoint and write .npz or .png.

    python -m diffusion_core.sample --checkpoint PATH_OR_REPO --num N [--label L|all] --sampler ddpm|ddim|dpm++
        [--steps S] [--eta E] [--guidance G] --seed SEED --out FILE
        [--inpaint IMAGE --mask MASK [--resample R J]]   # RePaint: fill the mask's white pixels of IMAGE

`.npz`: key `samples` (uint8 [N, H, W, C] images, or float32 [N, 2] points in data space) and `labels` when
conditional. `.png`: a grid (images) or a scatter (points). Runs on the GPU when there is one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import editing
from .data.datasets import from_uint8, to_uint8
from .fast import FastOptions
from .files.checkpoint import CheckpointError
from .files.pictures import image_grid, points_image, save_png
from .pipeline import MAX_GUIDANCE, Pipeline
from .samplers import FEW_STEP_SAMPLERS, SAMPLERS, repaint_plan, timestep_plan

MAX_NUM = 100_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m diffusion_core.sample", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, or Hub repo id owner/name[@revision]")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--label", default=None, help="class index, or 'all' to spread N over the classes")
    p.add_argument("--sampler", choices=SAMPLERS + FEW_STEP_SAMPLERS, default=None, help="default: the checkpoint's")
    p.add_argument("--steps", type=int, default=None, help="DDIM / DPM-Solver++ steps (DDPM always uses T)")
    p.add_argument("--eta", type=float, default=None, help="DDIM stochasticity, 0..1")
    p.add_argument("--guidance", type=float, default=None, help=f"classifier-free guidance 0..{MAX_GUIDANCE}; 0 = unconditional")
    add_interval_arg(p)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--batch", type=int, default=500, help="samples per forward batch")
    p.add_argument("--inpaint", type=Path, default=None, help="a picture (PNG) to complete: the model fills --mask")
    p.add_argument("--mask", type=Path, default=None, help="a PNG the picture's size: white marks what to fill")
    p.add_argument("--resample", type=int, nargs=2, default=(1, 1), metavar=("R", "J"),
                   help="RePaint's resampling: R passes over every J steps (default 1 1: plain replacement)")
    p.add_argument("--out", type=Path, required=True, help="output .npz or .png")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network, channels-last (fast.py): about 1.3x the images/s on a CPU, after "
                        "a cold compile of 10-40 s (benchmarks/RESULTS.md)")
    return p.parse_args(argv)


def add_interval_arg(p: argparse.ArgumentParser) -> None:
    """--guidance-interval T_LO T_HI (guidance.py): guide only where T_LO < t <= T_HI; -1 999 guides every step."""
    p.add_argument("--guidance-interval", type=int, nargs=2, default=None, metavar=("T_LO", "T_HI"),
                   help="guide only at steps with T_LO < t <= T_HI (default: the checkpoint's; -1 999: every step)")


def generate(pipe: Pipeline, num: int, label, seed: int, batch: int, progress: bool = True, **kw) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All samples of a CLI call, in batches (batch b uses seed + b), with one progress bar over all steps."""
    sampler, steps = pipe.plan_settings(kw.get("sampler"), kw.get("steps"))
    plan = timestep_plan(sampler, pipe.schedule.T, steps)
    n_steps = len(repaint_plan(plan, *kw["resample"]) if kw.get("resample") else plan)
    labels = pipe.labels_for(num, label)
    xs = []
    with tqdm(total=n_steps * -(-num // batch), unit="step", disable=not progress, desc="sampling") as bar:
        for b, start in enumerate(range(0, num, batch)):
            n = min(batch, num - start)
            lab = None if labels is None else labels[start:start + n]
            out = None
            for out in pipe.run(n, seed=seed + b, label=lab, **kw):
                bar.update(1)
            xs.append(pipe.decode(out.x_t).cpu())  # pixels, for a latent model too
    return torch.cat(xs), None if labels is None else labels.cpu()


def read_inpainting(pipe: Pipeline, image: Path, mask: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """--inpaint and --mask: the picture [C, H, W] in [-1, 1] (transparency on white) and the hole [H, W]."""
    from PIL import Image

    with Image.open(image) as im:
        rgba = im.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    pixels = np.array(flat.convert("L" if pipe.image_shape[0] == 1 else "RGB"))
    x0 = from_uint8(pixels.reshape(*pixels.shape[:2], -1)[None])[0]
    with Image.open(mask) as im:
        hole = torch.from_numpy(np.asarray(im.convert("L")) > 127)
    return x0, hole


def write_output(path: Path, pipe: Pipeline, x: torch.Tensor, labels: torch.Tensor | None) -> None:
    """Write samples as .npz (uint8 images / float32 points, plus labels) or as a .png picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        samples = to_uint8(x) if pipe.info.is_image else x.numpy().astype(np.float32)
        arrays = {"samples": samples} | ({"labels": labels.numpy()} if labels is not None else {})
        np.savez(path, **arrays)
    elif path.suffix == ".png":
        if pipe.info.is_image:
            several = labels is not None and len(labels.unique()) > 1  # 'all' gives blocks of equal labels
            save_png(image_grid(to_uint8(x), nrow=-(-len(x) // pipe.info.num_classes) if several else None, scale=2),
                     path)
        else:
            save_png(points_image(x.numpy()), path)
    else:
        raise ValueError(f"--out must end in .npz or .png, got {path.name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 1 <= args.num <= MAX_NUM:
        print(f"error: --num must be between 1 and {MAX_NUM}", file=sys.stderr)
        return 2
    if args.out.suffix not in (".npz", ".png"):
        print(f"error: --out must end in .npz or .png, got {args.out.name}", file=sys.stderr)
        return 2
    try:
        pipe = Pipeline.load(args.checkpoint)
        pipe = pipe.with_options(FastOptions(channels_last=True, compile=True)) if args.compile else pipe
        label = args.label if args.label in (None, "all") else int(args.label)
        edit = {}
        if args.inpaint or args.mask:
            if not (args.inpaint and args.mask):
                raise ValueError("--inpaint and --mask go together")
            image, hole = read_inpainting(pipe, args.inpaint, args.mask)
            edit = editing.inpaint_settings(pipe, image, hole, args.resample)
        x, labels = generate(pipe, args.num, label, args.seed, args.batch, sampler=args.sampler, steps=args.steps,
                             eta=args.eta, guidance=args.guidance, guidance_interval=args.guidance_interval, **edit)
        if edit:  # a latent model's decoder only approximates the known pixels: put them back exactly
            x = editing.paste_known(pipe, image, hole, x)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_output(args.out, pipe, x, labels)
    print(f"wrote {len(x)} samples to {args.out} ({pipe.source}, {pipe.device})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
