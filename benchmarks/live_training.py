"""How long the Spiral lab's live training takes to reach the shipped spiral's quality (mean distance <= 0.02 by the
tab's own metric), through the very generator the Train button runs (diffusion_core.training.live_training.train_live).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.live_training [--objective diffusion|flow] [--steps 6000]
        [--threads 2] [--dataset spiral] [--json out.json]

Prints, per preview: step, seconds since the start (previews included), the loss, the mean distance of the preview's
500 fresh samples (DDPM 1000 steps for diffusion, Euler 100 for flow) to the data, and the machine's load average.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from diffusion_core.playground import lab

from diffusion_core.training import live_training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="spiral", choices=lab.LAB_SETS)
    p.add_argument("--objective", default="diffusion", choices=("diffusion", "flow"))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seconds", type=float, default=live_training.MAX_SECONDS)
    p.add_argument("--every", type=int, default=400, help="steps between previews (the app's: 400)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target", type=float, default=0.02)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    measure, rows, reached = lab.measure_for(args.dataset), [], None
    print(f"{args.dataset}, {args.objective}, {args.threads} thread(s), load at start {os.getloadavg()}")
    for u in live_training.train_live(lab.training_points(args.dataset), args.dataset, args.objective, args.steps,
                                      args.seconds, args.every):
        dist = measure.distance(u.samples)
        load = os.getloadavg()[0]
        rows.append({"step": u.step, "seconds": round(u.seconds, 1), "loss": round(u.losses[-1][1], 4),
                     "distance": round(dist, 4), "load": load})
        print(f"step {u.step:6d}  {u.seconds:6.1f} s  loss {u.losses[-1][1]:.4f}  distance {dist:.4f}  load {load}",
              flush=True)
        if reached is None and dist <= args.target:
            reached = rows[-1]
    print(f"reached distance <= {args.target}: {reached}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "reached": reached}, f, indent=1)


if __name__ == "__main__":
    main()
