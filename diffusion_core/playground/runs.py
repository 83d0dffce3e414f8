"""What the playground's handlers adapt: model store, input checks, throttled live runs and replay (the How it
works tab's maths: lesson.py).

Pure Python/torch/numpy/PIL: it never imports gradio (app.py turns these into page events).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from ..files.checkpoint import CheckpointError
from ..pipeline import MAX_GUIDANCE, Pipeline
from ..samplers import SAMPLERS, StepOutput, timestep_plan
from .checks import check_number
from .recording import RECORD_BYTES, RECORDINGS, Recording, compact

MAX_SEED = 2**31 - 1
MAX_SAMPLES = {"spiral": 5000, "digits": 100, "fashion": 100, "pokemon": 36}  # per run: bounds memory and time
REFRESH_S = (0.02, 2.0)  # allowed seconds between displayed frames


class CheckpointSpec(NamedTuple):
    """Where a tab's model comes from: a Hub repo at a pinned revision, else the shipped folder."""

    repo_id: str | None
    revision: str | None
    fallback: Path


class ModelStore:
    """Loads each model once, on first use, under a per-model lock; a failed load is retried next time."""

    def __init__(self, specs: dict[str, CheckpointSpec], override_dir: str | None = None):
        self.specs, self.override_dir = specs, override_dir
        self._locks = {name: threading.Lock() for name in specs}
        self._pipes: dict[str, Pipeline] = {}

    def get(self, name: str) -> Pipeline:
        """The Pipeline of `name`; raises CheckpointError (with the reason) when it cannot be loaded."""
        with self._locks[name]:
            if name not in self._pipes:
                self._pipes[name] = self._load(name)
            return self._pipes[name]

    def _load(self, name: str) -> Pipeline:
        """Resolve and load one checkpoint: the override folder, else Hub -> shipped copy."""
        spec = self.specs[name]
        try:
            if self.override_dir:
                return Pipeline.load(str(Path(self.override_dir) / name))
            return Pipeline.load(name, repo_id=spec.repo_id, revision=spec.revision, fallback=str(spec.fallback))
        except (CheckpointError, OSError, ValueError) as e:
            raise CheckpointError(f"no {name} checkpoint could be loaded ({e}); train one with `python -m "
                                  f"diffusion_core.train --dataset {name} --out checkpoints/{name}`") from e


@dataclass(frozen=True)
class RunSettings:
    """One request's checked settings."""

    sampler: str
    steps: int | None  # None for DDPM: every timestep
    eta: float
    guidance: float
    label: int | str | None  # class index, "all" (one row per class) or None (unconditional model)
    seed: int
    num: int  # total samples
    per_row: int  # samples per grid row
    refresh_s: float
    t_start: int | None = None  # SDEdit: start from the drawing noised to this timestep


def check_label(label, class_names: tuple[str, ...]) -> int | str | None:
    """A class name or index -> index; "all" stays; None for an unconditional model."""
    if not class_names:
        return None
    text = str(label).strip()
    if text == "all":
        return "all"
    if text in class_names:
        return class_names.index(text)
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    raise ValueError(f"label must be 'all' or one of {', '.join(class_names)}, got {label!r}")


def check_settings(pipe: Pipeline, tab: str, sampler: str, steps, eta, guidance, label, seed, num,
                   refresh_s, t_start=None) -> RunSettings:
    """Validate a request (scripts may send anything) against the model and the per-run limits."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    T = pipe.schedule.T
    t0 = None if t_start is None else check_number("noise level t", t_start, 1, T - 1, integer=True)
    steps = check_number("steps", steps, 1, T, integer=True)
    steps = None if sampler == "ddpm" else min(steps, T if t0 is None else t0 + 1)
    names = pipe.info.class_names
    lab = check_label(label, names)
    cap = MAX_SAMPLES[tab] // (len(names) if lab == "all" else 1)
    num = check_number("samples" + (" per class" if lab == "all" else ""), num, 1, cap, integer=True)
    return RunSettings(
        sampler=sampler, steps=steps, eta=check_number("eta", eta, 0, 1),
        guidance=check_number("guidance scale", guidance, 0, MAX_GUIDANCE),
        label=lab, seed=check_number("seed", seed, 0, MAX_SEED, integer=True),
        num=num * len(names) if lab == "all" else num,
        per_row=num if lab == "all" else math.ceil(math.sqrt(num)),
        refresh_s=check_number("refresh interval (s)", refresh_s, *REFRESH_S), t_start=t0)


class Throttle:
    """Lets an event through when `interval` seconds have passed since the last one that went through."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock, self.last = interval, clock, None

    def due(self) -> bool:
        """True (and restart the interval) when the interval has passed; the first call is always due."""
        now = self.clock()
        if self.last is None or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def live_run(pipe: Pipeline, s: RunSettings, x0: torch.Tensor | None = None
             ) -> Iterator[tuple[StepOutput, Recording]]:
    """Sample every step, record it for replay, and yield (step, recording) only when a frame is due (and last)."""
    total = len(timestep_plan(s.sampler, pipe.schedule.T, s.steps, s.t_start))
    labels = pipe.labels_for(s.num, s.label)
    run = pipe.run(s.num, seed=s.seed, label=s.label, sampler=s.sampler, steps=s.steps, eta=s.eta,
                   guidance=s.guidance, x0=x0, t_start=s.t_start)
    yield from record_run(pipe, run, total, s.per_row, [] if labels is None else labels.tolist(), s.refresh_s)


def record_run(pipe: Pipeline, run: Iterator[StepOutput], total: int, per_row: int, labels: list[int],
               refresh_s: float, finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
               groups: tuple[str, ...] = ()) -> Iterator[tuple[StepOutput, Recording]]:
    """Record every step of a run (Generate's, or editing's: inpainting, interpolation, samplers side by side) for
    replay, and yield (step, recording) only when a frame is due (and last). A latent model's steps are shown in
    pixels: the linear preview while streaming, the decoder for the last one (then `finish` on its x_t). `groups`:
    the titles of runs side by side whose points each step concatenates (Recording.groups)."""
    rec, throttle = None, Throttle(refresh_s)
    try:
        for out in run:
            out = pipe.to_pixels(out, exact=out.index == total - 1)
            if finish is not None and out.index == total - 1:
                out = replace(out, x_t=finish(out.x_t))
            if rec is None:  # x_t and x0_pred kept as uint8 pixels or float16 points
                per_step = 2 * out.x_t.numel() * (1 if pipe.info.is_image else 2)
                rec = Recording(total, max(1, math.ceil(total * per_step / RECORD_BYTES)), per_row, labels,
                                groups=groups)
            rec.add(out, RECORDINGS)
            if out.index == total - 1 or throttle.due():
                yield out, rec
    finally:
        run.close()


@dataclass(frozen=True)
class LiveFrame:
    """One displayed frame: step index, what the page shows (None: unchanged), status line, the run so far."""

    step: int
    outputs: tuple
    status: str
    rec: Recording


def spiral_stream(pipe: Pipeline, s: RunSettings) -> Iterator[LiveFrame]:
    """A spiral run as (live plot value, status line, recording), with the mean distance to the true curve."""
    from ..evaluation.metrics import spiral_distance
    from .viz import spiral_frame, step_caption

    meter, start, dist = Throttle(0.25), time.monotonic(), float("nan")
    for out, rec in live_run(pipe, s):
        done = out.index == rec.total - 1
        if done or meter.due():  # an estimate on 256 points while streaming: drawing must not slow sampling
            dist = spiral_distance(out.x_t if done else out.x_t[:256])
        status = f"{step_caption(out.index, rec.total, out.t)} · mean distance of x_t to the spiral: {dist:.3f}"
        if done:
            status = f"Done in {time.monotonic() - start:.1f} s · {status}"
        frame = spiral_frame(out.index, rec.total, out.t, out.x_t, out.x0_pred, done)
        yield LiveFrame(out.index, (frame,), status, rec)


def image_stream(pipe: Pipeline, s: RunSettings, x0: torch.Tensor | None = None) -> Iterator[LiveFrame]:
    """An image run: outputs (x_t grid, x0_pred grid, tagged final samples or None) per displayed frame."""
    from .viz import copy_notes, display_grid, final_tags, step_caption, tag_summary, tagged_grid

    start = time.monotonic()
    for out, rec in live_run(pipe, s, x0):
        done = out.index == rec.total - 1
        _, x_t, x0_pred = rec.steps.get(out.index) or (out.t, compact(out.x_t), compact(out.x0_pred))
        status = step_caption(out.index, rec.total, out.t)
        final = None
        if done:
            tags, (notes, copies) = final_tags(pipe, out.x_t, x_t, rec.labels), copy_notes(pipe, x_t, x0 is None)
            status = f"Done in {time.monotonic() - start:.1f} s · {status}{tag_summary(pipe, tags)}{copies}"
            final = tagged_grid(x_t, tags, s.per_row, 56 if x_t.shape[1] < 40 else 96, notes)
        grids = display_grid(x_t, s.per_row), display_grid(x0_pred, s.per_row)
        yield LiveFrame(out.index, (*grids, final), status, rec)


def replay_frame(rec: Recording | None, step) -> LiveFrame:
    """What the page shows for a recorded step: the spiral's plot value (as final points; one per group of runs
    side by side, captioned with its title) or the two grids."""
    from .viz import display_grid, spiral_frame, step_caption

    if rec is None:
        raise ValueError("nothing to replay yet: generate first")
    i = rec.nearest(step)
    t, x_t, x0_pred = rec.steps.get(i) or rec.steps[rec.nearest(step)]  # released meanwhile: nearest says so
    if x_t.dtype == np.uint8:
        outputs = display_grid(x_t, rec.per_row), display_grid(x0_pred, rec.per_row)
    elif rec.groups:
        parts = zip(np.split(x_t, len(rec.groups)), np.split(x0_pred, len(rec.groups)))
        outputs = tuple(spiral_frame(i, rec.total, t, a, b, done=True) | {"caption": title}
                        for title, (a, b) in zip(rec.groups, parts))
    else:
        outputs = (spiral_frame(i, rec.total, t, x_t, x0_pred, done=True),)
    return LiveFrame(i, outputs, step_caption(i, rec.total, t), rec)
