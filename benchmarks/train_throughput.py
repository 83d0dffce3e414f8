"""Training throughput (images/s: forward + backward + AdamW) of each shipped model on this machine.

    .venv/bin/python -m benchmarks.train_throughput [--threads 2] [--seconds 20]
    .venv/bin/python -m benchmarks.train_throughput --dataset pokemon --config FILE [--seconds 20]

Uses the presets that trained the shipped checkpoints, with their mixed precision (bf16 autocast where the
preset asks for it; random data of the right shape: speed does not depend on the pixels), so the training
budgets in the model cards can be checked against it. With --dataset, it times the training command's own loop
(`train.setup` + `train.train_step`: real data, augmentation, EMA, on the device the command would use) for
that preset updated by --config, which sizes `--steps` to a time budget (tools/gpu_pokemon.sh).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from diffusion_core.diffusion import noisy_batch, training_loss
from diffusion_core.models import build_model, count_parameters
from diffusion_core.training.config import PRESETS, load_train_config
from diffusion_core.training.loop import setup, train_step


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


def loop_images_per_second(dataset: str, config_file: str | None, seconds: float, warmup: int = 10) -> dict:
    """Images/s of the training command's loop for `dataset`'s preset updated by `config_file`, timed over about
    `seconds` after `warmup` steps (in a throw-away output folder; nothing is saved)."""
    config = load_train_config(dataset, config_file)
    with tempfile.TemporaryDirectory() as out:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON alone
            run = setup(config, Path(out))
        for step in range(warmup):
            train_step(run, config, step)  # ends in loss.item(): the device has finished each step
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            train_step(run, config, warmup + done)
            done += 1
        elapsed = time.perf_counter() - t0
    per_step = config.batch_size * config.grad_accum * run.acc.num_processes
    return {"images_per_s": round(done * per_step / elapsed, 1), "steps_per_s": round(done / elapsed, 3),
            "batch": per_step, "params": count_parameters(run.acc.unwrap_model(run.model)),
            "device": str(run.acc.device), "mixed_precision": run.acc.mixed_precision, "config": config_file}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fp32", action="store_true", help="ignore the presets' bf16 autocast (for the A/B)")
    p.add_argument("--dataset", default=None, choices=sorted(PRESETS),
                   help="time the training command's own loop for this preset (with --config) instead")
    p.add_argument("--config", default=None, help="with --dataset: JSON file overriding fields of the preset")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset is not None:
        print(json.dumps({"train_loop": loop_images_per_second(args.dataset, args.config, args.seconds),
                          "threads": args.threads, "load_average": os.getloadavg()}, indent=2))
        return
    out = {}
    for name in PRESETS:
        ips, params = images_per_second(name, args.seconds, args.fp32)
        out[name] = {"images_per_s": round(ips, 1), "params": params, "batch": PRESETS[name].batch_size,
                     "mixed_precision": "no" if args.fp32 else PRESETS[name].mixed_precision}
    print(json.dumps({"train_throughput": out, "threads": args.threads, "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
