"""The Spiral lab's samplers against steps: the mean distance to the data of 2,000 points from each shipped 2D
diffusion model (spiral, moons, 8 Gaussians, checkerboard), DDIM (eta 0) and DPM-Solver++ at 1 to 100 steps,
DDPM at all T steps, from one seed's noise.

    .venv/bin/python -m benchmarks.lab_sampler_curves [--num 2000] [--seed 0]

Writes benchmarks/lab_sampler_curves.json, the table the Spiral tab's "Samplers side by side" shows beside its
run (lab_views.steps_table), and prints it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusion_core.pipeline import Pipeline
from diffusion_core.playground.lab import LAB_SETS, measure_for

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "lab_sampler_curves.json"
STEPS = (1, 2, 5, 10, 20, 50, 100)


def curves(name: str, num: int, seed: int) -> dict:
    """{sampler: {steps: mean distance}} for the shipped diffusion model of dataset `name`."""
    pipe, measure = Pipeline.load(str(ROOT / "checkpoints" / name), device=torch.device("cpu")), measure_for(name)

    def distance(sampler: str, steps: int | None) -> float:
        x, _ = pipe.generate(num, seed=seed, sampler=sampler, steps=steps, eta=0.0)
        return round(measure.distance(x), 4)

    return {"ddpm": {pipe.schedule.T: distance("ddpm", None)},
            **{sampler: {s: distance(sampler, s) for s in STEPS} for sampler in ("ddim", "dpm++")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"num": args.num, "seed": args.seed, "curves": {name: curves(name, args.num, args.seed)
                                                             for name in LAB_SETS}}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
