"""Pokémon box sprites from npm `pokesprite-images@2.7.0`, and their colour classes.

Reading the sprites from the npm package: `sprite_files`.

Square size: the alpha bounding boxes of the 2,705 gen8 sprites exceed 48 px (in height
or width) for 70 sprites (2.6 %), 52 px for 20 and 56 px for 8; the largest is 56×67.
48×48 holds 97 % of them whole at 0.73× the pixels of 56×56, so SIZE = 48: each sprite's
bounding box is centred on a white 48×48 canvas, and the few larger ones lose their
outer rows/columns (a crop, never a resampling: pixel art stays byte-exact).

Colour classes (the labels for guidance, and the check of generated sprites): each
foreground pixel votes in HSV (`pixel_classes`); the outline and very dark line pixels
(the sprites draw lines and black areas in about (65, 65, 65)) do not vote unless they
fill most of the sprite. Foreground = not near-white pixels, plus near-white areas that
the outline encloses, so the same rule works on generated images without an alpha channel.
Labels of the 2,705 sprites: red 212, orange 241, yellow 428, green 254, blue 554,
purple 94, pink 184, brown 91, grey 374, white 273 (checked by eye on contact sheets).

Families (`family`: the name up to its first hyphen; 899 of them): many Pokémon come in several forms, 148 Alcremie
sprites, 56 Unown, 54 Pikachu, 40 Vivillon, 38 Arceus, 36 Silvally. A model trained on all 2,705 copied the body it
saw most (shiny Alcremie, README); `cap_families(images, names, 4)` keeps at most four forms of each family, 2,188
sprites (`TrainConfig.max_per_family`).

Drawings (`same_drawing_groups`): most forms of a family recolour one drawing (its dark pixels, `dark_pixels`, agree
with IoU >= SAME_DRAWING_IOU): the 2,705 + 790 sprites hold 1,509 drawings, the largest 146 Alcremie forms, 48 Pikachu
caps, 40 Vivillon, 38 Arceus, 36 Silvally (twice: gen8 and gen7x). A model trained on them redraws the drawings it
sees most (README); `cap_drawings(images, names, 2)` keeps two colourings of each, 2,979 sprites
(`TrainConfig.max_per_drawing`), so every drawing is seen about as often as a Pokémon's regular and shiny one.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

SIZE = 48
OLDER = "-gen7x"  # name suffix of the older gen7x drawings (gen8 has names ending in -gen7)

# Colour classes a person would name; "grey" includes black.
COLOUR_CLASSES: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "grey", "white",
)
RED, ORANGE, YELLOW, GREEN, BLUE, PURPLE, PINK, BROWN, GREY, WHITE = range(10)

NEAR_WHITE = 240  # a pixel whose channels are all >= this is background (uint8)
DARK_V = 0.30  # HSV value below which a pixel is "very dark" (lines, outline, black)
DARK_SHARE = 0.4  # inner pixels this dark or more: the sprite is black (GREY)
# Two sprites whose dark pixels overlap with this IoU share a drawing (metrics.LINE_COPY_IOU: what a copy reaches).
SAME_DRAWING_IOU = 0.6
SMOOTH_STEP = 16  # neighbouring pixels closer than this (of 255) in every channel are one colour region
GREY_S = 0.15  # saturation below which a pixel is grey / white
WHITE_V = 0.80  # value above which a low-saturation pixel is white
# Hue bins in degrees (upper edges) for saturated pixels; red wraps around 360.
_HUE_EDGES = ((15, RED), (42, ORANGE), (70, YELLOW), (165, GREEN), (255, BLUE),
              (290, PURPLE), (340, PINK), (361, RED))


def to_rgba(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode (RGBA, P, LA, ...) as a uint8 RGBA array [H, W, 4]."""
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite a uint8 RGBA array on white; opaque pixels are kept exactly."""
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    rgb = rgba[..., :3].astype(np.float64) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def alpha_box(rgba: np.ndarray) -> tuple[slice, slice] | None:
    """The (rows, columns) slices of the bounding box of an RGBA array's opaque pixels [H, W, 4]; None if none is."""
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    if ys.size == 0:
        return None
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def square_sprite(rgba: np.ndarray, size: int = SIZE) -> np.ndarray | None:
    """Centre the alpha bounding box on a white size×size canvas (crop if larger); None if empty."""
    bounds = alpha_box(rgba)
    if bounds is None:
        return None
    box = rgba[bounds]
    h, w = box.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    box = box[top:top + size, left:left + size]
    h, w = box.shape[:2]
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    y0, x0 = (size - h) // 2, (size - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = box
    return composite_on_white(canvas)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360), saturation and value in [0, 1] of uint8 RGB pixels [..., 3]."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v, mn = x.max(-1), x.min(-1)
    c = v - mn
    s = np.where(v > 0, c / np.maximum(v, 1e-12), 0.0)
    safe = np.maximum(c, 1e-12)
    h = np.where(v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(c > 0, h * 60.0, 0.0), s, v


def pixel_classes(rgb: np.ndarray) -> np.ndarray:
    """Colour class index of every uint8 RGB pixel [..., 3] (HSV thresholds; brown = dark orange)."""
    h, s, v = _hsv(rgb)
    out = np.full(h.shape, RED, dtype=np.int64)
    for edge, cls in reversed(_HUE_EDGES):
        out[h < edge] = cls
    warm = (h >= 15) & (h < 50)
    out[warm & ((v < 0.62) | ((s < 0.45) & (v < 0.8)))] = BROWN
    out[((h < 15) | (h >= 340)) & (s < 0.45) & (v > 0.75)] = PINK  # light red reads as pink
    grey = (s < GREY_S) | (v < DARK_V)
    out[grey] = GREY
    out[grey & (v >= WHITE_V)] = WHITE
    return out


def family(name: str) -> str:
    """A sprite's family: its name up to the first hyphen ('alcremie-caramel-swirl-berry' -> 'alcremie')."""
    return name.split("-", 1)[0]


def family_bucket(name: str, buckets: int) -> int:
    """Which of `buckets` a sprite's family falls in, crc32(family) % buckets: the same on every run and machine, and
    the same for all of a family's forms and shiny twins, so a family goes whole wherever sprites are split by it."""
    return zlib.crc32(family(name).encode()) % buckets


def cap_families(images: np.ndarray, names: Sequence[str], cap: int) -> np.ndarray:
    """Sorted indices of the sprites [N, ...] kept when each family keeps at most `cap` of its forms.

    A family keeps its first form by name, then again and again the form farthest (L2) from the nearest one kept
    (farthest-point sampling), so it keeps its most different looks. Why: 148 of the 2,705 sprites are Alcremie
    forms of one body, 56 Unown, 54 Pikachu; a model trained on all of them copies those bodies.
    """
    return _cap_groups(images, names, [family(n) for n in names], cap)


def is_older(name: str) -> bool:
    """Whether a sprite name is one of the older gen7x drawings (`OLDER`)."""
    return name.endswith(OLDER)


def holds_older(names: list[str] | tuple[str, ...]) -> bool:
    """Whether a sprite cache's names include the older gen7x drawings (one written before they were read does not)."""
    return any(is_older(n) for n in names)


def line_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of the dark pixels (`dark_pixels`: the drawing) of uint8 images a [N, H, W, 3] and b [M, ...]."""
    return mask_iou(dark_pixels(a), dark_pixels(b))


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of boolean masks a [N, H, W] and b [M, H, W]."""
    da, db = (m.reshape(len(m), -1).astype(np.float32) for m in (a, b))
    inter = da @ db.T
    return inter / np.maximum(da.sum(1)[:, None] + db.sum(1)[None] - inter, 1.0)


def same_drawing_groups(images: np.ndarray, threshold: float = SAME_DRAWING_IOU) -> np.ndarray:
    """A group id [N] per uint8 sprite [N, H, W, 3]: sprites whose drawings overlap (`line_iou`, either one
    mirrored) >= threshold are in one group, and so, in chains, are their own such neighbours (union-find)."""
    dark = dark_pixels(images)  # once: a mirror image's dark pixels are the mirrored dark pixels
    iou = np.maximum(mask_iou(dark, dark), mask_iou(dark, dark[:, :, ::-1]))
    parent = np.arange(len(images))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(iou >= threshold, 1))):
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(images))])


def cap_drawings(images: np.ndarray, names: Sequence[str], cap: int) -> np.ndarray:
    """Sorted indices of the uint8 sprites [N, H, W, 3] kept when each drawing (`same_drawing_groups`: the forms
    and shiny versions that recolour one outline) keeps at most `cap` colourings, chosen as in `cap_families`.
    Why: a model sees a drawing shared by 36 Silvally forms 18 times as often as a Pokémon's one drawing in two
    colourings, and that is what it learns to redraw (README); 2 keeps every drawing as often as the rest."""
    return _cap_groups(images, names, same_drawing_groups(images).tolist(), cap)


def _cap_groups(images: np.ndarray, names: Sequence[str], groups: Sequence, cap: int) -> np.ndarray:
    """Sorted indices kept when each group of images keeps at most `cap`: its first by name, then farthest-point."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    members_of: dict = defaultdict(list)
    for i in sorted(range(len(names)), key=lambda i: names[i]):
        members_of[groups[i]].append(i)
    keep = []
    for members in members_of.values():
        x = np.asarray(images[members], dtype=np.float64).reshape(len(members), -1)
        chosen, gap = [0], np.linalg.norm(x - x[0], axis=1)
        while len(chosen) < min(cap, len(members)):
            chosen.append(int(gap.argmax()))
            gap = np.minimum(gap, np.linalg.norm(x - x[chosen[-1]], axis=1))
        keep += [members[j] for j in chosen]
    return np.sort(np.array(keep, dtype=np.int64))


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of boolean masks [..., H, W] that touch a non-mask pixel or the border (4-neighbours)."""
    pad = [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(mask, pad, constant_values=False)
    interior = p[..., :-2, 1:-1] & p[..., 2:, 1:-1] & p[..., 1:-1, :-2] & p[..., 1:-1, 2:]
    return mask & ~interior


def colour_class(image: np.ndarray, mask: np.ndarray) -> int:
    """Dominant colour class of a uint8 RGB sprite [H, W, 3] over its foreground mask [H, W].

    Each foreground pixel votes for its class (`pixel_classes`), except the outline (the
    mask's edge) and very dark pixels (lines, shadows). A sprite whose inner pixels are
    mostly very dark is GREY (black). An empty mask gives GREY.
    """
    mask = np.asarray(mask, dtype=bool)
    inner = mask & ~_outline(mask)
    if not inner.any():
        inner = mask
    if not inner.any():
        return GREY
    _, _, v = _hsv(image)
    dark = v < DARK_V
    if dark[inner].mean() > DARK_SHARE:
        return GREY
    classes = pixel_classes(image)[inner & ~dark]
    return int(np.bincount(classes, minlength=len(COLOUR_CLASSES)).argmax())


def foreground(images: np.ndarray) -> np.ndarray:
    """Foreground masks [N, H, W] of uint8 RGB images [N, H, W, 3] on white.

    Background = near-white pixels 4-connected to the image border (a flood fill), so
    the white body of a sprite enclosed by its outline stays foreground.
    """
    pale = images.min(axis=-1) >= NEAR_WHITE
    bg = np.zeros_like(pale)
    bg[:, [0, -1], :] = pale[:, [0, -1], :]
    bg[:, :, [0, -1]] |= pale[:, :, [0, -1]]
    while True:
        grown = bg.copy()
        grown[:, 1:] |= bg[:, :-1]
        grown[:, :-1] |= bg[:, 1:]
        grown[:, :, 1:] |= bg[:, :, :-1]
        grown[:, :, :-1] |= bg[:, :, 1:]
        grown &= pale
        if np.array_equal(grown, bg):
            return ~bg
        bg = grown


def dark_pixels(images: np.ndarray) -> np.ndarray:
    """The drawing's dark pixels [N, H, W] of uint8 RGB images [N, H, W, 3] on white: foreground pixels of HSV
    value below DARK_V, i.e. the outline, the inner lines and black areas."""
    images = _check_images(images)
    return foreground(images) & (_hsv(images)[2] < DARK_V)


def smooth_neighbours(images: np.ndarray, step: int = SMOOTH_STEP) -> np.ndarray:
    """Colour coherence of uint8 RGB images [N, H, W, 3] on white: per image, the share of 4-neighbour pixel pairs
    inside the foreground whose colours differ by less than `step` (of 255) in every channel.

    The sprites draw regions in flat or gently shaded colour between their lines (over the 2,705: median 0.38,
    1st percentile 0.25); a figure speckled inside, each pixel a slightly different colour, scores near 0. An image
    without a foreground pair scores 0."""
    images = _check_images(images)
    rgb, mask = images.astype(np.int16), foreground(images)
    smooth = pairs = 0
    for axis in (1, 2):  # vertical, then horizontal neighbours
        n = images.shape[axis] - 1
        a, b = rgb.take(range(n), axis=axis), rgb.take(range(1, n + 1), axis=axis)
        both = mask.take(range(n), axis=axis) & mask.take(range(1, n + 1), axis=axis)
        smooth = smooth + ((np.abs(a - b).max(-1) < step) & both).sum((1, 2))
        pairs = pairs + both.sum((1, 2))
    return smooth / np.maximum(pairs, 1)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    return images


def colour_classes(images: np.ndarray) -> np.ndarray:
    """Colour class (int64 [N]) of uint8 RGB images [N, H, W, 3] on a white background."""
    images = _check_images(images)
    masks = foreground(images)
    return np.array([colour_class(im, m) for im, m in zip(images, masks)], dtype=np.int64)
