"""At which noise level does the latent Pokémon denoiser lose a creature? Two probes on training sprites, which a
model that drew creatures would give back:

- from x_t: a sprite's own latent noised to t (SDEdit, Meng et al. 2022), then denoised by the model (DDIM 20,
  eta 0, g = 1: deterministic, unguided); the RMS of the result from the sprite's latent, against that of x_t;
- one step: the RMS error of the model's x0_pred (conditional, unguided) at each level, on 512 training latents
  with fixed noise: how well it has learnt each noise level on the data it saw (the loss, level by level), beside
  the same for the exact denoiser of the training latents themselves (the posterior mean over them and their
  mirror images, the label's only; Karras et al. 2022 eq. 57): what a network that held every latent would reach;
- in its silhouette: the sprite's figure as the hole and white paper known outside (RePaint without resampling,
  `editing.inpaint_final`, the checkpoint's defaults): can the model fill a creature's outline when it is given one?

    .venv/bin/python -m benchmarks.pokemon_where_blobs [--checkpoint checkpoints/pokemon_latent] [--num 12] \\
        [--picture docs/pokemon_where_blobs.png]

Prints JSON; the picture has one row per sprite: the sprite, its reconstruction, the model's result from each t,
the silhouette and the model's filling of it. About 3 minutes on 1 thread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusion_core.data.datasets import to_uint8
from diffusion_core.data.sprites import foreground
from diffusion_core.diffusion import q_sample, x0_and_eps
from diffusion_core.editing import inpaint_final
from diffusion_core.files.pictures import image_grid, save_png

from .latent_decoder_probes import rms
from .latent_stats import draw, latent_run, training_latents

LEVELS = (100, 200, 300, 400, 600, 800)
ONE_STEP_LEVELS = (100, 200, 400, 600, 800, 900, 950, 990)


def noised(pipe, z0: torch.Tensor, t_level: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, x_t): latents z0 noised to t_level with the noise of `seed` (q(x_t | x0), Ho et al. 2020 eq. 4)."""
    t = torch.full((len(z0),), t_level, dtype=torch.long)
    return t, q_sample(pipe.schedule, z0, t, torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed)))


def x0_errors(pipe, z0: torch.Tensor, labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
              t_level: int) -> dict:
    """RMS of the model's one-step x0_pred from latents z0 noised to t_level (seed 2), its labels given, g = 1, and
    of the exact denoiser of the latents `bank`: E[z | x_t, label] = sum_i softmax_i(-|x_t - a z_i|^2 / 2 s^2) z_i."""
    t, x_t = noised(pipe, z0, t_level, seed=2)
    x0_pred, _ = x0_and_eps(pipe.schedule, x_t, t, pipe.eps_fn(labels, 1.0)(x_t, t), pipe.info.diffusion.prediction)
    a, s = float(pipe.schedule.sqrt_alpha_bar[t_level]), float(pipe.schedule.sqrt_one_minus_alpha_bar[t_level])
    logits = -torch.cdist(x_t.flatten(1), a * bank.flatten(1)).pow(2) / (2 * s * s)
    logits = logits.masked_fill(labels[:, None] != bank_labels[None], float("-inf"))
    exact = (logits.softmax(1) @ bank.flatten(1)).view_as(z0)
    return {"model": rms(x0_pred, z0), "exact": rms(exact, z0)}


def from_level(pipe, z0: torch.Tensor, labels: torch.Tensor, t_start: int) -> torch.Tensor:
    """Latents z0 noised to t_start (seed 1) and denoised by the model, deterministic and unguided."""
    _, x_t = noised(pipe, z0, t_start, seed=1)
    out = None
    for out in pipe.run(len(z0), seed=1, label=labels, x_T=x_t, t_start=t_start, sampler="ddim", steps=20,
                        eta=0.0, guidance=1.0):
        pass
    return out.x_t


def save_rows(columns: list[torch.Tensor], path: Path) -> None:
    """Images [N, 3, H, W] in [-1, 1], one tensor per column (a row per image), as a picture at twice the size."""
    save_png(image_grid(to_uint8(torch.stack(columns, 1).flatten(0, 1)), nrow=len(columns), pad=0, scale=2), path)


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=12)
    p.add_argument("--picture", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data, _ = latent_run(args.checkpoint)
    pick = draw(len(data.x), args.num, 0)
    x, labels = data.x[pick], data.labels[pick]
    z0 = pipe.encode(x)
    columns, levels = [x, pipe.decode(z0)], {}
    for t_start in LEVELS:
        z = from_level(pipe, z0, labels, t_start)
        noise = float(pipe.schedule.sqrt_one_minus_alpha_bar[t_start])
        levels[str(t_start)] = {"rms_to_sprite": rms(z, z0), "noise_std": round(noise, 3)}
        columns.append(pipe.decode(z))
    many = draw(len(data.x), 512, 1)
    bank, bank_labels = training_latents(pipe, data)
    one_step = {str(t): x0_errors(pipe, bank[many], bank_labels[many], bank, bank_labels, t) for t in ONE_STEP_LEVELS}
    holes = torch.from_numpy(foreground(to_uint8(x)))
    paper = torch.ones(x.shape[1:])
    filled = [inpaint_final(pipe, paper, hole, 1, seed=1, label=int(y))[0] for hole, y in zip(holes, labels)]
    columns += [torch.where(holes[:, None], -0.5, 1.0).expand_as(x), torch.stack(filled)]
    print(json.dumps({"checkpoint": args.checkpoint, "sprites": args.num, "latent_std": round(float(z0.std()), 3),
                      "from_t": levels, "one_step_x0_rms": one_step},
                     indent=1))
    if args.picture:
        save_rows(columns, args.picture)


if __name__ == "__main__":
    main()
