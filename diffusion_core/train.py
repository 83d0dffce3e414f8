"""Train a denoiser (Ho et al. 2020, Algorithm 1) on Hugging Face Accelerate and write a checkpoint folder.

    python -m diffusion_core.train --dataset spiral|digits|pokemon [--config FILE] --out checkpoints/NAME
    python -m diffusion_core.train --dataset moons --objective flow --coupling ot --out checkpoints/moons_flow
    python -m diffusion_core.train --dataset pokemon --stage autoencoder --out checkpoints/pokemon_autoencoder

Runs the same under `accelerate launch --num_processes N -m diffusion_core.train ...` on several GPUs
(or CPU processes). Resumes from OUT/train_state when it exists. The shipped weights are the EMA ones, in float16.
`--init-from CHECKPOINT` starts a new run (fresh optimiser and learning-rate schedule) from a checkpoint's
weights; its card then lists every command of the lineage, in order.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from .files.card import command_line
from .flow import COUPLINGS
from .files.checkpoint import CheckpointError
from .training.config import OBJECTIVES, TOY_DATASETS, TrainConfig, load_train_config, with_objective
from .training.loop import fit, setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m diffusion_core.train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=["spiral", "digits", "pokemon", "fashion", *TOY_DATASETS])
    p.add_argument("--objective", default="diffusion", choices=OBJECTIVES,
                   help="flow: flow matching, the 2D MLP predicting the velocity on straight paths (Euler/Heun)")
    p.add_argument("--coupling", default=None, choices=COUPLINGS,
                   help="flow matching's pairing of noise with data in a batch: 'independent' (at random, the "
                        "default) or 'ot' (a minibatch optimal-transport plan: straighter paths, Tong et al. 2023)")
    p.add_argument("--stage", default="denoiser", choices=["denoiser", "autoencoder", "latent", "distill"],
                   help="latent diffusion's two stages: 'autoencoder', then 'latent' (a denoiser on its latents); "
                        "their presets are DATASET_autoencoder and DATASET_latent. 'distill': a few-step student of "
                        "the --init-from checkpoint (training/distill.py; --config overrides DistillConfig)")
    p.add_argument("--config", default=None, help="JSON file overriding fields of the dataset's preset")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder, e.g. checkpoints/digits")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides the preset)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--stop-after", type=int, default=None, help="stop at this step (resume later)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's EMA weights (fine-tuning; may equal --out); the card records "
                        "its training commands before this one")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig a command line asks for: the dataset's preset, then --config, then the flags."""
    preset = "digits" if args.dataset == "fashion" else args.dataset
    preset += "" if args.stage == "denoiser" else f"_{args.stage}"
    config = load_train_config(preset, args.config, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    config = with_objective(config, getattr(args, "objective", "diffusion"))
    config = replace(config, coupling=getattr(args, "coupling", None) or config.coupling)
    return replace(config, dataset="fashion") if args.dataset == "fashion" else config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = command_line("diffusion_core.train", argv or sys.argv[1:])
    if args.stage == "distill":
        return distill_main(args, command)
    try:  # only what a user can get wrong: a bad --config, a missing or mismatched --init-from, a foreign state,
        config = config_from_args(args)  # a dataset not fetched yet
        run = setup(config, args.out, args.init_from)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fit(run, config, args.out, command, args.stop_after)
    return 0


def distill_main(args: argparse.Namespace, command: str) -> int:
    """`--stage distill`: progressive distillation of --init-from into OUT/steps_N (training/distill.py)."""
    from .training.distill import distill, load_distill_config
    if args.init_from is None:
        print("error: --stage distill needs --init-from TEACHER", file=sys.stderr)
        return 2
    cfg = load_distill_config(args.config, batch_size=args.batch_size, seed=args.seed)
    distill(args.init_from, args.out, cfg, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
