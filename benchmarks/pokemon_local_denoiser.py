"""Do mosaics of real sprites read as creatures? The training-free local score machine (`diffusion_core.local_score`,
Kamb and Ganguli 2024) in the sprite latent space: each latent cell follows the training latents whose patch around
it matches x_t. It samples (DDIM 20, eta 0, the colour class's latents, guidance g against all of them) at several
patch specs, decodes with the checkpoint's autoencoder and measures the samples with the Pokémon metrics
(`evaluate.pokemon_metrics`): are the mosaics creatures, and are they copies? With `--unet-below T` the checkpoint's
own denoiser (at its card's guidance) takes over at t <= T: does it finish the machine's layouts as creatures?

    .venv/bin/python -m benchmarks.pokemon_local_denoiser [--checkpoint checkpoints/pokemon_latent] [--num 80] \\
        [--patches 3 5 7] [--bank N] [--unet-below T] [--picture docs/pokemon_local_denoiser.png] [--threads 2]

Prints JSON (each result to stderr as it comes); the picture has one row per patch spec and T, in that order, the
first 16 samples (the same seeds and labels in each row).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from diffusion_core.data.datasets import to_uint8
from diffusion_core.diffusion import x0_and_eps
from diffusion_core.evaluate import pokemon_metrics
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.local_score import PatchBank, local_eps_fn
from diffusion_core.samplers import sample

from .latent_stats import draw, latent_run, training_latents


def handed_over(machine, pipe, labels: torch.Tensor, t_switch: int):
    """eps_fn that is the machine's above t_switch and the checkpoint's denoiser's (its eps, at the card's guidance)
    at or below it."""
    model = pipe.eps_fn(labels, pipe.info.sampling.guidance)

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if int(t[0]) > t_switch:
            return machine(x_t, t)
        return x0_and_eps(pipe.schedule, x_t, t, model(x_t, t), pipe.info.diffusion.prediction)[1]
    return eps_fn


def mosaics(pipe, bank: PatchBank, labels: torch.Tensor, spec: str, seed: int, g: float = 1.0, steps: int = 20,
            eta: float = 0.0, chunk: int = 16, unet_below: int = -1) -> torch.Tensor:
    """Decoded samples [num, 3, H, W] of the LS machine at patch `spec` and guidance g, DDIM from the noise of
    `seed`; the checkpoint's denoiser takes the steps at t <= unet_below (-1: none)."""
    shape = (len(labels), *bank.x.shape[1:])
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(shape, generator=gen)
    out = []
    for i in range(0, len(labels), chunk):
        allowed = labels[i:i + chunk, None] == bank.labels[None]
        eps_fn = local_eps_fn(pipe.schedule, bank, spec, allowed, g)
        eps_fn = eps_fn if unet_below < 0 else handed_over(eps_fn, pipe, labels[i:i + chunk], unet_below)
        step = None
        for step in sample(eps_fn, pipe.schedule, x_T[i:i + chunk].shape, generator=gen, sampler="ddim",
                           steps=steps, eta=eta, x_T=x_T[i:i + chunk]):
            pass
        out.append(pipe.decode(step.x_t))
    return torch.cat(out)


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=80)
    p.add_argument("--patches", nargs="+", default=["3", "5", "7"],
                   help='patch sizes in latent cells: "P", or "P_hi@tau:P_lo" (P_hi above t = tau, P_lo below)')
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bank", type=int, default=0, help="keep this many training latents, drawn at random (0: all)")
    p.add_argument("--unet-below", type=int, nargs="+", default=[-1],
                   help="the checkpoint's denoiser takes the steps at t <= T, a row for each T (-1: the machine all "
                        "the way); results are keyed 'SPEC' or, for T >= 0, 'SPEC unet<=T'")
    p.add_argument("--picture", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data, _ = latent_run(args.checkpoint)
    latents, bank_labels = training_latents(pipe, data)
    if args.bank:
        keep = draw(len(latents), args.bank, args.seed)
        latents, bank_labels = latents[keep], bank_labels[keep]
    bank = PatchBank(latents, bank_labels)
    classes = int(data.labels.max()) + 1
    labels = torch.arange(args.num) % classes
    rows, results = [], {}
    for spec in args.patches:
        for t_switch in args.unet_below:
            key = spec if t_switch < 0 else f"{spec} unet<={t_switch}"
            x = mosaics(pipe, bank, labels, spec, args.seed, args.guidance, args.steps, args.eta,
                        unet_below=t_switch)
            results[key] = pokemon_metrics(x, labels)
            rows.append(x[:16])
            print(json.dumps({"patch": key, **results[key]}), file=sys.stderr, flush=True)
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "guidance": args.guidance, "steps": args.steps,
                      "eta": args.eta, "bank": len(bank.x), "by_patch": results}, indent=1))
    if args.picture:
        save_png(image_grid(to_uint8(torch.cat(rows)), nrow=16, pad=2, scale=2), args.picture)


if __name__ == "__main__":
    main()
