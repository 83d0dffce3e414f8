"""The 2D lab's datasets: classic toy sets (two moons, 8 Gaussians on a ring, a checkerboard; the spiral is in data.py)
and a visitor's own drawing, strokes on a canvas, typed points or a word, all normalised into [-1, 1].

One small function per dataset (tiny-diffusion's habit); each draws n points [n, 2] from a torch.Generator.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

TOY_N, TOY_SEED = 10_000, 0  # the training set of a toy dataset, as the spiral's
MIN_POINTS, MAX_POINTS = 16, 20_000  # a drawing's points: fewer cannot make a shape, more is refused
MAX_WORD = 12  # characters of a typed word
DRAWING_N = 10_000  # points drawn from a picture (strokes or a word)


def make_moons(n: int, generator: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Two interleaved half circles (scikit-learn's make_moons), centred and scaled by 1/1.6 into [-1, 1], plus
    Gaussian noise of std `noise`."""
    u = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(u), 1 - torch.cos(u))
    y = torch.where(upper, torch.sin(u), 0.5 - torch.sin(u))
    pts = (torch.stack([x, y], -1) - torch.tensor([0.5, 0.25], dtype=torch.float64)) / 1.6
    return (pts + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def make_gaussians(n: int, generator: torch.Generator, radius: float = 0.8, std: float = 0.05) -> torch.Tensor:
    """8 Gaussians of std `std` centred evenly on a ring of radius `radius` (Grathwohl et al. 2019's FFJORD set)."""
    k = torch.randint(0, 8, (n,), generator=generator).double() * (math.pi / 4)
    centres = radius * torch.stack([torch.cos(k), torch.sin(k)], -1)
    return (centres + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def make_checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform points on the 8 dark squares of a 4 x 4 board covering [-1, 1]^2."""
    col = torch.randint(0, 4, (n,), generator=generator)
    row = 2 * torch.randint(0, 2, (n,), generator=generator) + col % 2
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return (torch.stack([col + u[:, 0], row + u[:, 1]], -1) / 2 - 1).float()


TOY_SETS = {"moons": make_moons, "gaussians": make_gaussians, "checkerboard": make_checkerboard}


def make_toy(name: str, n: int = TOY_N, seed: int = TOY_SEED) -> torch.Tensor:
    """n points [n, 2] of toy set `name` drawn with `seed`."""
    if name not in TOY_SETS:
        raise ValueError(f"unknown 2D dataset {name!r}: choose one of {', '.join(TOY_SETS)}")
    return TOY_SETS[name](n, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- a visitor's drawing

def normalise(points: np.ndarray) -> np.ndarray:
    """Points [N, 2] centred on their bounding box and scaled, aspect kept, so the longer side spans [-1, 1]."""
    lo, hi = points.min(0), points.max(0)
    span = float((hi - lo).max())
    if span <= 0:
        raise ValueError("all the drawing's points are in one place: draw a shape, not a dot")
    return ((points - (lo + hi) / 2) * (2 / span)).astype(np.float32)


def checked_points(points: np.ndarray) -> np.ndarray:
    """A drawing's points [N, 2], refused with a message saying why when they cannot make a dataset."""
    if len(points) == 0:
        raise ValueError("the drawing is empty: draw a shape, type a word or give points")
    if len(points) > MAX_POINTS:
        raise ValueError(f"too many points: {len(points):,} given, at most {MAX_POINTS:,}")
    if not np.isfinite(points).all():
        raise ValueError("every point needs two finite numbers")
    if len(np.unique(points, axis=0)) < MIN_POINTS:
        raise ValueError(f"too few points to learn a shape: {len(np.unique(points, axis=0))} distinct, "
                         f"at least {MIN_POINTS}")
    return normalise(points)


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_points(text: str) -> np.ndarray:
    """Points typed or pasted as text, 'x y' (or 'x, y') per line or pair, as [N, 2] (y up). Too many are counted
    without being kept, so a pasted million costs no memory beyond its text."""
    count = sum(1 for _ in NUMBER.finditer(text or ""))
    if count > 2 * MAX_POINTS:
        raise ValueError(f"too many points: {count // 2:,} given, at most {MAX_POINTS:,}")
    numbers = NUMBER.findall(text or "")
    if len(numbers) % 2:
        raise ValueError(f"points come in pairs 'x y': got {len(numbers)} numbers")
    return np.asarray(numbers, dtype=np.float64).reshape(-1, 2)


def ink_points(picture: np.ndarray, n: int = DRAWING_N, seed: int = 0) -> np.ndarray:
    """n points [n, 2] spread over a picture's ink (dark or opaque pixels of an RGB(A) or grey [H, W(, C)] array),
    each inked pixel equally likely, uniform inside it; y up. Empty when nothing is inked; refused when the ink
    covers fewer than MIN_POINTS cells of a 32 x 32 grid over the picture (a dot, not a shape)."""
    a = np.asarray(picture, dtype=np.float32)
    grey = a if a.ndim == 2 else a[..., :3].mean(-1)
    ink = grey < 128
    if a.ndim == 3 and a.shape[-1] == 4:  # a transparent canvas: what was painted is opaque
        ink = (a[..., 3] > 127) & ink
    rows, cols = np.nonzero(ink)
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    cells = len(np.unique(rows * 32 // ink.shape[0] * 32 + cols * 32 // ink.shape[1]))
    if cells < MIN_POINTS:
        raise ValueError(f"too little is drawn to learn a shape: a dot or a short dash ({cells} of a 32 x 32 grid's "
                         f"cells inked, at least {MIN_POINTS}); draw strokes")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(rows), n)
    jitter = rng.random((n, 2))
    return np.stack([cols[pick] + jitter[:, 0], -(rows[pick] + jitter[:, 1])], -1)


def word_picture(word: str, height: int = 96) -> np.ndarray:
    """A word in black on white (PIL's default font at `height` px), as a grey [H, W] array."""
    font = ImageFont.load_default(size=height)
    left, top, right, bottom = font.getbbox(word)
    img = Image.new("L", (right - left + 8, bottom - top + 8), 255)
    ImageDraw.Draw(img).text((4 - left, 4 - top), word, fill=0, font=font)
    return np.asarray(img)


def drawn_points(picture: np.ndarray | None = None, word: str = "", text: str = "") -> np.ndarray:
    """The visitor's dataset, normalised into [-1, 1]: typed points if given, else a word, else the picture's ink."""
    if (text or "").strip():
        return checked_points(parse_points(text))
    word = (word or "").strip()
    if word:
        if len(word) > MAX_WORD:
            raise ValueError(f"the word is too long: {len(word)} characters, at most {MAX_WORD}")
        return checked_points(ink_points(word_picture(word)))
    return checked_points(ink_points(picture) if picture is not None else np.zeros((0, 2)))
