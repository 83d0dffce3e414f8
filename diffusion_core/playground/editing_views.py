"""What the page's editing handlers adapt (editing.py): an editor's picture and brush as x0 and a mask, and live runs
of inpainting, interpolation and the samplers side by side as LiveFrames (x_t grid, x0_pred grid, final picture; a
points model's comparison: live plot values) with a Recording for replay and the GIF, recorded by
playground.record_run like Generate's runs. Never imports gradio."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from .. import editing
from ..data.datasets import from_uint8
from ..files.pictures import save_gif
from ..pipeline import Pipeline
from ..samplers import StepOutput, timestep_plan
from .lab import Measure
from .recording import Recording, compact
from .runs import LiveFrame, RunSettings, check_label, check_number, record_run
from .sketch import picture_array, unenlarged
from .viz import display_grid, final_tags, spiral_frame, step_caption, tag_summary, tagged_grid

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
    for out, rec in record_run(pipe, run, total, s.per_row, labels.tolist(), s.refresh_s, finish=paste):
        x_t, _, *pictures = grids(out, rec)
        status, final = f"{how} · {step_caption(out.index, total, out.t)}", None
        if out.index == total - 1:
            tags = final_tags(pipe, out.x_t, x_t, rec.labels)
            status = f"Done in {time.monotonic() - start:.1f} s · {status}{tag_summary(pipe, tags)}"
            final = tagged_grid(x_t, tags, s.per_row, 56 if x_t.shape[1] < 40 else 96)
        yield LiveFrame(out.index, (*pictures, final), status, rec)


def interpolate_stream(pipe: Pipeline, s: RunSettings, seed_b, label_b, frames, gif_dir: Path
                       ) -> Iterator[LiveFrame]:
    """Interpolation live: outputs (x_t strip, x0_pred strip, the final strip tagged with what is read in each frame,
    its GIF at the end) per frame."""
    frames = check_number("frames", frames, 2, editing.MAX_FRAMES, integer=True)
    seed_b = check_number("second seed", seed_b, 0, 2**31 - 1, integer=True)
    label_a, label_b = one_label(s.label, pipe), one_label(label_b, pipe)
    run = editing.interpolate(pipe, s.seed, seed_b, frames, label_a, label_b, steps=s.steps, guidance=s.guidance)
    total, start = len(timestep_plan("ddim", pipe.schedule.T, s.steps)), time.monotonic()
    for out, rec in record_run(pipe, run, total, frames, [], s.refresh_s):
        x_t, _, *pictures = grids(out, rec)
        status, final, gif = f"DDIM, eta 0 · {step_caption(out.index, total, out.t)}", None, None
        if out.index == total - 1:
            status = f"Done in {time.monotonic() - start:.1f} s · seed {s.seed} → seed {seed_b}, {frames} frames"
            final = tagged_grid(x_t, strip_tags(pipe, out.x_t, x_t, label_a, label_b), frames,
                                56 if x_t.shape[1] < 40 else 96)
            gif = str(strip_gif(x_t, gif_dir))
        yield LiveFrame(out.index, (*pictures, final, gif), status, rec)


def strip_tags(pipe: Pipeline, x: torch.Tensor, images: np.ndarray, label_a: int | None, label_b: int | None
               ) -> list[tuple[str, bool | None]]:
    """What is read in each frame of an interpolation (viz.final_tags); only the two ends were asked a label, so only
    they are marked as asked or not."""
    asked = [] if label_a is None else [label_a] + [label_b] * (len(images) - 1)
    tags = final_tags(pipe, x, images, asked)
    return [tag if i in (0, len(tags) - 1) else (tag[0], None) for i, tag in enumerate(tags)]


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


def compare_stream(pipe: Pipeline, s: RunSettings, measure: Measure | None = None) -> Iterator[LiveFrame]:
    """DDPM, DDIM and DPM-Solver++ live from one noise, per displayed frame. Images (one per sampler): outputs (x_t
    of the three, x0_pred of the three, the final samples tagged with their steps, seconds and reading). Points
    (s.num per sampler): a live plot value per sampler, captioned with its mean distance to the data (`measure`,
    default the spiral's curve) and its seconds once it is done; the recording keeps the three as groups."""
    label, names = one_label(s.label, pipe), list(SAMPLER_NAMES)
    num = 1 if pipe.info.is_image else s.num
    totals = {n: len(timestep_plan(n, pipe.schedule.T, None if n == "ddpm" else s.steps)) for n in names}
    latest: dict[str, StepOutput] = {}
    seconds: dict[str, float] = {}

    def ticks() -> Iterator[StepOutput]:
        run = editing.compare_samplers(pipe, s.seed, s.steps, num, label=label, guidance=s.guidance)
        for tick, st in enumerate(run):
            latest[st.sampler], seconds[st.sampler] = st.out, st.seconds
            if len(latest) == len(names):
                yield StepOutput(tick, latest["ddpm"].t, torch.cat([latest[n].x_t for n in names]),
                                 torch.cat([latest[n].x0_pred for n in names]))

    groups = () if pipe.info.is_image else tuple(f"{SAMPLER_NAMES[n]}, {totals[n]} steps" for n in names)
    reached: dict[str, float] = {}  # each points run's distance to the data, once it is done
    for out, rec in record_run(pipe, ticks(), sum(totals.values()), len(names), [], s.refresh_s, groups=groups):
        progress = " · ".join(f"{SAMPLER_NAMES[n]} {latest[n].index + 1}/{totals[n]}" for n in names)
        if pipe.info.is_image:
            yield images_compared(pipe, out, rec, progress, label, seconds, totals)
        else:
            yield points_compared(out, rec, progress, latest, seconds, totals, reached, measure or Measure())


def images_compared(pipe: Pipeline, out: StepOutput, rec: Recording, progress: str, label: int | None,
                    seconds: dict[str, float], totals: dict[str, int]) -> LiveFrame:
    """A comparison on images: the three x_t and x0_pred side by side; at the end the final samples tagged with their
    steps, seconds and what the LeNet reads (a sprite's colour class)."""
    names, (x_t, _, *pictures) = list(SAMPLER_NAMES), grids(out, rec)
    if out.index < rec.total - 1:
        return LiveFrame(out.index, (*pictures, None), progress, rec)
    tags = final_tags(pipe, out.x_t, x_t, [label] * len(names) if label is not None else [])
    status = "Done · " + " · ".join(f"{SAMPLER_NAMES[n]}: {seconds[n]:.1f} s" for n in names)
    final = tagged_grid(x_t, [(f"{SAMPLER_NAMES[n]} {totals[n]}: {text}, {seconds[n]:.1f} s", ok)
                              for n, (text, ok) in zip(names, tags)], len(names), 84 if x_t.shape[1] < 40 else 120)
    return LiveFrame(out.index, (*pictures, final), status, rec)


def points_compared(out: StepOutput, rec: Recording, progress: str, latest: dict[str, StepOutput],
                    seconds: dict[str, float], totals: dict[str, int], reached: dict[str, float],
                    measure: Measure) -> LiveFrame:
    """A comparison on points: one live plot value per sampler (viz.spiral_frame over the data's backdrop), captioned
    with its title (Recording.groups) and its steps so far, or once it is done its mean distance to the data
    (`reached`: measured once) and seconds; a finished sampler's plot is sent once more only with the last frame
    (None meanwhile: unchanged). At the end the status gives all three."""
    parts = dict(zip(SAMPLER_NAMES, zip(out.x_t.chunk(len(totals)), out.x0_pred.chunk(len(totals)))))
    last, plots = out.index == rec.total - 1, []
    for (n, total), title in zip(totals.items(), rec.groups):
        step, (x_t, x0_pred) = latest[n].index, parts[n]
        if n in reached and not last:
            plots.append(None)
            continue
        if step == total - 1:
            reached[n] = measure.distance(x_t)
        caption = (f"{title}: {reached[n]:.3f} from {measure.words}, {seconds[n]:.2f} s" if n in reached else
                   f"{title}: step {step + 1}/{total}")
        plots.append(spiral_frame(step, total, latest[n].t, x_t, x0_pred, step == total - 1, cloud=measure.cloud)
                     | {"caption": caption})
    if not last:
        return LiveFrame(out.index, tuple(plots), progress, rec)
    status = f"Done · mean distance to {measure.words}: " + " · ".join(
        f"{SAMPLER_NAMES[n]} {totals[n]} steps: {reached[n]:.3f}, {seconds[n]:.2f} s" for n in totals)
    return LiveFrame(out.index, tuple(plots), status, rec)
