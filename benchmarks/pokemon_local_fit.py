"""How closely do trained denoisers compute the local score machine they were taught? At several t, training latents
are noised (q_sample) and each denoiser's x0_pred is set beside the LS machine's (`local_score.local_targets`, the
run's targets): the RMS gap per latent value, with the machine's own distance from the clean latent for scale.

    .venv/bin/python -m benchmarks.pokemon_local_fit --models checkpoints/pokemon_latent \\
        configs/pokemon_latent_localnet.json@runs/pokemon_latent_localnet [--spec 5@400:3] [--num 256] [--threads 2]

A model is a checkpoint folder, or CONFIG@RUN: a training config file and a run folder whose saved state's EMA
weights are read (a run in progress). Labels are the examples' own; prints JSON (each model's to stderr as it
comes).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from diffusion_core.diffusion import q_sample, x0_and_eps
from diffusion_core.local_score import PatchBank, local_targets
from diffusion_core.models import build_model
from diffusion_core.pipeline import Pipeline
from diffusion_core.training.config import load_train_config
from diffusion_core.training.state import load_train_state

from .latent_stats import draw, latent_run, training_latents


def load_denoiser(spec: str) -> tuple[torch.nn.Module, str]:
    """(EMA network, its name) of a checkpoint folder or of CONFIG@RUN (a run's saved state)."""
    if "@" not in spec:
        return Pipeline.load(spec).model, spec
    config_path, run = spec.split("@", 1)
    state = load_train_state(run)
    if state is None:
        raise SystemExit(f"{run}: no saved training state")
    model = build_model(load_train_config("pokemon_latent", config_path).model)
    model.load_state_dict(state["ema"])
    return model.eval(), f"{run} (step {state['step']})"


def gaps(model: torch.nn.Module, pipe: Pipeline, bank: PatchBank, z: torch.Tensor, labels: torch.Tensor,
         spec: str, ts: list[int], seed: int) -> dict[int, dict]:
    """Per t: RMS of (model x0 - machine x0) and of (machine x0 - z), over the latents z with their labels."""
    gen, out = torch.Generator().manual_seed(seed), {}
    for step in ts:
        t = torch.full((len(z),), step, dtype=torch.long)
        x_t = q_sample(pipe.schedule, z, t, torch.randn(z.shape, generator=gen))
        machine, _ = local_targets(pipe.schedule, x_t, t, labels, bank, spec)
        x0, _ = x0_and_eps(pipe.schedule, x_t, t, model(x_t, t, labels), pipe.info.diffusion.prediction)
        rms = lambda d: round(d.square().mean().sqrt().item(), 4)  # noqa: E731
        out[step] = {"model_vs_machine": rms(x0 - machine), "machine_vs_clean": rms(machine - z),
                     "model_vs_clean": rms(x0 - z)}
    return out


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="checkpoint folders or CONFIG@RUN")
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent", help="the autoencoder and data")
    p.add_argument("--spec", default="5@400:3")
    p.add_argument("--t", nargs="+", type=int, default=[100, 300, 500, 700, 850, 950])
    p.add_argument("--num", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data, _ = latent_run(args.checkpoint)
    latents, labels = training_latents(pipe, data)
    bank = PatchBank(latents, labels)
    pick = draw(len(latents), args.num, args.seed)
    result = {"spec": args.spec, "num": args.num, "by_model": {}}
    for spec in args.models:
        model, name = load_denoiser(spec)
        result["by_model"][name] = gaps(model, pipe, bank, latents[pick], labels[pick], args.spec, args.t, args.seed)
        print(json.dumps({name: result["by_model"][name]}), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
