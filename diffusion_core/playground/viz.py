"""The playground's pictures: fast scatters, titled side-by-side frames, tagged final samples, replay frames and
the runs' GIFs (over the plain grids and files of files/pictures.py)."""
from __future__ import annotations

import base64
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..files.pictures import image_grid, save_gif


def to_pixels(points: np.ndarray, size: int, lim: float) -> np.ndarray:
    """2D points [N, 2] in [-lim, lim]^2 as (x, y) pixel coordinates of a size × size picture, y up."""
    return (np.asarray(points, dtype=np.float64) * [1, -1] + lim) / (2 * lim) * size


def scatter_image(points: np.ndarray, size: int = 300, lim: float = 1.5, curve: np.ndarray | None = None,
                  color: tuple[int, int, int] = (31, 119, 180), segments: np.ndarray | None = None) -> np.ndarray:
    """Fast scatter of 2D points [N, 2] in [-lim, lim]^2 as 3×3-pixel dots (numpy, for GIF frames), over the
    faint `curve` and thin lines from `segments` [N, 2] to their points."""
    img = Image.new("RGB", (size, size), "white")
    if curve is not None:
        ImageDraw.Draw(img).line([tuple(q) for q in to_pixels(curve, size, lim)], fill=(215, 215, 215), width=3)
    if segments is not None:
        draw = ImageDraw.Draw(img)
        for a, b in zip(to_pixels(segments, size, lim), to_pixels(points, size, lim)):
            draw.line([tuple(a), tuple(b)], fill=(240, 170, 170), width=1)
    out = np.array(img)
    px = np.round(to_pixels(points, size, lim)).astype(np.int64)
    px = px[((px >= 1) & (px < size - 1)).all(1)]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out[px[:, 1] + dy, px[:, 0] + dx] = color
    return out


def with_title(image: np.ndarray, title: str, height: int = 22) -> np.ndarray:
    """An RGB copy of `image` (uint8 [H, W] or [H, W, C]) with a white title bar on top."""
    rgb = Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image).convert("RGB")
    canvas = Image.new("RGB", (rgb.width, rgb.height + height), "white")
    canvas.paste(rgb, (0, height))
    ImageDraw.Draw(canvas).text((4, 4), title, fill=(40, 40, 40), font=ImageFont.load_default(size=14))
    return np.asarray(canvas)


def side_by_side(panels: list[np.ndarray], gap: int = 12) -> np.ndarray:
    """Place RGB images [H_i, W_i, 3] left to right on white, top-aligned, `gap` pixels apart."""
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    x = 0
    for p in panels:
        out[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def display_grid(images: np.ndarray, per_row: int, width: int | None = None) -> np.ndarray:
    """uint8 images [N, H, W, C] tiled `per_row` wide on grey ([H, W] if grey); `width`: whole-factor upscale."""
    scale = 1 if width is None else max(1, width // (per_row * (images.shape[2] + 1) + 1))
    grid = image_grid(images, nrow=per_row, pad=1, scale=scale, background=128)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def tagged_grid(images: np.ndarray, tags: list[tuple[str, bool | None]], per_row: int, cell: int = 84,
                notes: list[str] | None = None) -> np.ndarray:
    """uint8 images [N, H, W, C] enlarged to about `cell` px, each tagged below (green: as asked, red: not), and
    with a second line in red where `notes` has one (a line copy, say). Columns widen to the longest tag, so that
    tags like 'Ankle boot (100%)' under small tiles never run into each other."""
    scale = max(1, cell // images.shape[2])
    h, w = images.shape[1] * scale, images.shape[2] * scale
    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=11)
    col = max([w] + [math.ceil(font.getlength(text)) + 4 for text, _ in tags])
    rows, below = -(-len(images) // per_row), 24 + (16 if notes and any(notes) else 0)
    canvas = Image.new("RGB", (per_row * (col + 6) + 6, rows * (h + below) + 6), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (img, (text, ok), note) in enumerate(zip(images, tags, notes or [""] * len(images))):
        x, y = 6 + (i % per_row) * (col + 6), 6 + (i // per_row) * (h + below)
        tile = Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).resize((w, h), Image.NEAREST)
        canvas.paste(tile.convert("RGB"), (x + (col - w) // 2, y))
        colour = (90, 90, 90) if ok is None else (20, 130, 40) if ok else (200, 30, 30)
        draw.text((x + col / 2, y + h + 3), text, fill=colour, font=font, anchor="mt")
        if note:
            draw.text((x + col / 2, y + h + 19), fit_text(note, small, col + 4), fill=(200, 30, 30), font=small,
                      anchor="mt")
    return np.asarray(canvas)


def fit_text(text: str, font, width: float) -> str:
    """`text`, cut short with '…' where it is wider than `width` px in `font`."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def pair_picture(x_t: np.ndarray, x0_pred: np.ndarray, caption: str, per_row: int = 1,
                 curve: np.ndarray | None = None) -> np.ndarray:
    """x_t beside x0_pred, titled, under a caption: uint8 image batches as grids, float points [N, 2] as scatters."""
    if x_t.dtype == np.uint8:
        left, right = display_grid(x_t, per_row, 300), display_grid(x0_pred, per_row, 300)
    else:
        left = scatter_image(x_t, 280, 3.0, curve)
        right = scatter_image(x0_pred, 280, 1.6, curve, color=(214, 39, 40))
    pair = side_by_side([with_title(left, "x_t (noisy sample)"), with_title(right, "x0_pred (model's guess)")])
    return with_title(pair, caption)


# ---------------------------------------------------------------- tags of final samples

def final_tags(pipe, x, images: np.ndarray, labels: list[int]) -> list[tuple[str, bool | None]]:
    """(tag, matches the asked label or None) per final sample: what the dataset's LeNet reads in digits and
    clothes (with its confidence), a sprite's colour class."""
    import torch

    from ..evaluation.lenet import DATASETS, asset_paths, load_lenet

    if pipe.info.dataset in DATASETS:
        with torch.inference_mode():
            conf, pred = load_lenet(asset_paths(pipe.info.dataset)[0])(x.detach().float().cpu()).softmax(1).max(1)
        seen = pred.tolist()
        texts = [f"{pipe.info.class_names[p]} ({c:.0%})" for p, c in zip(seen, conf.tolist())]
    elif pipe.info.dataset == "pokemon":
        from ..data.sprites import colour_classes

        seen = colour_classes(images).tolist()
        texts = [pipe.info.class_names[c] for c in seen]
    else:
        return [("", None)] * len(images)
    return [(text, bool(s == lab) if labels else None) for text, s, lab in zip(texts, seen, labels or seen)]


READERS = {"digits": "LeNet reads the asked digit", "fashion": "LeNet reads the asked class",
           "pokemon": "the colour class is the asked one"}  # what a tag says, by dataset


def tag_summary(pipe, tags: list[tuple[str, bool | None]]) -> str:
    """'LeNet reads the asked digit in 37 of 40 samples' (or the clothes' or sprites' version); '' if untagged."""
    hits = [ok for _, ok in tags if ok is not None]
    if not hits:
        return ""
    return f" · {READERS[pipe.info.dataset]} in {sum(hits)} of {len(hits)} samples"


def copy_notes(pipe, images: np.ndarray, from_noise: bool = True) -> tuple[list[str], str]:
    """Per Pokémon sample 'copy of NAME' where it redraws a training sprite (a line copy, `outlines.closest_sprites`),
    else '', and the run's status clause; no notes for other datasets, sprites of another size, or a run that
    started from a given drawing (SDEdit keeps that drawing by design)."""
    from ..evaluation.metrics import LINE_COPY_IOU
    from ..evaluation.outlines import closest_sprites, shipped_outlines

    if not from_noise or pipe.info.dataset != "pokemon" or images.shape[1:3] != shipped_outlines().lines.shape[1:]:
        return [""] * len(images), ""
    iou, names, copy = closest_sprites(images, shipped_outlines())
    notes = [f"copy of {name}" if c else "" for name, c in zip(names, copy)]
    if copy.any():
        which = ", ".join(sorted({name for name, c in zip(names, copy) if c}))
        verb = "redraws" if copy.sum() == 1 else "redraw"
        return notes, f" · {int(copy.sum())} {verb} a training sprite's outline: {which}"
    i = int(iou.argmax())
    return notes, (f" · none redraws a training sprite's outline (closest: overlap {iou[i]:.2f} with "
                   f"{names[i]}; a copy overlaps ≥ {LINE_COPY_IOU})")


# ---------------------------------------------------------------- replay and GIF of a run

def step_caption(step: int, total: int, t: int) -> str:
    """'step 12/50, t = 779' ('t = clean' for the final step)."""
    return f"step {step + 1}/{total}, t = {'clean' if t < 0 else t}"


def replay_picture(rec, index: int) -> np.ndarray:
    """x_t beside x0_pred of step `index` of a playground Recording, as one titled RGB picture (runs side by side,
    Recording.groups: each run's x_t, titled, side by side)."""
    t, x_t, x0_pred = rec.steps[index]
    curve, caption = None if x_t.dtype == np.uint8 else spiral_points(), step_caption(index, rec.total, t)
    if not rec.groups:
        return pair_picture(x_t, x0_pred, caption, rec.per_row, curve)
    return with_title(side_by_side([with_title(scatter_image(points, 280, 3.0, curve), title) for title, points in
                                    zip(rec.groups, np.split(x_t, len(rec.groups)))]), caption)


def run_gif(rec, folder: Path, max_frames: int = 48) -> Path:
    """A GIF of a recorded run (x_t beside x0_pred) in `folder`, made once; GIFs older than an hour are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*/run*.gif"):
        if time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
            old.parent.rmdir()
    if not rec.steps:
        raise ValueError("nothing recorded yet: generate first")
    if rec.gif is not None and rec.gif[0] == len(rec.steps) and rec.gif[1].exists():
        return rec.gif[1]
    path = folder / str(time.time_ns()) / f"run_{rec.total}_steps.gif"
    path.parent.mkdir()
    save_gif([replay_picture(rec, i) for i in rec.sample_indices(max_frames)], path)
    rec.gif = (len(rec.steps), path)
    return path


# ---------------------------------------------------------------- the live spiral plot's payload

def encode_points(points) -> str:
    """Points [N, 2] as base64 of little-endian float32 (what the page's canvas decodes)."""
    return base64.b64encode(np.ascontiguousarray(np.asarray(points, dtype="<f4")).tobytes()).decode("ascii")


def spiral_points(n: int = 400) -> np.ndarray:
    """n points [n, 2] along the true spiral, for drawing it faintly behind the samples."""
    import torch

    from ..data.datasets import SPIRAL_T_MAX, SPIRAL_T_MIN, spiral_curve

    return spiral_curve(torch.linspace(SPIRAL_T_MIN, SPIRAL_T_MAX, n, dtype=torch.float64)).float().numpy()


def spiral_frame(step: int, total: int, t: int, x_t, x0_pred, done: bool, layers: dict | None = None,
                 cloud: np.ndarray | None = None) -> dict:
    """The live plot's value for one step (points as base64 float32; with the first and final frames the backdrop:
    the spiral's curve, or a cloud of data points); `layers`: arrays of the lab's layers (lab.Layers), float32 or
    uint8 as base64, flags as they are."""
    frame = {"step": step, "total": total, "t": t, "xt": encode_points(x_t), "x0": encode_points(x0_pred),
             "done": done}
    if step == 0 or done:
        frame["curve"] = encode_points(spiral_points()) if cloud is None else None
        frame["cloud"] = None if cloud is None else encode_points(cloud)
    for key, value in (layers or {}).items():
        frame[key] = value if not isinstance(value, np.ndarray) else (
            base64.b64encode(value.tobytes()).decode("ascii") if value.dtype == np.uint8 else encode_points(value))
    return frame
