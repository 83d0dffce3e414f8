"""Our UNet's forward pass under each speed option (fast.py): float32, channels-last, bf16 autocast, both, and
torch.compile on top (--compile), at the batches a guided 16-digit grid makes (16 one-pass, 32 doubled for CFG).

    .venv/bin/python -m benchmarks.fast_path [--checkpoint checkpoints/digits] [--threads 2] [--repeats 20] [--compile]

Prints images/s per option and batch, runs interleaved so that machine load hits all alike, with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from diffusion_core.files.card import hardware_description
from diffusion_core.fast import FastOptions, fast_model
from diffusion_core.pipeline import Pipeline

OPTIONS = {"fp32": FastOptions(), "channels_last": FastOptions(channels_last=True), "bf16": FastOptions(bf16=True),
           "bf16+channels_last": FastOptions(bf16=True, channels_last=True)}


@torch.inference_mode()
def seconds(model, batch: int, calls: int = 4) -> float:
    """Wall time of `calls` forward passes of a batch of 28x28 digits at assorted timesteps."""
    x, labels = torch.randn(batch, 1, 28, 28), torch.arange(batch) % 10
    t0 = time.perf_counter()
    for k in range(calls):
        model(x, torch.full((batch,), 999 - 250 * k), labels)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/digits")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--compile", action="store_true", help="also torch.compile (cold compile ~1 min a shape)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = Pipeline.load(args.checkpoint).model
    options = OPTIONS | ({"bf16+compile": FastOptions(bf16=True, compile=True),
                          "fp32+compile": FastOptions(compile=True)} if args.compile else {})
    models = {name: fast_model(base, o) for name, o in options.items()}
    out = {}
    for batch in (16, 32):
        for m in models.values():
            seconds(m, batch)  # warm-up (and compile)
        times = {name: 0.0 for name in models}
        for _ in range(args.repeats):
            for name, m in models.items():
                times[name] += seconds(m, batch)
        out[f"batch {batch}"] = {name: round(4 * batch * args.repeats / s, 1) for name, s in times.items()}
    print(json.dumps({"images_per_s": out, "threads": args.threads, "machine": hardware_description(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_average": os.getloadavg()},
                     indent=2))


if __name__ == "__main__":
    main()
