"""How FLD reacts to stroke rendering, and where guidance costs it: the numbers behind the README's guidance interval.

    .venv/bin/python -m benchmarks.fld_sensitivity [--checkpoint checkpoints/digits] [--num 500] [--real-num 2000]

1. FLD of `real_num` real digits, and of the same digits re-rendered (contrast, gamma, binarised, blurred, dilated).
2. FLD, label accuracy and mean ink (pixel mean in [0, 1]) of `num` guided digits (DPM-Solver++ 10, g = 2) with
   guidance on several timestep intervals, beside the real digits' ink. FLD is biased upwards at small N:
   compare numbers measured at the same --num only.
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from diffusion_core.data.datasets import load_dataset
from diffusion_core.evaluation.lenet import fld_report
from diffusion_core.pipeline import Pipeline

INTERVALS = {"every step": (-1, 999), "166 < t <= 881": (166, 881), "t <= 600": (-1, 600), "t > 300": (300, 999)}
BLUR = (torch.tensor([0.25, 0.5, 0.25])[:, None] * torch.tensor([0.25, 0.5, 0.25])[None])[None, None]
RENDERINGS = {  # u: digits in [0, 1]
    "as is": lambda u: u, "contrast x1.3": lambda u: (1.3 * u).clamp(0, 1), "gamma 0.7": lambda u: u ** 0.7,
    "binarised at 0.5": lambda u: (u > 0.5).float(), "blurred (1-2-1)": lambda u: F.conv2d(u, BLUR, padding=1),
    "dilated (3x3 max)": lambda u: F.max_pool2d(u, 3, 1, 1)}


def real_renderings(num: int) -> dict:
    """FLD of `num` random real digits under each re-rendering."""
    x = load_dataset("digits").x
    u = (x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:num]] + 1) / 2
    return {name: round(fld_report(f(u) * 2 - 1)["fld"], 2) for name, f in RENDERINGS.items()} | {
        "ink": round(float(u.mean()), 4)}


def guided(pipe: Pipeline, num: int) -> dict:
    """FLD, accuracy and ink of guided samples per guidance interval."""
    out = {}
    for name, interval in INTERVALS.items():
        x, labels = pipe.generate(num, seed=1, label="all", sampler="dpm++", steps=10, guidance=2.0,
                                  guidance_interval=interval)
        r = fld_report(x, labels)
        out[name] = {"fld": round(r["fld"], 2), "accuracy": r["accuracy"], "ink": round(float((x + 1).mean() / 2), 4)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/digits")
    p.add_argument("--num", type=int, default=500, help="generated digits per guidance interval")
    p.add_argument("--real-num", type=int, default=2000, help="real digits per re-rendering")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {"num": args.num, "real_num": args.real_num, "real": real_renderings(args.real_num), "guided g=2, dpm++ 10": guided(
        Pipeline.load(args.checkpoint), args.num)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
