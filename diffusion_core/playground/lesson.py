"""What the How it works tab computes: the forward process on an example, and one call of a trained network.

Pure Python/torch/numpy/PIL: it never imports gradio (app.py turns these into page events).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import from_uint8, make_spiral
from ..diffusion import q_sample, x0_and_eps
from ..pipeline import MAX_GUIDANCE, Pipeline
from ..schedules import make_schedule
from .runs import check_label, check_number


def load_example(path: Path | None, n_points: int = 1000) -> torch.Tensor:
    """An example x0: an image file as [1, C, H, W] in [-1, 1], or (path None) points [n, 2] on the spiral."""
    from PIL import Image

    if path is None:
        return make_spiral(n_points, torch.Generator().manual_seed(0))
    return from_uint8(np.array(Image.open(path).convert("RGB" if "pokemon" in Path(path).name else "L"))[None])


def example_noise(x0: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The eps both sections of the tab add to x0: the same for every schedule and model, so they compare."""
    return torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))


def forward_process(x0: torch.Tensor, t: int, kinds: tuple[str, ...] = ("linear", "cosine"), T: int = 1000,
                    seed: int = 0) -> dict[str, tuple[torch.Tensor, dict[str, float]]]:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps for each schedule, with the same eps (Ho et al. eq. 4)."""
    t = check_number("t", t, 0, T - 1, integer=True)
    eps = example_noise(x0, seed)
    out = {}
    for kind in kinds:
        s = make_schedule(kind, T)
        x_t = q_sample(s, x0, torch.full((x0.shape[0],), t), eps)
        ab = float(s.alpha_bar[t])
        out[kind] = (x_t, {"alpha_bar": ab, "signal": math.sqrt(ab), "noise": math.sqrt(1 - ab),
                           "snr": float(s.snr()[t])})
    return out


NO_LABEL = "none"  # one_step's label for the null class: the unconditional prediction


@dataclass(frozen=True)
class OneStep:
    """One call of a trained network on x_t = q_sample(x0, t, eps), and how far its guesses are off (RMS)."""

    x_t: torch.Tensor
    eps: torch.Tensor  # the noise that was added
    eps_pred: torch.Tensor  # the network's guess of it
    x0_pred: torch.Tensor  # the clean data that guess implies (Ho et al. 2020, eq. 15)
    x0_error: float  # RMS(x0_pred - x0)
    x_t_error: float  # RMS(x_t - x0): how far the input was
    eps_error: float  # RMS(eps_pred - eps)


def step_labels(pipe: Pipeline, n: int, label: str | None, guidance: float) -> tuple[torch.Tensor | None, float]:
    """(labels, g) for one call: no label (None or NO_LABEL) asks for the null class of a conditional model (g = 0);
    a class name asks for it under guidance g (1: the conditional prediction alone)."""
    if label is None or label == NO_LABEL or not pipe.info.num_classes:
        if label not in (None, NO_LABEL):
            raise ValueError(f"the {pipe.info.dataset} model takes no label, got {label!r}")
        return (pipe.labels_for(n, 0) if pipe.info.num_classes else None), 0.0
    index = check_label(label, pipe.info.class_names)
    if index == "all":
        raise ValueError("one step takes one label, not 'all'")
    return pipe.labels_for(n, index), check_number("guidance", guidance, 0, MAX_GUIDANCE)


def one_step(pipe: Pipeline, x0: torch.Tensor, t: int, seed: int = 0, label: str | None = None,
             guidance: float = 1.0, pictures: bool = True) -> OneStep:
    """Noise x0 to step t of the model's own schedule with the tab's eps, and ask the network for eps and x0_pred
    (clipped to the data range as the samplers do): without a label, or for `label` under guidance g,
    eps = eps_null + g (eps_label - eps_null) (Ho & Salimans 2022, eq. 6)."""
    t = check_number("t", t, 0, pipe.schedule.T - 1, integer=True)
    if tuple(x0.shape[1:]) != pipe.image_shape:
        raise ValueError(f"the {pipe.info.dataset} model takes {pipe.image_shape}, got {tuple(x0.shape[1:])}")
    labels, g = step_labels(pipe, x0.shape[0], label, guidance)
    x0 = pipe.encode(x0).cpu()  # a latent model works on E(x0): the errors below are measured there
    s, eps = pipe.schedule, example_noise(x0, seed)
    tt = torch.full((x0.shape[0],), t, device=pipe.device)
    x_t = q_sample(s, x0.to(pipe.device), tt, eps.to(pipe.device))
    output = pipe.eps_fn(labels, g)(x_t, tt)
    x0_pred, eps_pred = x0_and_eps(s, x_t, tt, output, pipe.info.diffusion.prediction)
    if pipe.info.diffusion.clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
    x_t, x0_pred, eps_pred = (v.float().cpu() for v in (x_t, x0_pred, eps_pred))

    def rms(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).pow(2).mean().sqrt())

    errors = rms(x0_pred, x0), rms(x_t, x0), rms(eps_pred, eps)
    if pictures:  # a latent model's x_t and x0_pred through its decoder; the noise stays latent
        x_t, x0_pred = pipe.decode(x_t).float().cpu(), pipe.decode(x0_pred).float().cpu()
    return OneStep(x_t, eps, eps_pred, x0_pred, *errors)


def error_curve(pipe: Pipeline, x0: torch.Tensor, num: int = 40, seed: int = 0, label: str | None = None,
                guidance: float = 1.0) -> dict[str, np.ndarray]:
    """one_step at `num` timesteps spread over 0..T-1: t, RMS(x_t - x0) and RMS(x0_pred - x0) at each."""
    ts = np.linspace(0, pipe.schedule.T - 1, num).round().astype(int)
    steps = [one_step(pipe, x0, int(t), seed, label, guidance, pictures=False) for t in ts]
    return {"t": ts, "x_t_error": np.array([s.x_t_error for s in steps]),
            "x0_error": np.array([s.x0_error for s in steps])}
