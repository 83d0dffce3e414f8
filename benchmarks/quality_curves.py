"""Quality against sampling cost for the digits checkpoint: FLD vs steps per sampler, and a guidance sweep.

    .venv/bin/python -m benchmarks.quality_curves [--checkpoint checkpoints/digits] [--num 1000]

"DDPM" at S < 1000 steps is the ancestral sampler on a shortened plan (DDIM with eta = 1; at S = T it is
exactly DDPM). Writes docs/fld_vs_steps.png, docs/guidance_sweep.png and docs/guidance_grid.png and prints
every number as JSON. FLD is biased upwards at small N: compare only numbers measured at the same --num.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from diffusion_core.data.datasets import to_uint8  # noqa: E402
from diffusion_core.evaluate import evaluate  # noqa: E402
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline  # noqa: E402

SAMPLERS = {"DDPM (ancestral, eta=1)": dict(sampler="ddim", eta=1.0), "DDIM (eta=0)": dict(sampler="ddim", eta=0.0),
            "DPM-Solver++(2M)": dict(sampler="dpm++")}
GUIDANCE = (0.0, 1.0, 2.0, 3.0, 5.0)


def fld_vs_steps(pipe: Pipeline, steps: list[int], num: int, guidance: float) -> dict:
    """FLD and accuracy per sampler per step count."""
    return {name: {s: evaluate(pipe, num, steps=s, guidance=guidance, **kw) for s in steps}
            for name, kw in SAMPLERS.items()}


def plot_curves(curves: dict, path: Path, guidance: float, baseline: float) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, by_steps in curves.items():
        ax.plot(list(by_steps), [m["fld"] for m in by_steps.values()], marker="o", label=name)
    ax.axhline(baseline, color="grey", ls="--", lw=1, label="real vs real")
    ax.set(xscale="log", yscale="log", xlabel="sampling steps", ylabel="FLD (lower is better)",
           title=f"Digits: quality vs steps (guidance {guidance})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def guidance_sweep(pipe: Pipeline, num: int, steps: int) -> dict:
    """FLD and label accuracy at each guidance scale (DDIM), guided at every step and on the checkpoint's
    guidance interval (guidance.py) when it has one."""
    T, interval = pipe.schedule.T, pipe.info.sampling.guidance_interval
    ways = {"every step": (-1, T - 1)} | ({f"{interval[0]} < t <= {interval[1]}": interval} if interval else {})
    return {way: {g: evaluate(pipe, num, sampler="ddim", steps=steps, guidance=g, guidance_interval=iv)
                  for g in GUIDANCE} for way, iv in ways.items()}


def plot_sweep(sweep: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax2 = ax.twinx()
    for (way, by_g), style in zip(sweep.items(), ("-", "--")):
        gs = list(by_g)
        ax.plot(gs, [m["fld"] for m in by_g.values()], style, marker="o", color="tab:blue", label=f"FLD, guided {way}")
        ax2.plot(gs[1:], [100 * m["accuracy"] for m in list(by_g.values())[1:]], style, marker="s",
                 color="tab:orange", label=f"accuracy, guided {way}")
    ax.set(xlabel="guidance scale g", ylabel="FLD (lower is better)", title="Digits: guidance sweep (DDIM 20 steps)")
    ax2.set_ylabel("LeNet accuracy on the requested label (%)", color="tab:orange")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.85), fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def guidance_grid(pipe: Pipeline, path: Path, steps: int) -> None:
    """One row per guidance scale, one column per label, the same seed everywhere."""
    rows = [pipe.generate(10, seed=7, label="all", sampler="ddim", steps=steps, guidance=g)[0] for g in GUIDANCE]
    save_png(image_grid(to_uint8(torch.cat(rows).cpu()), nrow=10, scale=2), path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/digits")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--docs", type=Path, default=Path("docs"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    args.docs.mkdir(exist_ok=True)
    curves = fld_vs_steps(pipe, args.steps, args.num, args.guidance)
    baseline = next(iter(next(iter(curves.values())).values()))["real_vs_real"]
    plot_curves(curves, args.docs / "fld_vs_steps.png", args.guidance, baseline)
    sweep = guidance_sweep(pipe, args.num, 20)  # DDIM 20 steps
    plot_sweep(sweep, args.docs / "guidance_sweep.png")
    guidance_grid(pipe, args.docs / "guidance_grid.png", 20)
    print(json.dumps({"num": args.num, "fld_vs_steps": curves, "guidance_sweep": sweep}, indent=2))


if __name__ == "__main__":
    main()
