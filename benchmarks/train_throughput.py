"""Training throughput (images/s: forward + backward + AdamW) of each shipped model on this machine.

    .venv/bin/python -m benchmarks.train_throughput [--threads 2] [--seconds 20]

Uses the presets that trained the shipped checkpoints, with their mixed precision (bf16 autocast where the
preset asks for it; random data of the right shape: speed does not depend on the pixels), so the training
budgets in the model cards can be checked against it.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from diffusion_core.diffusion import noisy_batch, training_loss
from diffusion_core.models import build_model, count_parameters
from diffusion_core.train_config import PRESETS


def shape_of(name: str) -> tuple[int, ...]:
    """Data shape of a preset's model."""
    m = PRESETS[name].model
    return (m.in_channels, m.image_size, m.image_size) if hasattr(m, "image_size") else (m.data_dim,)


def images_per_second(name: str, seconds: float, fp32: bool = False) -> tuple[float, int]:
    """Train steps on random data for about `seconds` (after 3 warm-up steps); return images/s and params."""
    config = PRESETS[name]
    model = build_model(config.model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    schedule, g = config.diffusion.make_schedule(), torch.Generator().manual_seed(0)
    x0 = torch.rand((config.batch_size, *shape_of(name)), generator=g) * 2 - 1
    labels = torch.randint(0, 10, (config.batch_size,), generator=g) if config.model.num_classes else None
    done, t0 = -3, None
    while t0 is None or time.perf_counter() - t0 < seconds:
        if done == 0:
            t0 = time.perf_counter()
        x_t, t, eps = noisy_batch(schedule, x0, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.mixed_precision == "bf16" and not fp32):
            out = model(x_t, t, labels)
        loss = training_loss(out.float(), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
    return done * config.batch_size / (time.perf_counter() - t0), count_parameters(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fp32", action="store_true", help="ignore the presets' bf16 autocast (for the A/B)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for name in PRESETS:
        ips, params = images_per_second(name, args.seconds, args.fp32)
        out[name] = {"images_per_s": round(ips, 1), "params": params, "batch": PRESETS[name].batch_size,
                     "mixed_precision": "no" if args.fp32 else PRESETS[name].mixed_precision}
    print(json.dumps({"train_throughput": out, "threads": args.threads, "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
