"""Time to a guided 4x4 digit grid on this CPU: DPM-Solver++ 10 steps and DDIM 20 steps, guidance 2; and the
distilled few-step model (distill.py) at its own steps, in float32 and under bf16 autocast (fast.py).

    .venv/bin/python -m benchmarks.digit_grid [--checkpoint checkpoints/digits] [--threads 2] [--repeats 5]
        [--distilled checkpoints/digits_fast checkpoints/digits_fast_2 ...]

Prints the median seconds per grid for each sampler (model loaded once, first run discarded as warm-up), with the
checkpoint's guidance interval, the CPU, torch's kernel level (AVX2, AVX512) and the load average: the time depends
on all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from diffusion_core.fast import FastOptions
from diffusion_core.files.card import hardware_description
from diffusion_core.pipeline import Pipeline
from diffusion_core.playground.instant import STUDENTS

RUNS = {"dpm++-10": dict(sampler="dpm++", steps=10), "ddim-20": dict(sampler="ddim", steps=20)}


def time_grid(pipe: Pipeline, repeats: int, **kw) -> float:
    """Median wall time of a 16-digit guided run (labels 0..9 spread over the grid)."""
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        pipe.generate(16, seed=r, label="all", guidance=2.0, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/digits")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--distilled", nargs="*", default=[f"checkpoints/{n}" for n in STUDENTS["digits"].values()],
                   help="few-step checkpoints to time at their own steps (none: skip)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    out = {name: round(time_grid(pipe, args.repeats, **kw), 3) for name, kw in RUNS.items()}
    for path in args.distilled:
        student = Pipeline.load(path)
        name = f"{student.info.sampling.sampler}-{student.info.sampling.steps} ({path})"
        out[name] = round(time_grid(student, args.repeats), 3)
        out[f"{name} bf16"] = round(time_grid(student.with_options(FastOptions(bf16=True)), args.repeats), 3)
    print(json.dumps({"seconds_per_4x4_grid": out, "threads": args.threads, "device": str(pipe.device),
                      "machine": hardware_description(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "guidance_interval": pipe.info.sampling.guidance_interval, "load_average": os.getloadavg()},
                     indent=2))


if __name__ == "__main__":
    main()
