"""Discriminator guidance for the latent Pokémon denoiser (Kim et al. 2023, "Refining Generative Process with
Discriminator Guidance in Score-based Diffusion Models"): does a critic that tells the model's samples from the
sprites, at every noise level, move its blobs towards creatures?

A small time- and class-conditioned critic d(x_t, t, y) learns, with the logistic loss, to tell noised training
latents (the checkpoint's own data options, mirror images included) from noised latents the model sampled at its
card's defaults; its logit estimates log(p_data / p_model) at each t, and `guidance.discriminator_eps_fn` adds
w grad_x of it to the model's score while sampling. Its held-out accuracy per noise level says where the two
distributions differ; the picture shows the same seed at each w; the card's metrics are measured at each w.

    .venv/bin/python -m benchmarks.pokemon_discriminator_guidance [--checkpoint checkpoints/pokemon_latent]
        [--fakes 2560] [--steps 3000] [--weights 0 1 2 4] [--interval T_LO T_HI] [--num 0]
        [--picture FILE] [--work runs/dg]

Prints JSON (progress on stderr). `--work` keeps the sampled latents (fakes.npz) and the critic
(critic.safetensors) for reruns, which then only sample.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from diffusion_core.diffusion import q_sample
from diffusion_core.evaluate import EVAL_SEED, pokemon_metrics
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.guidance import EDM2_SIGMA, discriminator_eps_fn, interval_from_sigma
from diffusion_core.models.embeddings import sinusoidal_embedding
from diffusion_core.models.unet import ResBlock
from diffusion_core.pipeline import Pipeline
from diffusion_core.sample import generate
from diffusion_core.data.datasets import to_uint8

from .pokemon_gaussian import encoded_run
from .pokemon_latent_vs_pixel import PER_CLASS

T_BUCKETS = 5  # held-out accuracy reported on this many equal ranges of t


class Critic(nn.Module):
    """logit d(x_t, t, y) for latents [N, C, H, W]: residual blocks with the time + class embedding (the UNet's),
    two stride-2 downsamplings, and a linear read-out of the whole lowest-resolution map (not a pooled one, so
    where a part sits counts)."""

    def __init__(self, channels: int, size: int, classes: int, width: int = 64, groups: int = 8):
        super().__init__()
        emb = 4 * width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = nn.Embedding(classes + 1, emb)
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(width, width, emb, groups), ResBlock(width, 2 * width, emb, groups),
                                     ResBlock(2 * width, 2 * width, emb, groups)])
        self.downs = nn.ModuleList([nn.Conv2d(width, width, 3, stride=2, padding=1),
                                    nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)])
        self.norm = nn.GroupNorm(groups, 2 * width)
        self.head = nn.Linear(2 * width * (size // 4) ** 2, 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.width)) + self.label_emb(labels)
        h = self.conv_in(x_t)
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            if i < len(self.downs):
                h = self.downs[i](h)
        return self.head(F.silu(self.norm(h)).flatten(1)).squeeze(1)


def sampled_latents(pipe: Pipeline, num: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`num` final latents of the model at its defaults, classes spread evenly in each batch, and their labels."""
    zs, ys = [], []
    for i, start in enumerate(range(0, num, batch)):
        n = min(batch, num - start)
        for out in pipe.run(n, seed=seed + i, label="all"):
            pass
        zs.append(out.x_t.cpu())
        ys.append(pipe.labels_for(n, "all").cpu())
        print(f"sampled {start + n} of {num}", file=sys.stderr, flush=True)
    return torch.cat(zs), torch.cat(ys)


def split(n: int, heldout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a random train / held-out split."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(n * heldout)
    return order[k:], order[:k]


def noised(z: torch.Tensor, y: torch.Tensor, pipe: Pipeline, g: torch.Generator, t: torch.Tensor | None = None):
    """(x_t, t, y) for latents z at random (or given) timesteps."""
    t = torch.randint(0, pipe.schedule.T, (len(z),), generator=g) if t is None else t
    return q_sample(pipe.schedule, z, t, torch.randn(z.shape, generator=g)), t, y


def train_critic(critic: Critic, real: tuple, fake: tuple, pipe: Pipeline, steps: int, batch: int,
                 seed: int) -> list[float]:
    """Logistic loss, real = 1, fake = 0, each batch half of each, fresh noise and t every time (Kim et al. 2023,
    eq. 10); returns the loss every 100 steps."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(critic.parameters(), lr=3e-4, weight_decay=1e-4)
    losses, running = [], 0.0
    for step in range(1, steps + 1):
        parts = []
        for (z, y), target in ((real, 1.0), (fake, 0.0)):
            pick = torch.randint(0, len(z), (batch // 2,), generator=g)
            parts.append((*noised(z[pick], y[pick], pipe, g), torch.full((batch // 2,), target)))
        x, t, y, target = (torch.cat(c) for c in zip(*parts))
        loss = F.binary_cross_entropy_with_logits(critic(x, t, y), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += loss.item()
        if step % 100 == 0:
            losses.append(round(running / 100, 4))
            print(f"critic step {step}: loss {losses[-1]}", file=sys.stderr, flush=True)
            running = 0.0
    return losses


@torch.no_grad()
def heldout_accuracy(critic: Critic, real: tuple, fake: tuple, pipe: Pipeline, seed: int) -> list[dict]:
    """The critic's accuracy on held-out real and sampled latents, per range of t (4 noisings of each)."""
    g, T, rows = torch.Generator().manual_seed(seed), pipe.schedule.T, []
    for b in range(T_BUCKETS):
        lo, hi = b * T // T_BUCKETS, (b + 1) * T // T_BUCKETS
        correct = []
        for (z, y), is_real in ((real, True), (fake, False)):
            for _ in range(4):
                t = torch.randint(lo, hi, (len(z),), generator=g)
                correct.append((critic(*noised(z, y, pipe, g, t)) > 0) == is_real)
        rows.append({"t": [lo, hi - 1], "accuracy": round(float(torch.cat(correct).float().mean()), 3)})
    return rows


@torch.no_grad()
def ranked_by_critic(critic: Critic, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Indices of latents from the critic's most data-like (highest logit at t = 0, its estimate of
    log p_data / p_model on clean latents) to its least: discriminator rejection sampling's order (Azadi et al.
    2019)."""
    return critic(z, torch.zeros(len(z), dtype=torch.long), y).argsort(descending=True)


def guided_pipeline(pipe: Pipeline, critic: Critic, weight: float, interval: tuple[int, int]) -> Pipeline:
    """The pipeline with its eps_fn corrected by the critic (the samplers unchanged)."""
    return pipe.with_correction(lambda fn, labels: discriminator_eps_fn(
        fn, lambda x, t: critic(x, t, labels), pipe.schedule, weight, pipe.info.diffusion.prediction, interval))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--fakes", type=int, default=2560, help="latents sampled from the model for the critic")
    p.add_argument("--steps", type=int, default=3000, help="critic training steps")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--weights", type=float, nargs="*", default=[0.0, 1.0, 2.0, 4.0])
    p.add_argument("--num", type=int, default=0, help="samples per weight for the card's metrics (0: picture only)")
    p.add_argument("--interval", type=int, nargs=2, default=None, metavar=("T_LO", "T_HI"),
                   help="correct only t_lo < t <= t_hi (default EDM2's sigma interval, as guidance.EDM2_SIGMA)")
    p.add_argument("--picture", default="")
    p.add_argument("--rank-picture", default="", help="the held-out sampled latents the critic ranks highest (top "
                   "rows) and lowest (bottom rows), decoded")
    p.add_argument("--work", default="runs/dg")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pipe, data = encoded_run(args.checkpoint)
    real_z, real_y = data.x, data.labels
    fakes_file = work / "fakes.npz"
    if fakes_file.exists():
        f = np.load(fakes_file)
        fake_z, fake_y = torch.from_numpy(f["z"]), torch.from_numpy(f["y"])
    else:
        fake_z, fake_y = sampled_latents(pipe, args.fakes, 256, seed=10_000)
        np.savez(fakes_file, z=fake_z.numpy(), y=fake_y.numpy())
    (r_tr, r_ho), (f_tr, f_ho) = split(len(real_z), 0.1, 0), split(len(fake_z), 0.1, 1)
    critic = Critic(real_z.shape[1], real_z.shape[2], pipe.info.num_classes, args.width)
    critic_file = work / "critic.safetensors"
    report = {"checkpoint": args.checkpoint, "real": len(real_z), "fakes": len(fake_z),
              "critic_parameters": sum(q.numel() for q in critic.parameters())}
    if critic_file.exists():
        critic.load_state_dict(load_file(critic_file))
    else:
        report["critic_loss"] = train_critic(critic, (real_z[r_tr], real_y[r_tr]), (fake_z[f_tr], fake_y[f_tr]),
                                             pipe, args.steps, args.batch, seed=2)
        save_file(critic.state_dict(), critic_file)
    critic.eval().requires_grad_(False)
    report["heldout_accuracy"] = heldout_accuracy(critic, (real_z[r_ho], real_y[r_ho]), (fake_z[f_ho], fake_y[f_ho]),
                                                  pipe, seed=3)
    shown = PER_CLASS * pipe.info.num_classes  # a picture's samples: two rows of them per weight
    if args.rank_picture:
        order = f_ho[ranked_by_critic(critic, fake_z[f_ho], fake_y[f_ho])]
        ends = torch.cat([order[:shown], order[-shown:]])
        save_png(image_grid(to_uint8(pipe.decode(fake_z[ends]).cpu()), nrow=shown // 2, scale=2), args.rank_picture)
    interval = tuple(args.interval or interval_from_sigma(pipe.schedule, *EDM2_SIGMA))
    report["interval"], report["weights"], rows = list(interval), {}, []
    for w in args.weights:
        guided = guided_pipeline(pipe, critic, w, interval)
        if args.picture:
            rows.append(generate(guided, shown, "all", EVAL_SEED, batch=250, progress=False)[0])
        if args.num:
            report["weights"][str(w)] = pokemon_metrics(*generate(guided, args.num, "all", EVAL_SEED, batch=250))
        print(json.dumps({str(w): report["weights"].get(str(w))}), file=sys.stderr, flush=True)
    if args.picture:
        save_png(image_grid(to_uint8(torch.cat(rows)), nrow=shown // 2, scale=2), args.picture)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
