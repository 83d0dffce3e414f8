"""The Pokémon tab's final status lines for the two runs the README shows, from the code the tab runs.

    .venv/bin/python -m benchmarks.pokemon_tab_status [--checkpoint checkpoints/pokemon] [--threads 2]

- recolour: the tab's example sprite (static/examples/pokemon.png) noised to t = 700 and denoised towards 'blue'
  at the checkpoint's sampling defaults, 9 samples, seed 0 (docs/app_pokemon_recolour.png, taken by
  tests/test_browser.py): how many samples have the asked colour class.
- from noise: 'blue', 12 steps, 9 samples, seed 0, otherwise the defaults (docs/app_pokemon.png): the colour
  classes and the line-copy check (how close the closest sample comes to redrawing a training sprite).
Each run goes through playground.image_stream, as the page's does; the line printed is its last status.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffusion_core.pipeline import Pipeline
from diffusion_core.playground import runs as pg
from diffusion_core.playground.sketch import enlarged, sketch_to_sprite

EXAMPLE = Path(__file__).resolve().parent.parent / "static" / "examples" / "pokemon.png"
RUNS = {"recolour": dict(steps=None, t_start=700), "from noise": dict(steps=12, t_start=None)}


def final_status(pipe: Pipeline, steps: int | None, t_start: int | None) -> str:
    """The last status line of a blue run of 9 samples, seed 0, at the checkpoint's defaults otherwise."""
    d = pipe.info.sampling
    s = pg.check_settings(pipe, "pokemon", d.sampler, steps or d.steps, d.eta, d.guidance, "blue", 0, 9, 0.04,
                          t_start)
    x0 = None if t_start is None else sketch_to_sprite(enlarged(np.asarray(Image.open(EXAMPLE).convert("RGB")), 4))
    frame = None
    for frame in pg.image_stream(pipe, s, x0):
        pass
    return frame.status


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(args.checkpoint)
    out = {name: final_status(pipe, **run) for name, run in RUNS.items()}
    print(json.dumps({**out, "checkpoint": pipe.source, "load_average": os.getloadavg()}, indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
