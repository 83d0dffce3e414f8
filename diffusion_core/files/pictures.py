"""Arrays as pictures on disk: image grids, point scatters, lossless PNGs and looping GIFs (uint8 in, files out)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def image_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1,
               background: int = 255) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one [rows*(H+pad)+pad, ...] grid, nearest-neighbour `scale`d."""
    n, h, w, c = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), background, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = img
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def points_image(points: np.ndarray, size: int = 400, lim: float = 1.2, curve: np.ndarray | None = None) -> np.ndarray:
    """Scatter 2D points in [-lim, lim]^2 on a white square (the true curve, if given, in light grey)."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    to_px = lambda p: np.stack([(p[:, 0] + lim) / (2 * lim) * size, (lim - p[:, 1]) / (2 * lim) * size], 1)  # noqa: E731
    if curve is not None:
        draw.line([tuple(q) for q in to_px(curve)], fill=(210, 210, 210), width=3)
    for x, y in to_px(np.asarray(points)):
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(31, 119, 180))
    return np.asarray(img)


def save_png(array: np.ndarray, path) -> None:
    """Write a uint8 [H, W] or [H, W, C] array as a lossless PNG."""
    Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array).save(path, format="PNG")


def save_gif(frames: list[np.ndarray], path, fps: float = 12.0, hold_last_s: float = 1.5) -> None:
    """Write RGB frames [H, W, 3] as a looping GIF; the last frame stays `hold_last_s` seconds."""
    images = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.MEDIANCUT) for f in frames]
    durations = [round(1000 / fps)] * len(images)
    durations[-1] = round(1000 * hold_last_s)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
