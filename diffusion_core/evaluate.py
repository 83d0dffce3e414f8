"""Measure a checkpoint and print the metrics as JSON.

    python -m diffusion_core.evaluate --checkpoint PATH [--sampler ... --steps ... --guidance ...] [--suite] [--write-card]

spiral: mean distance of 2,000 points to the true curve and coverage (KS of the nearest-curve t vs uniform).
moons, gaussians, checkerboard: mean distance of 2,000 points to the data's nearest point and back (coverage).
A flow model (any 2D set) is measured with Euler 100 and 8 steps and Heun 50.
digits, fashion: FLD of 2,000 images (200 per label when conditional) against the real ones' statistics under that
dataset's LeNet, its accuracy on the requested labels, and the real-vs-real baseline. pokemon: colour-class
accuracy of guided samples and a memorisation check (near copies: a sprite's colours on >= 80 % of the figure, or
its drawn lines).
`--suite` runs the settings the model card reports; `--write-card` writes them into config.json and README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data.datasets import load_dataset, to_uint8
from .data.points2d import TOY_SETS
from .data.sprites import colour_classes, is_older, smooth_neighbours
from .evaluation.lenet import DATASETS as LENET_DATASETS
from .evaluation.lenet import fld_report
from .evaluation.metrics import (COPY_AGREEMENT, LINE_COPY_IOU, closest_by_colour, closest_by_lines, data_distance,
                                 nearest_neighbour_distances, reference_points, spiral_coverage_ks, spiral_distance)
from .files.card import command_line, hardware_description, render_card
from .guidance import EDM2_SIGMA, interval_from_sigma
from .pipeline import Pipeline
from .sample import add_interval_arg, generate, write_output
from .sample import parse_args as parse_sample_args
from .samplers import FEW_STEP_SAMPLERS


EVAL_SEED = 1234  # the default seed of every evaluation (and of the model cards' metrics)
SUITES = {  # the settings each model card reports: name -> sampling kwargs (digits, fashion: see `suite`)
    "spiral": {"ddpm-1000": dict(sampler="ddpm"), "ddim-50": dict(sampler="ddim", steps=50),
               "dpm++-20": dict(sampler="dpm++", steps=20)},
    "pokemon": {"ddim-50 default guidance": dict(sampler="ddim", steps=50)},
    "flow": {"euler-100": dict(sampler="euler", steps=100), "heun-50": dict(sampler="heun", steps=50),
             "euler-8": dict(sampler="euler", steps=8)},  # any 2D flow model (train --objective flow)
}
SUITES |= dict.fromkeys(TOY_SETS, SUITES["spiral"])


def suite(pipe: Pipeline) -> dict[str, dict]:
    """The settings pipe's model card reports: name -> sampling kwargs. The guidance intervals of digits and fashion
    (every step, and EDM2's sigma interval fixed in advance, README) follow the checkpoint's own schedule."""
    if pipe.info.diffusion.prediction == "flow":
        return SUITES["flow"]
    if pipe.info.dataset not in LENET_DATASETS:
        return SUITES[pipe.info.dataset]
    if pipe.info.sampling.sampler in FEW_STEP_SAMPLERS:  # a distilled student: its own plan, at g in its range
        n = pipe.info.sampling.steps
        return {f"distilled-{n} g={g:g}": dict(sampler="distilled", steps=n, guidance=g) for g in (2.0, 1.0, 3.0)}
    every, edm2 = (-1, pipe.schedule.T - 1), interval_from_sigma(pipe.schedule, *EDM2_SIGMA)
    return {"ddim-20 g=2": dict(sampler="ddim", steps=20, guidance=2.0),
            "ddim-20 g=2 every step": dict(sampler="ddim", steps=20, guidance=2.0, guidance_interval=every),
            "ddim-20 g=2 EDM2 interval": dict(sampler="ddim", steps=20, guidance=2.0, guidance_interval=edm2),
            "ddim-20 g=0": dict(sampler="ddim", steps=20, guidance=0.0),
            "dpm++-10 g=2": dict(sampler="dpm++", steps=10, guidance=2.0)}


def coherence(x) -> float:
    """Median colour coherence (`sprites.smooth_neighbours`) of images [N, C, H, W] in [-1, 1]."""
    return float(np.median(smooth_neighbours(to_uint8(x))))


def colour_accuracy(images: np.ndarray, labels: torch.Tensor) -> float:
    """Share of uint8 sprites [N, H, W, C] whose colour class (`sprites.colour_classes`) is the asked label."""
    return float((colour_classes(images) == labels.cpu().numpy()).mean())


def evaluate_spiral(pipe: Pipeline, num: int, seed: int, **kw) -> dict:
    """Mean distance to the true spiral and coverage KS of `num` generated points."""
    x, _ = generate(pipe, num, None, seed, batch=num, **kw)
    return {"mean_distance": spiral_distance(x), "coverage_ks": spiral_coverage_ks(x), "n": num}


def evaluate_points(pipe: Pipeline, num: int, seed: int, **kw) -> dict:
    """A 2D toy set's mean distance of `num` generated points to the data (lab.data_distance: to the nearest of
    20,000 fresh points) and back (the data's 2,000 first points to the nearest sample: coverage, a dropped mode
    shows as a large value)."""
    x, _ = generate(pipe, num, None, seed, batch=num, **kw)
    ref = reference_points(pipe.info.dataset)
    back = float(nearest_neighbour_distances(ref[:2000], x).mean())
    return {"mean_distance": data_distance(x, pipe.info.dataset, ref), "coverage_distance": back, "n": num}


def evaluate_fld(pipe: Pipeline, num: int, seed: int, **kw) -> dict:
    """FLD, label accuracy and the real-vs-real baseline of `num` digits or clothes (evenly over labels when
    conditional), under the LeNet of the checkpoint's dataset."""
    label = "all" if pipe.info.num_classes and kw.get("guidance", pipe.info.sampling.guidance) != 0 else None
    x, labels = generate(pipe, num, label, seed, batch=500, **kw)
    report = fld_report(x, labels, pipe.info.dataset)
    return {k: v for k, v in report.items() if v is not None}


def pokemon_samples(pipe: Pipeline, num: int, seed: int, **kw) -> tuple:
    """The guided sprites the Pokémon metrics are measured on (one row per class) and their labels."""
    return generate(pipe, num, "all", seed, batch=250, **kw)


def evaluate_pokemon(pipe: Pipeline, num: int, seed: int, **kw) -> dict:
    """`pokemon_metrics` of `num` guided sprites, one row per class."""
    return pokemon_metrics(*pokemon_samples(pipe, num, seed, **kw))


def pokemon_metrics(x: torch.Tensor, labels: torch.Tensor) -> dict:
    """Colour-class accuracy of sprites x [n, 3, H, W] in [-1, 1] asked for `labels`, their colour coherence beside
    the sprites' own (`smooth_neighbours`), their L2 distances to the nearest sprite, and the near copies among them,
    against all 2,705 gen8 sprites, the 790 older gen7x drawings and their mirror images (whether or not a model
    trained on them): samples agreeing >= COPY_AGREEMENT in colour with one (`closest_by_colour`) or copying one's
    drawing, dark-pixel IoU >= LINE_COPY_IOU (`closest_by_lines`). The sprites' own coherence is the gen8 ones'."""
    images, num = to_uint8(x), len(x)
    everything = load_dataset("pokemon", older_drawings=True)
    train = everything.x
    gen8 = torch.tensor([not is_older(n) for n in everything.item_names])
    smooth = {"smooth_neighbours_median": coherence(x), "train_smooth_neighbours_median": coherence(train[gen8])}
    nn_samples = nearest_neighbour_distances(x, train, hflip=True)
    sprites = to_uint8(train)
    agreement, _ = closest_by_colour(images, sprites)
    lines, _ = closest_by_lines(images, sprites)
    colour_copy, line_copy = agreement >= COPY_AGREEMENT, lines >= LINE_COPY_IOU
    return {"colour_accuracy": colour_accuracy(images, labels), "n": num,
            "nn_distance_min": float(nn_samples.min()), "nn_distance_median": float(np.median(nn_samples)),
            "copy_agreement_max": float(agreement.max()), "colour_copies": int(colour_copy.sum()),
            "line_iou_median": float(np.median(lines)), "line_copies": int(line_copy.sum()),
            "near_copies": int((colour_copy | line_copy).sum())} | smooth


EVALUATORS = ({"spiral": evaluate_spiral, "pokemon": evaluate_pokemon} | dict.fromkeys(LENET_DATASETS, evaluate_fld)
              | dict.fromkeys(TOY_SETS, evaluate_points))


def evaluate(pipe: Pipeline, num: int = 2000, seed: int = EVAL_SEED, **kw) -> dict:
    """The metrics for pipe's dataset under the sampling settings `kw`, with the wall time they took."""
    if pipe.info.dataset not in EVALUATORS:
        raise ValueError(f"no evaluation for dataset {pipe.info.dataset!r}")
    t0 = time.time()
    out = EVALUATORS[pipe.info.dataset](pipe, num, seed, **{k: v for k, v in kw.items() if v is not None})
    return out | {"seconds": round(time.time() - t0, 1)}


def write_card(folder: Path, metrics: dict, command: str, pipe: Pipeline) -> None:
    """Store `metrics` and the command that measured them in config.json, draw the card's sample picture at the
    checkpoint's default settings (the same as `sample --num N --label all --seed 0 --out samples.png`), and
    re-render README.md."""
    config = json.loads((folder / "config.json").read_text())
    num = 8 * pipe.info.num_classes if pipe.info.num_classes else (64 if pipe.info.is_image else 2000)
    argv = ["--checkpoint", str(folder), "--num", str(num), *(["--label", "all"] if pipe.info.num_classes else []),
            "--seed", "0", "--out", str(folder / "samples.png")]
    args = parse_sample_args(argv)  # the picture is drawn from the very arguments the card records
    write_output(args.out, pipe, *generate(pipe, args.num, args.label, args.seed, args.batch, progress=False))
    sample_command = command_line("diffusion_core.sample", argv)
    config["metrics"] = metrics
    config["evaluation"] = {"command": command, "hardware": hardware_description(),
                            "samples": {"file": "samples.png", "command": sample_command}}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(render_card(config, metrics))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffusion_core.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--sampler", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--eta", type=float, default=None)
    p.add_argument("--guidance", type=float, default=None)
    add_interval_arg(p)
    p.add_argument("--num", type=int, default=2000)
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--suite", action="store_true", help="run the settings the model card reports")
    p.add_argument("--write-card", action="store_true", help="with --suite: write the metrics into the checkpoint")
    args = p.parse_args(argv)
    pipe = Pipeline.load(args.checkpoint)
    if args.suite:
        metrics = {name: evaluate(pipe, args.num, args.seed, **kw) for name, kw in suite(pipe).items()}
        if args.write_card:
            command = command_line("diffusion_core.evaluate", argv or sys.argv[1:])
            write_card(Path(args.checkpoint), metrics, command, pipe)
    else:
        metrics = evaluate(pipe, args.num, args.seed, sampler=args.sampler, steps=args.steps, eta=args.eta,
                           guidance=args.guidance, guidance_interval=args.guidance_interval)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
