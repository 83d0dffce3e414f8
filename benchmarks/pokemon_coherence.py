"""Where the Pokémon samples' speckle comes from: colour coherence (`sprites.smooth_neighbours`, median) of

- the model's x0_pred when it is given real sprites noised to t (one step, no sampler involved), and
- final samples under several sampler settings (100 each, seed 0, one row per class as in the card).

    .venv/bin/python -m benchmarks.pokemon_coherence [--checkpoint checkpoints/pokemon] [--num 100] [--threads 2]

Prints JSON. The sprites themselves score a median 0.38: if x0_pred on real noised sprites is already far below
that, the speckle is in the model's fit, and no sampler setting will remove it.
"""
from __future__ import annotations

import argparse
import json

import torch

from diffusion_core.data import Dataset, load_dataset
from diffusion_core.diffusion import q_sample, x0_and_eps
from diffusion_core.evaluate import coherence
from diffusion_core.pipeline import Pipeline

PROBE_TS = (100, 300, 600)
SETTINGS = {"ddim-50 eta 1 g=3 (default)": {}, "ddim-50 eta 0": dict(eta=0.0), "ddim-100": dict(steps=100),
            "dpm++-20": dict(sampler="dpm++", steps=20), "g=1": dict(guidance=1.0),
            "g=3 on t <= 600": dict(guidance_interval=(-1, 600))}


@torch.inference_mode()
def x0_pred_coherence(pipe: Pipeline, data: Dataset, num: int, t: int) -> float:
    """Coherence of x0_pred for `num` random sprites noised to step t (their own colour labels, seed 0)."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.x), generator=g)[:num]
    x0, labels = data.x[idx].to(pipe.device), data.labels[idx].to(pipe.device)
    eps = torch.randn(x0.shape, generator=g).to(pipe.device)
    t_batch = torch.full((num,), t, device=pipe.device)
    x_t = q_sample(pipe.schedule, x0, t_batch, eps)
    x0_pred, _ = x0_and_eps(pipe.schedule, x_t, t_batch, pipe.model(x_t, t_batch, labels), pipe.info.diffusion.prediction)
    return coherence(x0_pred)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    data = load_dataset("pokemon")
    out = {"sprites": coherence(data.x)}
    out |= {f"x0_pred at t={t} on real sprites": x0_pred_coherence(pipe, data, args.num, t) for t in PROBE_TS}
    for name, kw in SETTINGS.items():
        out[f"samples, {name}"] = coherence(pipe.generate(args.num, seed=0, label="all", **kw)[0])
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "median_coherence": out}, indent=2))


if __name__ == "__main__":
    main()
