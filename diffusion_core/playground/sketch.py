"""Drawings and uploaded pictures as a model's x0 (SDEdit on the Digits, Fashion and Pokémon tabs): a digit in
MNIST's style, a garment in Fashion-MNIST's, a sprite on white. Pure numpy/PIL/torch; it never imports gradio."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data.datasets import from_uint8
from ..data.sprites import alpha_box, square_sprite


MAX_SIDE = 1024  # pixels per side of a drawing or an uploaded picture (the pads are 280 px, a sprite 8x is 544)
MAX_FILE_BYTES = 5 * 2**20  # a PNG of the largest picture allowed is at most about 4 MB
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # what an upload may be


def check_picture_file(source: str | Path | bytes) -> tuple[int, int]:
    """Width and height of an uploaded picture (a file or its bytes) read from its header only, before anything
    decodes it; ValueError naming the limit for a file over MAX_FILE_BYTES or a picture over MAX_SIDE per side, or
    saying that it is not a picture."""
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    if size > MAX_FILE_BYTES:
        raise ValueError(f"the picture's file is too large: {size / 2**20:.1f} MB (at most "
                         f"{MAX_FILE_BYTES // 2**20} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        width = height = None  # over 2 x PIL's limit of 89 M pixels: far over ours
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(f"the file is not a picture that can be read: upload a {', '.join(FORMATS[:-1])} or "
                         f"{FORMATS[-1]} image") from None
    if width is None or max(width, height) > MAX_SIDE:
        said = "over 178 M pixels" if width is None else f"{width} x {height} pixels"
        raise ValueError(f"the picture is too large: {said} (at most {MAX_SIDE} x {MAX_SIDE}); scale it down")
    return width, height


def picture_array(value, missing: str) -> np.ndarray:
    """The float image array of a drawn or uploaded picture: an editor's dict (its 'composite', else its
    'background', which is all an unedited editor sends) or an array; ValueError `missing` when there is none."""
    image = value if not isinstance(value, dict) else next(
        (value[k] for k in ("composite", "background") if value.get(k) is not None), None)
    if image is None:
        raise ValueError(missing)
    if np.asarray(image).size > 4 * MAX_SIDE**2:  # before a float copy: RGBA at the upload limit
        raise ValueError(f"the sketch is too large: {np.shape(image)} (at most {MAX_SIDE} x {MAX_SIDE} x 4)")
    try:
        return np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"the sketch is not an image: got {type(image).__name__}") from None


def sketch_ink(value, what: str = "a digit") -> np.ndarray:
    """Ink in [0, 1] (float [H, W]) of a sketch (dict with 'composite', or an image array): dark or opaque strokes."""
    a = picture_array(value, f"draw {what} on the sketchpad first")
    if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4) and a.shape[0] > 3 and a.shape[1] > 3:
        alpha = a[..., -1] / 255 if a.shape[-1] in (2, 4) else 1.0
        grey = a[..., :3].mean(-1) if a.shape[-1] >= 3 else a[..., 0]
        return np.clip(alpha * (1 - grey / 255), 0, 1)
    if a.ndim == 2 and min(a.shape) > 3:
        return np.clip(1 - a / 255, 0, 1)
    raise ValueError(f"the sketch must be an image [H, W] or [H, W, C], got an array of shape {a.shape}")


def sketch_to_x0(value, size: int = 28, box: int = 20, what: str = "a digit"):
    """A drawing as an MNIST-style digit [1, size, size] in [-1, 1]: cropped, fit in `box` px, centred by mass."""
    ink = sketch_ink(value, what)
    ys, xs = np.nonzero(ink > 0.1)
    if len(ys) < 5:
        raise ValueError(f"the sketch is empty: draw {what} first (white strokes on black work too if inverted)")
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = box / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS)) / 255.0
    yy, xx = np.indices(small.shape)
    mass = max(small.sum(), 1e-9)
    cy, cx = (yy * small).sum() / mass, (xx * small).sum() / mass
    top = int(np.clip(round(size / 2 - cy), 0, size - h))
    left = int(np.clip(round(size / 2 - cx), 0, size - w))
    out = np.zeros((size, size))
    out[top:top + h, left:left + w] = small
    return torch.from_numpy(out * 2 - 1).float()[None]


def sketch_to_garment(value):
    """A drawing as a Fashion-MNIST-style garment [1, 28, 28] in [-1, 1]: light on black like the digits, but
    filling the frame (its clothes span 26-28 px where MNIST fits digits in 20)."""
    return sketch_to_x0(value, box=26, what="a garment")


def sketch_rgba(value) -> np.ndarray:
    """A drawn or uploaded picture (picture_array) as uint8 RGBA in which only the figure is opaque: transparent
    and near-white pixels (a white background) are see-through."""
    a = picture_array(value, "draw or upload a sprite first")
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 4 or (a.ndim == 3 and a.shape[-1] > 4):
        raise ValueError(f"the picture must be an image [H, W] or [H, W, C], got an array of shape {a.shape}")
    a = np.clip(a, 0, 255).astype(np.uint8).reshape(*a.shape[:2], -1)  # grey, grey + alpha, RGB or RGBA
    rgb = a[..., :3] if a.shape[-1] >= 3 else np.repeat(a[..., :1], 3, -1)
    alpha = a[..., -1:] if a.shape[-1] in (2, 4) else np.full_like(a[..., :1], 255)
    rgba = np.concatenate([rgb, alpha], -1)
    rgba[(rgba[..., 3] < 128) | (rgba[..., :3].min(-1) > 245)] = 0
    return rgba


def enlarged(pixels: np.ndarray, k: int) -> np.ndarray:
    """Pixel art [H, W, C] shown k times larger: each pixel a k x k block (so an editor shows it crisp)."""
    return np.repeat(np.repeat(pixels, k, 0), k, 1)


def unenlarged(pixels: np.ndarray, most: int = 8) -> np.ndarray:
    """Pixel art enlarged k times (k x k blocks of one colour, k <= most) at its own size; anything else as it is."""
    for k in range(most, 1, -1):
        small = pixels[::k, ::k]
        if pixels.shape[0] % k == 0 and pixels.shape[1] % k == 0 and np.array_equal(enlarged(small, k), pixels):
            return small
    return pixels


def sketch_to_sprite(value, size: int = 48, box: int = 46):
    """A drawn or uploaded picture as a sprite [3, size, size] in [-1, 1]: the figure cropped, enlarged pixel art
    taken back to its size, shrunk (area average) to fit `box` px if still larger, centred on white
    (sprites.square_sprite)."""
    rgba = sketch_rgba(value)
    if (rgba[..., 3] > 0).sum() < 5:
        raise ValueError("the picture is empty: draw or upload a sprite first")
    crop = unenlarged(rgba[alpha_box(rgba)])
    if max(crop.shape[:2]) > box:
        scale = box / max(crop.shape[:2])
        w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
        crop = np.array(Image.fromarray(crop, "RGBA").resize((w, h), Image.BOX))
        crop[crop[..., 3] < 128] = 0
        crop[..., 3][crop[..., 3] > 0] = 255
    return from_uint8(square_sprite(crop, size)[None])[0]
