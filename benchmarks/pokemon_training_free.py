"""Three training-free tricks tried on the shipped Pokémon model, each against its default sampling (DDIM 50, eta 1,
g = 3; 100 samples, seed 0, one row per class as in the card), by colour coherence (`sprites.smooth_neighbours`,
median; the sprites score 0.38) and colour-class accuracy:

- autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): the model's output
  D = D_bad + w (D_good - D_bad), w = 2, where the bad model is an earlier, weaker version of it (the base-32 model
  of 7d5d1e5, or the first base-48 run of 698a250); classifier-free guidance g = 3 on top, as usual;
- restart sampling (Xu et al. 2023, "Restart sampling for improving generative processes"): noise the finished
  samples back to t = 300 and denoise them again (DDIM 15 steps, eta 1), once;
- weight averaging along the fine-tune lineage (a "model soup", Wortsman et al. 2022): the mean of the shipped
  weights and the ones before them (the runs of 047cf7f, 5a4f1a7, 41897f5), each fine-tuned from the last.

    .venv/bin/python -m benchmarks.pokemon_training_free [--num 100] [--picture docs/pokemon_training_free.png]

Needs the repository's git history: the earlier weights are read from the commits that shipped them. Prints JSON;
the picture shows each setting's first sample of every class, one row per setting, in the order printed.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffusion_core.data.datasets import to_uint8
from diffusion_core.evaluate import coherence, colour_accuracy
from diffusion_core.files.pictures import image_grid, save_png
from diffusion_core.pipeline import Pipeline

SHIPPED = "checkpoints/pokemon"
BAD = {"autoguidance w=2 by the base-32 model (7d5d1e5)": "7d5d1e5",
       "autoguidance w=2 by the first base-48 run (698a250)": "698a250"}
LINEAGE = ("047cf7f", "5a4f1a7", "41897f5")  # the fine-tunes before the shipped weights, oldest first
RESTART = dict(t_start=300, steps=15, seed=100)


class Autoguided(nn.Module):
    """D_bad + w (D_good - D_bad) on every output; the weights sum to 1, so for v-predicting models the combined v
    gives the combined eps exactly (guidance.py)."""

    def __init__(self, good: nn.Module, bad: nn.Module, w: float):
        super().__init__()
        self.good, self.bad, self.w = good, bad, w

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        bad = self.bad(x_t, t, labels)
        return bad + self.w * (self.good(x_t, t, labels) - bad)


def weights_at(commit: str, folder: Path) -> Path:
    """checkpoints/pokemon as shipped at `commit` (config.json + model.safetensors), written into folder/commit."""
    out = folder / commit
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        blob = subprocess.run(["git", "show", f"{commit}:{SHIPPED}/{name}"], capture_output=True, check=True).stdout
        (out / name).write_bytes(blob)
    return out


def soup(pipe: Pipeline, others: list[Pipeline]) -> Pipeline:
    """A pipeline whose weights are the mean of pipe's and others' (same architecture)."""
    model = copy.deepcopy(pipe.model)
    states = [p.model.state_dict() for p in (pipe, *others)]
    model.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
    return Pipeline(model, pipe.info, "soup")


def measure(x: torch.Tensor, labels: torch.Tensor) -> dict:
    """Coherence and colour-class accuracy of samples in [-1, 1]."""
    return {"coherence": coherence(x), "colour_accuracy": colour_accuracy(to_uint8(x), labels)}


def settings(pipe: Pipeline, folder: Path) -> dict:
    """name -> a function of num giving (samples, labels)."""
    bad = {name: Pipeline.load(str(weights_at(c, folder))) for name, c in BAD.items()}
    lineage = [Pipeline.load(str(weights_at(c, folder))) for c in LINEAGE]

    def default(num, p=pipe):
        return p.generate(num, seed=0, label="all")

    shipped = functools.cache(default)  # the default samples, drawn once: restart starts from them

    def restart(num):
        x, labels = shipped(num)
        return pipe.generate(num, label=labels, x0=x, **RESTART)[0], labels

    out = {"default": shipped}
    out |= {name: lambda num, b=b: default(num, Pipeline(Autoguided(pipe.model, b.model, 2.0), pipe.info))
            for name, b in bad.items()}
    out["restart from t=300 once"] = restart
    out["soup of the last 2 runs"] = lambda num: default(num, soup(pipe, lineage[-1:]))
    out["soup of the last 4 runs"] = lambda num: default(num, soup(pipe, lineage))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--picture", type=Path, help="write the first sample of each class, one row per setting")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.load(SHIPPED)
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in settings(pipe, Path(tmp)).items():
            x, labels = run(args.num)
            results[name] = measure(x, labels)
            rows.append(to_uint8(x)[np.unique(labels.numpy(), return_index=True)[1]])
    if args.picture:
        save_png(image_grid(np.concatenate(rows), nrow=len(rows[0]), scale=3), args.picture)
    print(json.dumps({"checkpoint": SHIPPED, "num": args.num, "settings": results}, indent=2))


if __name__ == "__main__":
    main()
