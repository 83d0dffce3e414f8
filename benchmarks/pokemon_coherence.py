"""Where the Pokémon samples' speckle comes from: colour coherence (`sprites.smooth_neighbours`, median) of

- the model's x0_pred when it is given real sprites noised to t (one step, no sampler involved), with its error:
  the RMS of x0_pred - x0 over the sprites' foreground pixels, in 1/255 units, beside the noise it was given
  (sqrt(1 - alpha_bar_t) in the same units); a denoiser that leaves its input's noise in has error ~ that noise;
  and how much of that noise the model finds, on the figures and on the white background apart: the least-squares
  slope of eps_pred on the true eps over those pixels (1: all of it; 0: none, it stays in x0_pred as texture);
- final samples under several sampler settings (100 each, seed 0, one row per class as in the card).

    .venv/bin/python -m benchmarks.pokemon_coherence [--checkpoint checkpoints/pokemon] [--num 100] [--threads 2]
                                                     [--x0-only]

Prints JSON. The sprites themselves score a median 0.38: if x0_pred on real noised sprites is already far below
that, the speckle is in the model's fit, and no sampler setting will remove it.
"""
from __future__ import annotations

import argparse
import json

import torch

from diffusion_core.data import UINT8_SCALE, Dataset, load_dataset, to_uint8
from diffusion_core.diffusion import q_sample, x0_and_eps
from diffusion_core.evaluate import coherence
from diffusion_core.pipeline import Pipeline
from diffusion_core.sprites import foreground

PROBE_TS = (20, 50, 100, 300, 600)
SETTINGS = {"ddim-50 eta 1 g=3 (default)": {}, "ddim-50 eta 0": dict(eta=0.0), "ddim-100": dict(steps=100),
            "dpm++-20": dict(sampler="dpm++", steps=20), "g=1": dict(guidance=1.0),
            "g=3 on t <= 600": dict(guidance_interval=(-1, 600))}


@torch.inference_mode()
def x0_pred_probe(pipe: Pipeline, data: Dataset, num: int, t: int) -> dict:
    """Coherence and foreground RMS error (1/255) of x0_pred for `num` random sprites noised to step t (their own
    colour labels, seed 0), and the input noise's standard deviation in the same units."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.x), generator=g)[:num]
    x0, labels = data.x[idx].to(pipe.device), data.labels[idx].to(pipe.device)
    eps = torch.randn(x0.shape, generator=g).to(pipe.device)
    t_batch = torch.full((num,), t, device=pipe.device)
    x_t = q_sample(pipe.schedule, x0, t_batch, eps)
    x0_pred, eps_pred = x0_and_eps(pipe.schedule, x_t, t_batch, pipe.model(x_t, t_batch, labels),
                                   pipe.info.diffusion.prediction)
    mask = torch.from_numpy(foreground(to_uint8(x0))).to(x0.device)  # [N, H, W]: the sprites' own pixels
    error = (x0_pred.clamp(-1, 1) - x0).movedim(1, -1)[mask]
    dot, norm = (eps_pred * eps).sum(1), eps.pow(2).sum(1)  # [N, H, W]: summed over the channels
    found = lambda m: float(dot[m].sum() / norm[m].sum())  # noqa: E731
    return {"coherence": coherence(x0_pred), "rms_error": float(error.pow(2).mean().sqrt()) * UINT8_SCALE,
            "noise_std": float(pipe.schedule.sqrt_one_minus_alpha_bar[t]) * UINT8_SCALE,
            "noise_found_figure": found(mask), "noise_found_background": found(~mask)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--x0-only", action="store_true", help="only the x0_pred probes (seconds), no samples")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    data = load_dataset("pokemon")
    probes = {t: x0_pred_probe(pipe, data, args.num, t) for t in PROBE_TS}
    out = {"sprites": coherence(data.x)}
    out |= {f"x0_pred at t={t} on real sprites": probe["coherence"] for t, probe in probes.items()}
    for name, kw in ({} if args.x0_only else SETTINGS).items():
        out[f"samples, {name}"] = coherence(pipe.generate(args.num, seed=0, label="all", **kw)[0])
    errors = {f"t={t}": {k: probe[k] for k in ("noise_std", "rms_error", "noise_found_figure", "noise_found_background")}
              for t, probe in probes.items()}
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "median_coherence": out,
                      "x0_pred_error_per_255": errors}, indent=2))


if __name__ == "__main__":
    main()
