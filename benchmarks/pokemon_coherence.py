"""Where the Pokémon samples' speckle comes from: colour coherence (`sprites.smooth_neighbours`, median) of

- the model's x0_pred when it is given real sprites noised to t (one step, no sampler involved), with its error:
  the RMS of x0_pred - x0 over the sprites' foreground pixels, in 1/255 units, beside the noise it was given
  (sqrt(1 - alpha_bar_t) in the same units); a denoiser that leaves its input's noise in has error ~ that noise;
  and how much of that noise the model finds, on the figures and on the white background apart: the least-squares
  slope of eps_pred on the true eps over those pixels (1: all of it; 0: none, it stays in x0_pred as texture);
- the same for a denoiser that knows nothing of sprites, a bilateral filter (Tomasi & Manduchi 1998) of
  x_t / sqrt(alpha_bar_t) with a fixed setting (`FILTER`), as a floor the trained model should clear;
- final samples under several sampler settings (100 each, seed 0, one row per class as in the card), and the
  default run with x0_pred taken from that filter at t <= 50 (`FILTER_UP_TO`): what a model that denoised the
  low-noise end as well as a plain filter does would leave there.

    .venv/bin/python -m benchmarks.pokemon_coherence [--checkpoint checkpoints/pokemon] [--num 100] [--threads 2]
                                                     [--x0-only] [--picture docs/pokemon_filter_floor.png]

Prints JSON. The sprites themselves score a median 0.38: if x0_pred on real noised sprites is already far below
that, the speckle is in the model's fit, and no sampler setting will remove it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.data.datasets import UINT8_SCALE, Dataset, load_dataset, to_uint8
from diffusion_core.data.sprites import foreground
from diffusion_core.diffusion import extract, predict_eps, q_sample, v_target, x0_and_eps
from diffusion_core.evaluate import coherence
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline

PROBE_TS = (20, 50, 100, 300, 600)
SETTINGS = {"ddim-50 eta 1 g=3 (default)": {}, "ddim-50 eta 0": dict(eta=0.0), "ddim-100": dict(steps=100),
            "dpm++-20": dict(sampler="dpm++", steps=20), "g=1": dict(guidance=1.0),
            "g=3 on t <= 600": dict(guidance_interval=(-1, 600))}
FILTER = dict(radius=3, sigma_space=2.0, range_per_noise=2.0)  # one for every t; the lowest error of 3 tried
FILTER_UP_TO = 50


def bilateral(y: torch.Tensor, sigma: float, radius: int, sigma_space: float, range_per_noise: float) -> torch.Tensor:
    """Bilateral filter (Tomasi & Manduchi 1998) of images y [N, C, H, W] that carry Gaussian noise of std sigma:
    each pixel becomes the mean of its (2 radius + 1)^2 neighbours weighted by exp(-distance^2 / 2 sigma_space^2)
    and by exp(-|colour difference|^2 / 2 C (range_per_noise sigma)^2)."""
    n, c, h, w = y.shape
    k = 2 * radius + 1
    patches = F.unfold(F.pad(y, (radius,) * 4, mode="replicate"), k).view(n, c, k * k, h, w)
    colour = (patches - y.unsqueeze(2)).pow(2).sum(1)  # [N, k*k, H, W]
    d = torch.arange(-radius, radius + 1, dtype=y.dtype, device=y.device)
    space = -(d.view(-1, 1) ** 2 + d ** 2).flatten() / (2 * sigma_space ** 2)
    weights = torch.softmax(space.view(1, -1, 1, 1) - colour / (2 * c * (range_per_noise * sigma) ** 2), dim=1)
    return (patches * weights.unsqueeze(1)).sum(2)


def model_denoiser(pipe: Pipeline):
    """(x0_pred, eps_pred) of the checkpoint's model."""
    def denoise(x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        return x0_and_eps(pipe.schedule, x_t, t, pipe.model(x_t, t, labels), pipe.info.diffusion.prediction)
    return denoise


def filter_denoiser(pipe: Pipeline):
    """(x0_pred, eps_pred) of the bilateral filter on x_t / sqrt(alpha_bar_t) (x0 plus noise of std sigma_t); every
    image of a batch at the same t, as the probe and the sampler call it."""
    def denoise(x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        a = extract(pipe.schedule.sqrt_alpha_bar, t, x_t.ndim)
        sigma = float(pipe.schedule.sqrt_one_minus_alpha_bar[t[0]] / pipe.schedule.sqrt_alpha_bar[t[0]])
        x0_pred = bilateral(x_t / a, sigma, **FILTER)
        return x0_pred, predict_eps(pipe.schedule, x_t, t, x0_pred)
    return denoise


class FilterAtCleanEnd(nn.Module):
    """The checkpoint's model with the filter's prediction at t <= t_max, in the model's own parameterisation (the
    same for every label, so guidance leaves it as it is); sampled through a Pipeline like any model."""

    def __init__(self, pipe: Pipeline, t_max: int):
        super().__init__()
        self.model, self.floor, self.t_max = pipe.model, filter_denoiser(pipe), t_max
        self.schedule, self.prediction = pipe.schedule, pipe.info.diffusion.prediction

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if int(t[0]) > self.t_max:
            return self.model(x_t, t, labels)
        x0_pred, eps_pred = self.floor(x_t, t, labels)
        return v_target(self.schedule, x0_pred, t, eps_pred) if self.prediction == "v" else eps_pred


@torch.inference_mode()
def x0_pred_probe(pipe: Pipeline, data: Dataset, num: int, t: int, denoise) -> dict:
    """Coherence and foreground RMS error (1/255) of x0_pred by `denoise` for `num` random sprites noised to step t
    (their own colour labels, seed 0), the input noise's standard deviation in the same units, and the share of
    that noise found on the figures and on the background."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.x), generator=g)[:num]
    x0, labels = data.x[idx].to(pipe.device), data.labels[idx].to(pipe.device)
    eps = torch.randn(x0.shape, generator=g).to(pipe.device)
    t_batch = torch.full((num,), t, device=pipe.device)
    x_t = q_sample(pipe.schedule, x0, t_batch, eps)
    x0_pred, eps_pred = denoise(x_t, t_batch, labels)
    mask = torch.from_numpy(foreground(to_uint8(x0))).to(x0.device)  # [N, H, W]: the sprites' own pixels
    error = (x0_pred.clamp(-1, 1) - x0).movedim(1, -1)[mask]
    dot, norm = (eps_pred * eps).sum(1), eps.pow(2).sum(1)  # [N, H, W]: summed over the channels
    found = lambda m: float(dot[m].sum() / norm[m].sum())  # noqa: E731
    return {"coherence": coherence(x0_pred), "rms_error": float(error.pow(2).mean().sqrt()) * UINT8_SCALE,
            "noise_std": float(pipe.schedule.sqrt_one_minus_alpha_bar[t]) * UINT8_SCALE,
            "noise_found_figure": found(mask), "noise_found_background": found(~mask)}


def save_picture(default: torch.Tensor, filtered: torch.Tensor, num_classes: int, path: Path) -> None:
    """Rows: the default run's first sample of each class, the same with the filter, then the second samples."""
    per_class = len(default) // num_classes  # label "all": one run of samples per class
    rows = [to_uint8(x[k::per_class][:num_classes]) for k in (0, 1) for x in (default, filtered)]
    save_png(image_grid(np.concatenate(rows), nrow=num_classes, scale=3), path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--x0-only", action="store_true", help="only the x0_pred probes (seconds), no samples")
    p.add_argument("--picture", type=Path, help="write the first two samples of each class: default, then with the "
                                                 "filter at the clean end, row by row")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    data = load_dataset("pokemon")
    probes = {t: x0_pred_probe(pipe, data, args.num, t, model_denoiser(pipe)) for t in PROBE_TS}
    floor = {t: x0_pred_probe(pipe, data, args.num, t, filter_denoiser(pipe)) for t in PROBE_TS}
    out = {"sprites": coherence(data.x)}
    out |= {f"x0_pred at t={t} on real sprites": probe["coherence"] for t, probe in probes.items()}
    out |= {f"bilateral filter at t={t} on real sprites": probe["coherence"] for t, probe in floor.items()}
    finals = {}
    for name, kw in ({} if args.x0_only else SETTINGS).items():
        finals[name] = pipe.generate(args.num, seed=0, label="all", **kw)[0]
        out[f"samples, {name}"] = coherence(finals[name])
    if not args.x0_only:
        filtered = Pipeline(FilterAtCleanEnd(pipe, FILTER_UP_TO), pipe.info, device=pipe.device).generate(
            args.num, seed=0, label="all")[0]
        out[f"samples, default with the filter's x0_pred at t <= {FILTER_UP_TO}"] = coherence(filtered)
        if args.picture:
            save_picture(finals[next(iter(SETTINGS))], filtered, pipe.info.num_classes, args.picture)
    keys = ("noise_std", "rms_error", "noise_found_figure", "noise_found_background")
    errors = {f"t={t}": {k: probe[k] for k in keys} | {f"filter_{k}": floor[t][k] for k in keys[1:]}
              for t, probe in probes.items()}
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "median_coherence": out,
                      "x0_pred_error_per_255": errors}, indent=2))


if __name__ == "__main__":
    main()
