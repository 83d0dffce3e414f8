"""Editing with a trained model, over the one sampling loop: inpainting (RePaint), interpolation between seeds (slerped
noise and class embeddings, DDIM eta 0), and the samplers side by side on the same initial noise.

Works for pixel and latent models alike: the sampler runs in the pipeline's space (latents for a latent model) and
what is shown or returned is decoded with `Pipeline.to_pixels` / `Pipeline.decode`. Notation: see diffusion.py.
"""
from __future__ import annotations

import math
import time
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F

from .device import make_generator
from .pipeline import Pipeline
from .samplers import SAMPLERS, Known, StepOutput, repaint_plan, timestep_plan

MASK_PRESETS = ("top half", "bottom half", "left half", "right half", "centre square")
MAX_FRAMES = 16  # interpolation frames per run
MAX_RESAMPLE = (20, 50)  # largest r and j a request may ask for


# ---------------------------------------------------------------- inpainting (Lugmayr et al. 2022, "RePaint")

def preset_mask(name: str, height: int, width: int) -> torch.Tensor:
    """The hole [H, W] (True: to be filled) of a named preset."""
    hole = torch.zeros(height, width, dtype=torch.bool)
    h2, w2 = height // 2, width // 2
    if name == "top half":
        hole[:h2] = True
    elif name == "bottom half":
        hole[h2:] = True
    elif name == "left half":
        hole[:, :w2] = True
    elif name == "right half":
        hole[:, w2:] = True
    elif name == "centre square":
        hole[height // 4:height - height // 4, width // 4:width - width // 4] = True
    else:
        raise ValueError(f"mask preset must be one of {', '.join(MASK_PRESETS)}, got {name!r}")
    return hole


def check_mask(hole: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
    """`hole` as a bool [H, W] the size of the picture, with something to fill and something known; else ValueError."""
    size = tuple(image_shape[-2:])
    if hole.ndim != 2 or tuple(hole.shape) != size:
        raise ValueError(f"the mask must be {size[1]}×{size[0]} pixels like the picture, got "
                         f"{'×'.join(map(str, reversed(hole.shape)))}")
    hole = hole.bool()
    if not hole.any():
        raise ValueError("the mask is empty: paint the part of the picture the model should fill")
    if hole.all():
        raise ValueError("the mask covers the whole picture: nothing is known (press Generate to sample from noise)")
    return hole


def latent_hole(hole: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """The hole on a latent grid by max-pooling: a latent cell is unknown when any pixel under it is (Rombach et al.
    2022's encoder downsamples by an integer factor)."""
    factor = hole.shape[-1] // latent_size[-1]
    return F.max_pool2d(hole[None, None].float(), factor)[0, 0].bool()


def known_region(pipe: Pipeline, image: torch.Tensor, hole: torch.Tensor) -> Known:
    """The known part in the sampler's space, one for any batch size: the picture (encoded, for a latent model)
    outside the hole."""
    x0 = pipe.encode(image.to(pipe.device).reshape(-1, *pipe.image_shape))
    grid = pipe.info.data_shape[-2:]
    cells = hole if tuple(hole.shape) == tuple(grid) else latent_hole(hole, grid)
    return Known(x0=x0, mask=~cells.to(pipe.device))


def inpaint_settings(pipe: Pipeline, image: torch.Tensor, hole: torch.Tensor, resample: tuple[int, int]) -> dict:
    """Pipeline.run's inpainting arguments, checked: {"known": Known, "resample": (r, j), or None for r = 1}."""
    hole = check_mask(hole, pipe.image_shape)
    if tuple(image.shape[-3:]) != tuple(pipe.image_shape) or image.ndim not in (3, 4):
        raise ValueError(f"the picture must be {list(pipe.image_shape)} (or a batch of them), got {list(image.shape)}")
    r, j = (int(v) for v in resample)
    if not (1 <= r <= MAX_RESAMPLE[0] and 1 <= j <= MAX_RESAMPLE[1]):
        raise ValueError(f"resampling needs 1 <= r <= {MAX_RESAMPLE[0]} and 1 <= j <= {MAX_RESAMPLE[1]}, "
                         f"got r = {r}, j = {j}")
    return {"known": known_region(pipe, image, hole), "resample": None if r == 1 else (r, j)}


def inpaint(pipe: Pipeline, image: torch.Tensor, hole: torch.Tensor, num: int, *, seed: int,
            resample: tuple[int, int] = (1, 1), **run_kwargs) -> Iterator[StepOutput]:
    """Stream RePaint on `image` [C, H, W] in [-1, 1] (or one picture per sample, [num, C, H, W]): the hole is filled while the known pixels are re-imposed at
    each step's noise level; resample=(r, j) jumps back j steps r - 1 times (r = 1: plain replacement)."""
    yield from pipe.run(num, seed=seed, **inpaint_settings(pipe, image, hole, resample), **run_kwargs)


def paste_known(pipe: Pipeline, image: torch.Tensor, hole: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Decoded samples x [N, C, H, W] with the known pixels of `image` put back exactly (a latent model's decoder
    only approximates them)."""
    return torch.where(hole.to(x.device), x, image.to(x))


def inpaint_final(pipe: Pipeline, image: torch.Tensor, hole: torch.Tensor, num: int, **kwargs) -> torch.Tensor:
    """The completed pictures [N, C, H, W] of an inpainting run: the hole filled, every known pixel as given."""
    out = None
    for out in inpaint(pipe, image, hole, num, **kwargs):
        pass
    return paste_known(pipe, image, hole, pipe.decode(out.x_t))


def repaint_steps(sampler: str, T: int, steps: int | None, resample: tuple[int, int]) -> int:
    """How many steps (down and back up) an inpainting run takes."""
    plan = timestep_plan(sampler, T, steps)
    return len(plan if resample[0] == 1 else repaint_plan(plan, *resample))


# ---------------------------------------------------------------- interpolation between seeds

def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985): sin((1 - w) θ) / sin θ · a + sin(w θ) / sin θ · b, θ the angle between
    a and b; w = 0 gives a and w = 1 gives b exactly. High-dimensional Gaussian noise lives near a sphere of radius
    sqrt(D): slerp stays on it, a straight line (lerp) cuts inside (its midpoint has norm about sqrt(D / 2))."""
    ca, cb = slerp_weights(a, b, w)
    return ca * a + cb * b


def slerp_weights(a: torch.Tensor, b: torch.Tensor, w: float) -> tuple[float, float]:
    """The two coefficients of slerp(a, b, w), computed in float64 (the lerp ones when a and b are parallel)."""
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = (a64 @ b64 / (a64.norm() * b64.norm())).clamp(-1, 1).item()
    theta = math.acos(cos)
    if w in (0, 1) or math.sin(theta) < 1e-6:
        return 1.0 - w, float(w)
    return math.sin((1 - w) * theta) / math.sin(theta), math.sin(w * theta) / math.sin(theta)


def seed_noise(pipe: Pipeline, seed: int, num: int = 1) -> torch.Tensor:
    """The initial noise x_T a run with this seed draws (Pipeline.run's first draw)."""
    return torch.randn((num, *pipe.info.data_shape), generator=make_generator(seed, pipe.device), device=pipe.device)


def label_weights(pipe: Pipeline, label_a: int, label_b: int, ws: list[float]) -> torch.Tensor:
    """Per frame, weights over the class embeddings [N, classes + 1] that slerp label_a's embedding to label_b's."""
    k = pipe.info.num_classes
    emb = getattr(pipe.model, "label_emb", None)
    if emb is None or not k:
        raise ValueError("this model takes no class embedding to interpolate")
    out = torch.zeros(len(ws), k + 1, device=pipe.device)
    for i, w in enumerate(ws):
        ca, cb = slerp_weights(emb.weight[label_a], emb.weight[label_b], w)
        out[i, label_a] += ca
        out[i, label_b] += cb
    return out


def interpolate(pipe: Pipeline, seed_a: int, seed_b: int, frames: int, label_a: int | None = None,
                label_b: int | None = None, **run_kwargs) -> Iterator[StepOutput]:
    """Stream `frames` samples between seed_a's and seed_b's: slerped initial noise (and class embedding when the
    labels differ) through DDIM with eta 0, so each frame is a deterministic function of its noise (Song et al. 2021)."""
    if not 2 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be between 2 and {MAX_FRAMES}, got {frames}")
    ws = [i / (frames - 1) for i in range(frames)]
    za, zb = seed_noise(pipe, seed_a)[0], seed_noise(pipe, seed_b)[0]
    x_T = torch.stack([slerp(za, zb, w) for w in ws])
    if label_a is None or label_b is None or label_a == label_b:
        label = label_a if label_b is None else label_b
    else:
        label = label_weights(pipe, label_a, label_b, ws)
    yield from pipe.run(frames, seed=seed_a, label=label, sampler="ddim", eta=0.0, x_T=x_T, **run_kwargs)


# ---------------------------------------------------------------- the samplers side by side

class SamplerStep(NamedTuple):
    """One step of one sampler in a comparison, and the seconds that sampler has computed so far."""

    sampler: str
    out: StepOutput
    total: int
    seconds: float


def compare_samplers(pipe: Pipeline, seed: int, steps: int, num: int = 1, **run_kwargs) -> Iterator[SamplerStep]:
    """DDPM (all T steps), DDIM (eta 0) and DPM-Solver++ at `steps` from the same initial noise, interleaved so they
    progress together (the one furthest behind, as a fraction of its run, steps next); each one's own compute time."""
    x_T = seed_noise(pipe, seed, num)
    runs, totals, seconds = {}, {}, {}
    for sampler in SAMPLERS:
        n = None if sampler == "ddpm" else steps
        totals[sampler] = len(timestep_plan(sampler, pipe.schedule.T, n))
        runs[sampler] = pipe.run(num, seed=seed, sampler=sampler, steps=n, eta=0.0, x_T=x_T, **run_kwargs)
        seconds[sampler] = 0.0
    done = {sampler: 0 for sampler in SAMPLERS}
    try:
        while any(done[s] < totals[s] for s in SAMPLERS):
            sampler = min((s for s in SAMPLERS if done[s] < totals[s]), key=lambda s: done[s] / totals[s])
            start = time.perf_counter()
            out = next(runs[sampler])
            seconds[sampler] += time.perf_counter() - start
            done[sampler] += 1
            yield SamplerStep(sampler, out, totals[sampler], seconds[sampler])
    finally:
        for run in runs.values():
            run.close()
