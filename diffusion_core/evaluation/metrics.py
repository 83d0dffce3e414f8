"""Sample-quality metrics: the spiral's distance and coverage, memorisation.

- Spiral: mean distance of points to the true curve and the KS distance of their nearest-curve
  parameter t against uniform (coverage; mode collapse shows as a large KS). Any other 2D set (the lab's):
  mean distance to the nearest point of a dense sample of it (data_distance).
- Memorisation: nearest-neighbour L2 distances of samples to the training set, and the two
  near-copy tests of a sprite against the training sprites: the share of its figure drawn in the
  same colours as one (`closest_by_colour`) and the overlap of its lines with one's (`closest_by_lines`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..data.datasets import SPIRAL_T_MAX, SPIRAL_T_MIN, make_spiral, spiral_curve
from ..data.points2d import make_toy
from ..data.sprites import SAME_DRAWING_IOU, SMOOTH_STEP, dark_pixels, foreground, mask_iou
from .frechet import ArrayLike, as_float64

# ---------------------------------------------------------------- spiral

@functools.lru_cache(maxsize=1)
def _coarse_spiral(grid: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """A fixed grid of curve parameters t [G] and the spiral's points there [G, 2]."""
    t = np.linspace(SPIRAL_T_MIN, SPIRAL_T_MAX, grid)
    return t, spiral_curve(t)


def nearest_on_spiral(points: ArrayLike, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Distance [N] of each point [N, 2] to the true spiral, and the curve parameter t [N] nearest to it.

    Coarse-to-fine search: a grid of 4,096 values of t, then 129 values within one coarse
    step either side of the best: a resolution of about 4e-5 along the curve.
    """
    p = as_float64(points).reshape(-1, 2)
    coarse_t, coarse = _coarse_spiral()
    step = coarse_t[1] - coarse_t[0]
    offsets = np.linspace(-step, step, 129)
    dist, t_near = np.empty(len(p)), np.empty(len(p))
    for i in range(0, len(p), chunk):
        q = p[i:i + chunk]
        j = ((coarse * coarse).sum(1)[None] - 2 * q @ coarse.T).argmin(1)  # |q − c|² up to |q|²
        fine_t = np.clip(coarse_t[j][:, None] + offsets, SPIRAL_T_MIN, SPIRAL_T_MAX)  # [n, 129]
        d2 = ((spiral_curve(fine_t) - q[:, None]) ** 2).sum(-1)
        k = d2.argmin(1)
        dist[i:i + chunk] = np.sqrt(d2[np.arange(len(q)), k])
        t_near[i:i + chunk] = fine_t[np.arange(len(q)), k]
    return dist, t_near


def spiral_distance(points: ArrayLike) -> float:
    """Mean Euclidean distance of points [N, 2] to the true spiral curve (0 for perfect samples)."""
    return float(nearest_on_spiral(points)[0].mean())


def ks_uniform(u: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance between the empirical distribution of u and Uniform(0, 1)."""
    u = np.sort(np.clip(np.asarray(u, dtype=np.float64), 0, 1))
    n = len(u)
    i = np.arange(1, n + 1)
    return float(max((i / n - u).max(), (u - (i - 1) / n).max()))


def spiral_coverage_ks(points: ArrayLike) -> float:
    """KS distance of the points' nearest-curve t (scaled to [0, 1]) from uniform; ≈0 = full coverage."""
    _, t = nearest_on_spiral(points)
    return ks_uniform((t - SPIRAL_T_MIN) / (SPIRAL_T_MAX - SPIRAL_T_MIN))


# ---------------------------------------------------------------- any 2D dataset (the Spiral lab)

REFERENCE_N, REFERENCE_SEED = 20_000, 1  # the dense sample the distance is measured to


def reference_points(name: str, drawing: np.ndarray | None = None) -> torch.Tensor:
    """The dense sample of dataset `name` ('drawing': the drawing's own points) that distances are measured to."""
    if name == "drawing":
        if drawing is None:
            raise ValueError("draw a dataset first")
        return torch.as_tensor(drawing, dtype=torch.float32)
    if name == "spiral":
        return make_spiral(REFERENCE_N, torch.Generator().manual_seed(REFERENCE_SEED))
    return make_toy(name, REFERENCE_N, REFERENCE_SEED)


def data_distance(points, name: str, reference: torch.Tensor | None = None) -> float:
    """The 2D lab's metric: mean distance of points [N, 2] to dataset `name`, to the spiral's true curve, else to
    the nearest point of a dense sample (reference_points: 20,000 fresh points of a toy set, or every point of a
    drawing); on a dense sample of the spiral the second reads the same as the first (within 2e-4)."""
    if name == "spiral":
        return spiral_distance(points)
    ref = reference_points(name) if reference is None else reference
    return float(nearest_neighbour_distances(points, ref).mean())


# ---------------------------------------------------------------- memorisation

def _rows(x: ArrayLike, hflip: bool = False) -> np.ndarray:
    """Items [N, ...] as float64 rows [N, D]; with hflip, their mirror images (last axis) appended."""
    a = as_float64(x)
    if hflip:
        a = np.concatenate([a, a[..., ::-1]])
    return a.reshape(len(a), -1)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] between rows (|a|² + |b|² − 2ab, clamped at 0)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def nearest_neighbours(samples: ArrayLike, train: ArrayLike, hflip: bool = False,
                       chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """L2 distance [N] of each sample [N, ...] to its nearest training item [M, ...], and that item's index.

    With hflip, mirrored training images ([M, C, H, W], last axis flipped) count as the item too.
    """
    a, b = _rows(samples), _rows(train, hflip)
    m = len(b) // 2 if hflip else len(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples have {a.shape[1]} values each, training items {b.shape[1]}")
    dist, index = np.empty(len(a)), np.empty(len(a), dtype=np.int64)
    for i in range(0, len(a), chunk):
        d = _pairwise(a[i:i + chunk], b)
        index[i:i + chunk] = d.argmin(1) % m  # a mirror image points at its original
        dist[i:i + chunk] = d.min(1)
    return dist, index


def nearest_neighbour_distances(samples: ArrayLike, train: ArrayLike, hflip: bool = False) -> np.ndarray:
    """L2 distance (pixel space, in the inputs' units) from each sample to its nearest training item."""
    return nearest_neighbours(samples, train, hflip)[0]


# A sprite whose colours match one training sprite's on this share of their figures is a near copy: the sprite
# with a small part changed. 549 of the 2,705 sprites agree this much with another, mostly the forms of a few big
# families (Alcremie's creams, Pikachu's caps, Vivillon's wings; benchmarks/pokemon_closest.py).
COPY_AGREEMENT = 0.8


def colour_agreement(a: np.ndarray, b: np.ndarray, tol: int = SMOOTH_STEP) -> torch.Tensor:
    """Agreement [...] of uint8 RGB images a and b [..., H, W, 3] (broadcast), both on white: the share of the
    pixels in either image's foreground (`sprites.foreground`) whose colours differ by less than `tol` (of 255) in
    every channel. 1 = the same figure in the same colours; two images without foreground agree 0.

    Unlike an L2 distance it does not depend on how much background an image has, nor on how many near-identical
    siblings a sprite has in the training set: a sample agreeing >= COPY_AGREEMENT with one sprite is a near copy."""
    a, b = np.asarray(a), np.asarray(b)
    return _agreement(a, b, _foreground_any(a), _foreground_any(b), tol)


def _foreground_any(images: np.ndarray) -> np.ndarray:
    """`sprites.foreground` of uint8 images of any leading shape [..., H, W, 3]: masks [..., H, W]."""
    return foreground(images.reshape(-1, *images.shape[-3:])).reshape(images.shape[:-1])


def _agreement(a: np.ndarray, b: np.ndarray, a_mask: np.ndarray, b_mask: np.ndarray, tol: int) -> torch.Tensor:
    """`colour_agreement` of images a, b [..., H, W, 3] given their foreground masks [..., H, W] (broadcast)."""
    close = (torch.from_numpy(a).to(torch.int16) - torch.from_numpy(b).to(torch.int16)).abs().amax(-1) < tol
    union = torch.from_numpy(a_mask) | torch.from_numpy(b_mask)
    return (close & union).sum((-2, -1)) / union.sum((-2, -1)).clamp(min=1)


def _with_mirrors(images: np.ndarray) -> np.ndarray:
    """uint8 images [M, H, W, C] followed by their mirror images: [2M, H, W, C] (image j + M mirrors image j)."""
    return np.concatenate([images, images[:, :, ::-1]])


def closest_by_colour(samples: np.ndarray, train: np.ndarray, candidates: int = 128, others_only: bool = False,
                      chunk: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 sample's [N, H, W, 3] highest `colour_agreement` with a training sprite [M, H, W, 3] or its
    mirror image, and that sprite's index. Searched among the sample's `candidates` nearest images in L2 (a copy
    agreeing on most of its figure is among them; all M·2 pairs would cost 40x more). others_only: images equal
    to the sample or to its mirror image do not count (the training set measured against itself)."""
    refs = _with_mirrors(train)
    rows, ref_masks = refs.reshape(len(refs), -1).astype(np.float32), foreground(refs)  # each reference's mask once
    best, index = np.empty(len(samples)), np.empty(len(samples), dtype=np.int64)
    for i in range(0, len(samples), chunk):
        a = samples[i:i + chunk]
        d = _pairwise(a.reshape(len(a), -1).astype(np.float32), rows)
        near = np.argsort(d, axis=1)[:, :min(candidates, len(refs))]
        agree = _agreement(a[:, None], refs[near], foreground(a)[:, None], ref_masks[near], SMOOTH_STEP).numpy()
        if others_only:
            same = (refs[near] == a[:, None]).all((2, 3, 4)) | (refs[near] == a[:, None, :, ::-1]).all((2, 3, 4))
            agree[same] = 0.0
        best[i:i + chunk] = agree.max(1)
        index[i:i + chunk] = near[np.arange(len(a)), agree.argmax(1)] % len(train)
    return best, index


# A sample whose dark pixels (outline, inner lines, black areas) overlap one sprite's with this IoU copies its drawing,
# whatever its colours (`sprites.SAME_DRAWING_IOU`: the forms that recolour one drawing reach it too). Two different
# Pokemon reach it only where they are drawn as twins (mega Latias and Latios, Plusle and Minun); over the 2,705
# sprites the 99th percentile of the best other-family IoU is 0.375.
LINE_COPY_IOU = SAME_DRAWING_IOU


def closest_by_lines(samples: np.ndarray, train: np.ndarray,
                     skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 sample's [N, H, W, 3] highest IoU of dark pixels (`sprites.dark_pixels`) with a training sprite
    [M, H, W, 3] or its mirror image, and that sprite's index (exact: all pairs, one matrix product). skip: a
    boolean [N, M] of pairs not to count (a sprite against its own family, say)."""
    return closest_drawing(dark_pixels(samples), dark_pixels(train), skip)


def closest_drawing(sample_lines: np.ndarray, train_lines: np.ndarray,
                    skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`closest_by_lines` on dark-pixel masks already taken (samples [N, H, W], sprites [M, H, W]): each sample's
    highest IoU with a sprite's mask or its mirror image, and that sprite's index."""
    iou = mask_iou(sample_lines, np.concatenate([train_lines, train_lines[:, :, ::-1]]))
    if skip is not None:
        iou[np.concatenate([skip, skip], axis=1)] = 0.0
    return iou.max(1), iou.argmax(1) % len(train_lines)
