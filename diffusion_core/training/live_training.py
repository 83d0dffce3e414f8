"""Training a 2D model live, in one visitor's session: the train command's recipe (the spiral preset's MLP, Adam,
warm-up then a half cosine, EMA weights; Ho et al. 2020, Algorithm 1, or flow matching) as a generator that yields
the loss and fresh samples every few hundred steps, bounded in steps, seconds and trainings at once.

The model is the caller's (a session's state): nothing here is shared between visitors but the bound on trainings.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from ..diffusion import denoising_loss, noisy_batch
from ..models import build_model
from ..pipeline import ModelInfo, Pipeline
from .config import PRESETS, TrainConfig, with_objective
from .loop import ema_update

MAX_STEPS, MAX_SECONDS = 20_000, 120.0  # one training's bounds
MAX_TRAININGS = 2  # trainings at once, over all visitors (each takes a CPU core)
LOSS_EVERY = 50  # steps between the loss curve's points
PREVIEW_N = 500  # fresh samples per preview
TRAININGS = threading.BoundedSemaphore(MAX_TRAININGS)


class Busy(ValueError):
    """Every training slot is taken."""


def live_config(objective: str, steps: int) -> TrainConfig:
    """The spiral preset (MLP 4 x 64, batch 1,000, lr 2e-3, half-cosine decay, EMA 0.995) for `objective`, over
    `steps` steps. Flow matching pairs noise with data at random here: the shipped flow models' OT coupling
    (flow.ot_noise_for) costs several times a step on one thread, and the page's bound is in seconds."""
    return replace(with_objective(PRESETS["spiral"], objective), dataset="drawing", steps=steps)


@dataclass
class LiveModel:
    """A visitor's trained model: its EMA weights as a Pipeline, and what it was trained on."""

    pipe: Pipeline
    dataset: str
    objective: str
    steps: int
    seconds: float
    reference: torch.Tensor | None = None  # a drawing's points, which distances are measured to (lab.py)


@dataclass(frozen=True)
class TrainUpdate:
    """One preview: step reached, seconds so far, the loss curve (step, EMA of batch losses), fresh samples [n, 2]
    from the EMA weights and a snapshot of the model."""

    step: int
    seconds: float
    losses: tuple[tuple[int, float], ...]
    samples: np.ndarray
    model: LiveModel
    done: bool


def preview_samples(pipe: Pipeline, n: int, seed: int) -> np.ndarray:
    """n fresh samples of the EMA model: DDPM (all T steps) for diffusion, Euler 100 for flow, as Generate's
    defaults do."""
    flow = pipe.info.diffusion.prediction == "flow"
    x, _ = pipe.generate(n, seed=seed, sampler="euler" if flow else "ddpm", steps=100 if flow else None)
    return x.cpu().numpy()


def init_weights(model: torch.nn.Module, gen: torch.Generator) -> torch.nn.Module:
    """PyTorch's default initialisation of every Linear (weights and biases ~ U(+-1/sqrt(fan_in))), drawn from
    `gen`, not from the global generator that other visitors' trainings share."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                bound = layer.in_features ** -0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
    return model


def train_live(points: torch.Tensor, dataset: str, objective: str = "diffusion", steps: int = 6000,
               seconds: float = 60.0, preview_every: int = 400, seed: int = 0,
               preview_n: int = PREVIEW_N) -> Iterator[TrainUpdate]:
    """Train a fresh MLP on points [N, 2]; yield a TrainUpdate with `preview_n` fresh samples every `preview_every`
    steps and at the end (the
    last `steps`, `seconds` or a closed generator: Stop keeps the last update's model). Raises Busy when
    MAX_TRAININGS are running."""
    if not 1 <= steps <= MAX_STEPS or not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"a live training takes 1 to {MAX_STEPS:,} steps and at most {MAX_SECONDS:g} s")
    if not TRAININGS.acquire(blocking=False):
        raise Busy(f"{MAX_TRAININGS} trainings are running on this server: try again in a minute")
    try:
        yield from _train(points, dataset, objective, steps, seconds, preview_every, seed, preview_n)
    finally:
        TRAININGS.release()


def _train(points: torch.Tensor, dataset: str, objective: str, steps: int, seconds: float, preview_every: int,
           seed: int, preview_n: int) -> Iterator[TrainUpdate]:
    """The loop of train_live (train.train_step's recipe without Accelerate: one process, one visitor)."""
    config = live_config(objective, steps)
    gen = torch.Generator().manual_seed(seed)
    model = init_weights(build_model(config.model), gen)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, config.lr_factor)
    info = ModelInfo(dataset=dataset, data_shape=(2,), diffusion=config.diffusion, sampling=config.sampling)
    schedule = config.diffusion.make_schedule()
    start, losses, avg = time.monotonic(), [], None
    for step in range(1, steps + 1):
        x0 = points[torch.randint(0, len(points), (config.batch_size,), generator=gen)]
        x_t, t, eps = noisy_batch(schedule, x0, gen, config.diffusion.prediction)
        loss = denoising_loss(config.diffusion, schedule, model(x_t, t), x0, t, eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        elapsed = time.monotonic() - start
        done = step == steps or elapsed >= seconds
        if step % LOSS_EVERY == 0 or done:
            losses.append((step, avg))
        if step % preview_every == 0 or done:
            pipe = Pipeline(copy.deepcopy(ema), info, source="trained in this page", device=torch.device("cpu"))
            model_now = LiveModel(pipe, dataset, objective, step, elapsed, points if dataset == "drawing" else None)
            yield TrainUpdate(step, elapsed, tuple(losses), preview_samples(pipe, preview_n, seed), model_now, done)
        if done:
            return
