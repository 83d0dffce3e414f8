"""The first step of a trailing-spaced run on the cosine schedule, where alpha_bar_999 = 2.4e-9, and what starting
the reverse process lower (t_start) does to quality.

    .venv/bin/python -m benchmarks.first_step [--threads 2]

Prints JSON: for each image checkpoint, sqrt(alpha_bar_t) and the size of the model's x0_pred on pure noise at
t = 999, 979, 949 (10 samples, one per class, seed 0, conditional output, eps or v as the checkpoint predicts); then the card metric with the reverse
process started at each t_start: digits DDIM-20 g=2 FLD on 500 samples, Pokémon DDIM-50 (default guidance)
colour accuracy on 100 samples, both with evaluate's seed 1234.
"""
from __future__ import annotations

import argparse
import json

import torch

from diffusion_core.diffusion import x0_and_eps
from diffusion_core.evaluate import evaluate
from diffusion_core.pipeline import Pipeline

PROBE_TS = (999, 979, 949)
QUALITY = {"digits": (500, dict(sampler="ddim", steps=20, guidance=2.0), (999, 979, 949)),
           "pokemon": (100, dict(sampler="ddim", steps=50), (999, 949))}


@torch.inference_mode()
def x0_on_noise(pipe: Pipeline, t: int) -> dict:
    """How large x0_pred is when x_t is pure noise: (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) for an eps model,
    sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v for a v model."""
    labels = torch.arange(pipe.info.num_classes)
    x_t = torch.randn((len(labels), *pipe.info.data_shape), generator=torch.Generator().manual_seed(0))
    t_batch = torch.full((len(labels),), t)
    output = pipe.eps_fn(labels, 1.0)(x_t, t_batch)
    x0, _ = x0_and_eps(pipe.schedule, x_t, t_batch, output, pipe.info.diffusion.prediction)
    return {"sqrt_alpha_bar": pipe.schedule.alpha_bar[t].sqrt().item(), "x0_abs_mean": x0.abs().mean().item(),
            "fraction_clipped": (x0.abs() > 1).float().mean().item(),
            "channel_means": [round(m, 3) for m in x0.mean((0, 2, 3)).tolist()]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(p.parse_args().threads)
    out = {}
    for name, (num, kw, starts) in QUALITY.items():
        pipe = Pipeline.load(f"checkpoints/{name}")
        out[name] = {"x0_on_noise": {t: x0_on_noise(pipe, t) for t in PROBE_TS},
                     "t_start": {t: evaluate(pipe, num, t_start=t, **kw) for t in starts}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
