"""What the page's editing handlers adapt (editing.py): an editor's picture and brush as x0 and a mask, and live runs
of inpainting, interpolation and the samplers side by side as LiveFrames (x_t grid, x0_pred grid, final picture)
with a Recording for replay and the GIF, like playground.image_stream. Never imports gradio."""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from . import editing
from .data import from_uint8
from .pipeline import Pipeline
from .playground import LiveFrame, RunSettings, Throttle, check_label, check_number
from .recording import RECORD_BYTES, RECORDINGS, Recording, compact
from .samplers import StepOutput, timestep_plan
from .sketch import picture_array, unenlarged
from .viz import display_grid, final_tags, save_gif, step_caption, tag_summary, tagged_grid

BRUSH = "brush (paint the hole)"
MASKS = (BRUSH, *editing.MASK_PRESETS)
SAMPLER_NAMES = {"ddpm": "DDPM", "ddim": "DDIM", "dpm++": "DPM-Solver++"}
SLERP_WHY = ("Why slerp: Gaussian noise in many dimensions lies near a sphere of radius √D, and a straight line "
             "between two such points cuts inside it (norm about √(D/2) halfway), where the model never saw noise; "
             "the spherical path keeps every frame's noise as large as real noise.")


def editor_picture(value, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """An image editor's picture as x0 [C, H, W] in [-1, 1] (its background, centre-cropped to a square and taken to
    H x W: pixel art enlarged k times exactly, anything else by area) and its brush strokes as a hole [H, W]."""
    background = value.get("background") if isinstance(value, dict) else value
    a = picture_array(background, "upload a picture (or use the example) first")
    a = np.clip(a, 0, 255).astype(np.uint8).reshape(*a.shape[:2], -1)
    rgb = a[..., :3] if a.shape[-1] >= 3 else np.repeat(a[..., :1], 3, -1)
    alpha = a[..., 3:4] / 255 if a.shape[-1] == 4 else 1.0
    on = 0 if shape[0] == 1 else 255  # transparency: black behind a digit or garment, white behind a sprite
    pixels = np.round(rgb * alpha + on * (1 - alpha)).astype(np.uint8)
    pixels = square(pixels if shape[0] == 3 else pixels.mean(-1, keepdims=True).round().astype(np.uint8))
    strokes = np.zeros(a.shape[:2], np.float64)
    for layer in (value.get("layers") or []) if isinstance(value, dict) else []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[:2] != strokes.shape or layer.shape[-1] != 4:
            raise ValueError(f"the mask layer must be an RGBA image the picture's size {strokes.shape[1]}×"
                             f"{strokes.shape[0]}, got an array of shape {layer.shape}")
        strokes = np.maximum(strokes, layer[..., 3] > 0)
    return from_uint8(resized(pixels, shape[1:])[None])[0], torch.from_numpy(
        resized(square((strokes * 255).astype(np.uint8)[..., None]), shape[1:])[..., 0] > 64)


def square(a: np.ndarray) -> np.ndarray:
    """The centred square crop of an image [H, W, C]."""
    side = min(a.shape[:2])
    top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
    return a[top:top + side, left:left + side]


def resized(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A square image [S, S, C] at H x W: pixel art enlarged k times read back exactly, else an area average."""
    small = unenlarged(a, most=32)
    if small.shape[:2] == tuple(size):
        return small
    img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    return np.asarray(img.resize(size[::-1], Image.BOX)).reshape(*size, a.shape[-1])


def request_hole(mask: str, brush: torch.Tensor) -> torch.Tensor:
    """The hole a request asks for: the brush strokes, or a preset together with them."""
    if mask == BRUSH:
        return brush
    return editing.preset_mask(mask, *brush.shape) | brush


def recorded(steps: Iterator[StepOutput], total: int, per_row: int, labels: list[int], refresh_s: float
             ) -> Iterator[tuple[StepOutput, Recording]]:
    """Record every step of a pixel-space run for replay; yield (step, recording) when a frame is due and at the end."""
    rec, throttle = None, Throttle(refresh_s)
    try:
        for out in steps:
            if rec is None:
                per_step = 2 * out.x_t[0].numel() * len(out.x_t)
                rec = Recording(total, max(1, math.ceil(total * per_step / RECORD_BYTES)), per_row, labels)
            rec.add(out, RECORDINGS)
            if out.index == total - 1 or throttle.due():
                yield out, rec
    finally:
        steps.close()


def shown(pipe: Pipeline, run: Iterator[StepOutput], total: int, last=lambda x: x) -> Iterator[StepOutput]:
    """A run's steps in pixels: previews while streaming, the decoder (then `last`) for the final step."""
    try:
        for out in run:
            if out.index == total - 1:
                yield replace(out, x_t=last(pipe.decode(out.x_t)), x0_pred=pipe.decode(out.x0_pred))
            else:
                yield pipe.to_pixels(out)
    finally:
        run.close()


def grids(out: StepOutput, rec: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_t uint8, x0_pred uint8, x_t grid, x0_pred grid) of a shown step."""
    _, x_t, x0_pred = rec.steps.get(out.index) or (out.t, compact(out.x_t), compact(out.x0_pred))
    return x_t, x0_pred, display_grid(x_t, rec.per_row), display_grid(x0_pred, rec.per_row)


def inpaint_stream(pipe: Pipeline, s: RunSettings, image: torch.Tensor, hole: torch.Tensor, r, j
                   ) -> Iterator[LiveFrame]:
    """RePaint live: outputs (x_t grid, x0_pred grid, tagged completions at the end) per displayed frame."""
    r, j = check_number("resampling r", r, 1, editing.MAX_RESAMPLE[0], True), check_number(
        "jump length j", j, 1, editing.MAX_RESAMPLE[1], True)
    run = editing.inpaint(pipe, image, hole, s.num, seed=s.seed, resample=(r, j), label=s.label,
                          sampler=s.sampler, steps=s.steps, eta=s.eta, guidance=s.guidance)
    total = editing.repaint_steps(s.sampler, pipe.schedule.T, s.steps, (r, j))
    labels, start = pipe.labels_for(s.num, s.label), time.monotonic()
    paste = lambda x: editing.paste_known(pipe, image, hole, x)  # noqa: E731
    how = "plain replacement (r = 1)" if r == 1 else f"RePaint, r = {r}, j = {j}"
    for out, rec in recorded(shown(pipe, run, total, paste), total, s.per_row, labels.tolist(), s.refresh_s):
        x_t, _, *pictures = grids(out, rec)
        status, final = f"{how} · {step_caption(out.index, total, out.t)}", None
        if out.index == total - 1:
            tags = final_tags(pipe, out.x_t, x_t, rec.labels)
            status = f"Done in {time.monotonic() - start:.1f} s · {status}{tag_summary(pipe, tags)}"
            final = tagged_grid(x_t, tags, s.per_row, 56 if x_t.shape[1] < 40 else 96)
        yield LiveFrame(out.index, (*pictures, final), status, rec)


def interpolate_stream(pipe: Pipeline, s: RunSettings, seed_b, label_b, frames, gif_dir: Path
                       ) -> Iterator[LiveFrame]:
    """Interpolation live: outputs (x_t strip, x0_pred strip, the final strip, its GIF at the end) per frame."""
    frames = check_number("frames", frames, 2, editing.MAX_FRAMES, integer=True)
    seed_b = check_number("second seed", seed_b, 0, 2**31 - 1, integer=True)
    label_a, label_b = one_label(s.label, pipe), one_label(label_b, pipe)
    run = editing.interpolate(pipe, s.seed, seed_b, frames, label_a, label_b, steps=s.steps, guidance=s.guidance)
    total, start = len(timestep_plan("ddim", pipe.schedule.T, s.steps)), time.monotonic()
    for out, rec in recorded(shown(pipe, run, total), total, frames, [], s.refresh_s):
        x_t, _, *pictures = grids(out, rec)
        status, final, gif = f"DDIM, eta 0 · {step_caption(out.index, total, out.t)}", None, None
        if out.index == total - 1:
            status = f"Done in {time.monotonic() - start:.1f} s · seed {s.seed} → seed {seed_b}, {frames} frames"
            final = tagged_grid(x_t, [("", None)] * frames, frames, 56 if x_t.shape[1] < 40 else 96)
            gif = str(strip_gif(x_t, gif_dir))
        yield LiveFrame(out.index, (*pictures, final, gif), status, rec)


def one_label(label, pipe: Pipeline) -> int | None:
    """One class index (not 'all'), or None for an unconditional model."""
    lab = check_label(label, pipe.info.class_names)
    if lab == "all":
        raise ValueError("pick one label (not 'all') for this")
    return lab


def strip_gif(images: np.ndarray, folder: Path) -> Path:
    """The interpolation frames there and back as a GIF in `folder` (cleared with the runs' GIFs, viz.run_gif)."""
    path = folder / str(time.time_ns()) / "run_interpolation.gif"
    path.parent.mkdir(parents=True)
    scale = max(1, 192 // images.shape[1])
    big = [np.repeat(np.repeat(im, scale, 0), scale, 1) for im in images]
    save_gif([im if im.shape[-1] == 3 else np.repeat(im, 3, -1) for im in big + big[-2:0:-1]], path, fps=8,
             hold_last_s=0)
    return path


def compare_stream(pipe: Pipeline, s: RunSettings) -> Iterator[LiveFrame]:
    """DDPM, DDIM and DPM-Solver++ live from one noise: outputs (x_t of the three, x0_pred of the three, the
    final samples tagged with their steps, seconds and reading) per displayed frame."""
    label = one_label(s.label, pipe)
    names = list(SAMPLER_NAMES)
    latest: dict[str, StepOutput] = {}
    seconds, totals = {}, {}

    def ticks() -> Iterator[StepOutput]:
        for tick, st in enumerate(editing.compare_samplers(pipe, s.seed, s.steps, label=label, guidance=s.guidance)):
            done = st.out.index == st.total - 1
            latest[st.sampler] = replace(st.out, x_t=pipe.decode(st.out.x_t), x0_pred=pipe.decode(st.out.x0_pred)) \
                if done else pipe.to_pixels(st.out)
            seconds[st.sampler], totals[st.sampler] = st.seconds, st.total
            if len(latest) == len(names):
                yield StepOutput(tick, latest["ddpm"].t, torch.cat([latest[n].x_t for n in names]),
                                 torch.cat([latest[n].x0_pred for n in names]))

    total = pipe.schedule.T + 2 * len(timestep_plan("ddim", pipe.schedule.T, s.steps))
    for out, rec in recorded(ticks(), total, len(names), [], s.refresh_s):
        x_t, _, *pictures = grids(out, rec)
        progress = " · ".join(f"{SAMPLER_NAMES[n]} {latest[n].index + 1}/{totals[n]}" for n in names)
        status, final = progress, None
        if out.index == total - 1:
            tags = final_tags(pipe, out.x_t, x_t, [label] * len(names) if label is not None else [])
            status = "Done · " + " · ".join(f"{SAMPLER_NAMES[n]}: {seconds[n]:.1f} s" for n in names)
            final = tagged_grid(x_t, [(f"{SAMPLER_NAMES[n]} {totals[n]}: {text}, {seconds[n]:.1f} s", ok)
                                      for n, (text, ok) in zip(names, tags)], len(names), 84 if x_t.shape[1] < 40
                                else 120)
        yield LiveFrame(out.index, (*pictures, final), status, rec)
