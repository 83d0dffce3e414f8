"""Two probes of a latent Pokémon model's decoder (docs/TRAINING.md): is it what turns samples into blobs, and can
shifts be made on cached latents?

- noise: training latents (unit variance) plus Gaussian noise of each std, decoded; how far decoder + encoder move
  them back (the round trip's RMS) and the decoded PSNR against the sprites; the same round trip for the model's
  own samples at its defaults, to read which noise level they sit at.
- shifts: a latent rolled by whole cells (the paper's latent filling in) against the encoding of the sprite shifted
  by as many pixels (RMS), and both decoded (PSNR against the shifted sprite).

    .venv/bin/python -m benchmarks.latent_decoder_probes [--checkpoint checkpoints/pokemon_latent] [--num 128]

Prints JSON. 128 training sprites picked with seed 0, 64 samples at seed 0; about a minute on 1 thread.
"""
from __future__ import annotations

import argparse
import json

import torch

from diffusion_core.training.autoencoder_stage import psnr

from .latent_stats import latent_run

NOISE_STDS = (0.0, 0.1, 0.2, 0.3, 0.5)
SHIFTS = ((4, 0), (0, 4), (-8, 4), (2, 0))  # pixels (dx, dy); the last is half a latent cell


def shifted(x: torch.Tensor, dx: int, dy: int, fill: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] moved right by dx and down by dy, the uncovered cells taken from fill [1, C, H, W]."""
    out = fill.expand_as(x).clone()
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float((a - b).pow(2).mean().sqrt()), 3)


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data, _ = latent_run(args.checkpoint)
    ae, g = pipe.autoencoder, torch.Generator().manual_seed(0)
    x = data.x[torch.randperm(len(data.x), generator=g)[:args.num]]
    z = ae.encode(x)
    round_trip = lambda z: rms(ae.encode(ae.decode(z, snap=False)), z)  # noqa: E731
    noise = {}
    for std in NOISE_STDS:
        zn = z + std * torch.randn(z.shape, generator=g)
        noise[str(std)] = {"round_trip_rms": round_trip(zn), "psnr": round(psnr(ae.decode(zn, snap=False), x), 2)}
    samples = None
    for samples in pipe.run(64, seed=0, label="all"):
        pass
    paper_px, paper_z = torch.ones(1, *x.shape[1:]), ae.encode(torch.ones(1, *x.shape[1:]))
    shifts = {}
    for dx, dy in SHIFTS:
        target = shifted(x, dx, dy, paper_px)
        rolled = shifted(z, dx // ae.config.factor, dy // ae.config.factor, paper_z)
        encoded = ae.encode(target)
        shifts[f"{dx},{dy}"] = {"rms_to_encoding": rms(rolled, encoded),
                                "psnr_rolled": round(psnr(ae.decode(rolled, snap=False), target), 2),
                                "psnr_encoded": round(psnr(ae.decode(encoded, snap=False), target), 2)}
    print(json.dumps({"checkpoint": args.checkpoint, "sprites": args.num, "latent_std": round(float(z.std()), 3),
                      "noise": noise, "samples_round_trip_rms": round_trip(samples.x_t), "shifts": shifts}, indent=1))


if __name__ == "__main__":
    main()
