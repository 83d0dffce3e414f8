"""Curved against straight: how far the Spiral lab's shipped models' sampled paths stray from straight lines, and
how close they land to the data in 1, 2, 4 and 8 steps, by the page's own measures (lab_views.straightness: path
length over the straight distance from start to end; lab.Measure.distance), from the page's default noise.

    .venv/bin/python -m benchmarks.flow_paths [--baseline DIR] [--sets spiral moons ...] [--seed 0] [--num 1000]
        [--threads 1]

Last, the cost of the OT coupling at the training batch (1,000 points): flow.ot_noise_for against one training step
of the flow MLP without it (median of 20 each, interleaved). Rows per dataset: DDIM (eta 0, the shipped diffusion model), Euler on the shipped flow model (its card says its
coupling), and with --baseline DIR Euler on DIR/NAME_flow, e.g. the independent-coupling checkpoints of an older
commit (`git worktree add /tmp/indep 474514a`, then --baseline /tmp/indep/checkpoints).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from diffusion_core.device import make_generator
from diffusion_core.diffusion import denoising_loss, noisy_batch
from diffusion_core.flow import ot_noise_for
from diffusion_core.models import build_model
from diffusion_core.pipeline import Pipeline
from diffusion_core.playground import lab, lab_views
from diffusion_core.training.config import PRESETS, with_objective

ROOT = Path(__file__).resolve().parent.parent


def coupling_of(folder: Path) -> str:
    """The coupling a flow checkpoint was trained with (independent before the field existed)."""
    config = json.loads((folder / "config.json").read_text())
    return config["training"]["config"].get("coupling", "independent")


def row(pipe: Pipeline, sampler: str, x_T: torch.Tensor, measure: lab.Measure) -> tuple[list[float], list[float]]:
    """(straightness, distance) of `pipe` from x_T at each of lab_views.FEW_STEPS."""
    runs = [lab_views.run_from(pipe, x_T, sampler, k, "") for k in lab_views.FEW_STEPS]
    return [lab_views.straightness(r.paths) for r in runs], [measure.distance(r.final) for r in runs]


def coupling_cost(repeats: int = 20) -> tuple[float, float]:
    """(ms of an OT pairing of a training batch, ms of a training step of the flow MLP with random pairing)."""
    config = with_objective(PRESETS["spiral"], "flow")
    model, schedule, gen = build_model(config.model), config.diffusion.make_schedule(), torch.Generator()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    x0 = lab.training_points("spiral")[:config.batch_size]

    def step() -> None:
        x_t, t, eps = noisy_batch(schedule, x0, gen, "flow")
        loss = denoising_loss(config.diffusion, schedule, model(x_t, t), x0, t, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = {"ot": [], "step": []}
    for _ in range(repeats):
        for name, fn in (("ot", lambda: ot_noise_for(x0, torch.randn(x0.shape, generator=gen), gen)), ("step", step)):
            start = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - start))
    return statistics.median(times["ot"]), statistics.median(times["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, default=None, help="a checkpoints folder with other NAME_flow models")
    p.add_argument("--sets", nargs="+", default=list(lab.LAB_SETS), choices=lab.LAB_SETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    steps = "/".join(f"{k}" for k in lab_views.FEW_STEPS)
    print(f"| set | model | path length / straight distance, {steps} steps | distance to the data, {steps} steps |")
    print("|---|---|---|---|")
    for name in args.sets:
        x_T = torch.randn((args.num, 2), generator=make_generator(args.seed, "cpu"))
        measure = lab.measure_for(name)
        folders = [(ROOT / "checkpoints" / name, "ddim"), (ROOT / "checkpoints" / f"{name}_flow", "euler")]
        if args.baseline is not None:
            folders.append((args.baseline / f"{name}_flow", "euler"))
        for folder, sampler in folders:
            pipe = Pipeline.load(str(folder), device=torch.device("cpu"))
            label = "DDIM" if sampler == "ddim" else f"Euler, {coupling_of(folder)} coupling"
            bends, dists = row(pipe, sampler, x_T, measure)
            print(f"| {name} | {label} | {' / '.join(f'{b:.3f}' for b in bends)} | "
                  f"{' / '.join(f'{d:.3f}' for d in dists)} |", flush=True)
    ot_ms, step_ms = coupling_cost()
    print(f"OT pairing of 1,000 points {ot_ms:.1f} ms, a training step without it {step_ms:.1f} ms "
          f"({args.threads} thread(s), load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
