"""The shipped sprite outlines and the app's line-copy check of each Pokémon sample."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from diffusion_core.data.datasets import cache_dir, load_dataset, to_uint8
from diffusion_core.data.sprites import dark_pixels
from diffusion_core.evaluation.metrics import closest_by_lines
from diffusion_core.evaluation.outlines import Outlines, closest_sprites, shipped_outlines
from diffusion_core.playground import viz

POKEMON = SimpleNamespace(info=SimpleNamespace(dataset="pokemon"))


def painted(lines: np.ndarray, fill=(200, 40, 40)) -> np.ndarray:
    """uint8 sprites [N, H, W, 3] on white whose dark pixels are exactly `lines` [N, H, W], a flat colour around them."""
    images = np.full((*lines.shape, 3), 255, np.uint8)
    images[:, 10:38, 10:38] = fill
    images[lines] = 40
    return images


def test_shipped_outlines_hold_every_sprite_the_evaluation_compares_with():
    outlines = shipped_outlines()
    assert outlines.lines.shape == (3495, 48, 48) and len(outlines.names) == 3495
    assert outlines.lines.any(axis=(1, 2)).all()  # every sprite has a drawing


@pytest.mark.skipif(not (cache_dir() / "pokemon.npz").exists(), reason="no cached Pokémon (fetch pokemon)")
def test_shipped_outlines_are_those_of_the_data_cache():
    sprites = load_dataset("pokemon", older_drawings=True)
    outlines = shipped_outlines()
    assert outlines.names == sprites.item_names
    assert np.array_equal(outlines.lines, dark_pixels(to_uint8(sprites.x)))


def test_outlines_round_trip_and_agree_with_the_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    train = painted(rng.random((5, 48, 48)) < 0.1)
    outlines = Outlines.from_sprites(train, [f"sprite{i}" for i in range(5)])
    outlines.save(tmp_path / "o.npz")
    back = Outlines.load(tmp_path / "o.npz")
    assert np.array_equal(back.lines, outlines.lines) and back.names == outlines.names
    samples = np.concatenate([painted(outlines.lines[3:4, :, ::-1], (40, 90, 200)),  # a mirrored recolour of 3
                              painted(rng.random((1, 48, 48)) < 0.1)])  # a new drawing
    iou, names, copy = closest_sprites(samples, back)
    best, index = closest_by_lines(samples, train)  # the evaluation's rule, on the sprites themselves
    assert np.allclose(iou, best) and names == [f"sprite{i}" for i in index]
    assert names[0] == "sprite3" and iou[0] == 1 and copy.tolist() == [True, False] and iou[1] < 0.2
    with pytest.raises(ValueError, match="48, 48"):
        closest_sprites(samples[:, :32, :32], back)


def test_copy_notes_name_the_sprite_a_sample_redraws():
    outlines = shipped_outlines()
    pikachu = outlines.names.index("pikachu")
    samples = np.concatenate([painted(outlines.lines[[pikachu]]), painted(np.zeros((1, 48, 48), bool))])
    notes, status = viz.copy_notes(POKEMON, samples)
    copied = notes[0].removeprefix("copy of ")
    assert notes[1] == "" and np.array_equal(outlines.lines[outlines.names.index(copied)], outlines.lines[pikachu])
    assert status == f" · 1 redraws a training sprite's outline: {copied}"
    notes, status = viz.copy_notes(POKEMON, samples[1:])
    assert notes == [""] and "none redraws a training sprite's outline (closest: overlap 0.00" in status
    assert viz.copy_notes(POKEMON, samples, from_noise=False) == (["", ""], "")  # SDEdit keeps its drawing
    assert viz.copy_notes(SimpleNamespace(info=SimpleNamespace(dataset="digits")), samples[:1]) == ([""], "")


def test_tagged_grid_widens_its_columns_so_long_tags_never_touch():
    images, long, other = np.zeros((2, 28, 28, 1), np.uint8), ("Ankle boot (100%)", False), ("Pullover (57%)", False)

    def ink(tags):  # the columns a grid's tags draw in
        return np.flatnonzero((viz.tagged_grid(images, tags, 2, 56)[56 + 6:] != 255).any(axis=(0, 2)))

    left, right = ink([long, ("", None)]), ink([("", None), long])  # one layout: the widest tag sets it
    assert left[-1] + 2 < right[0]  # a white gap between the tags
    grid = viz.tagged_grid(images, [long, other], 2, 56)
    tiles = np.flatnonzero((grid[6:6 + 56, :, 0] == 0).any(axis=0))
    assert len(tiles) == 2 * 56 and grid.shape[1] > 2 * (56 + 6) + 6  # tiles kept at 56 px, columns wider
    assert abs((tiles[0] + tiles[55]) / 2 - (left[0] + left[-1]) / 2) <= 2  # each tile centred over its tag


def test_tagged_grid_makes_room_for_notes_and_fits_them_to_the_tile():
    images, tags = np.zeros((4, 48, 48, 3), np.uint8), [("blue", True)] * 4
    plain = viz.tagged_grid(images, tags, 2, 96)
    noted = viz.tagged_grid(images, tags, 2, 96, ["", "copy of abomasnow-mega-gen7x", "", ""])
    assert noted.shape[0] == plain.shape[0] + 2 * 16 and noted.shape[1] == plain.shape[1]
    assert (noted[96 + 6 + 19:96 + 6 + 35, 6 + 96 + 6:] != 255).any()  # the note, under the second tile
    font = viz.ImageFont.load_default(size=11)
    short = viz.fit_text("copy of abomasnow-mega-gen7x", font, 100)
    assert short.endswith("…") and font.getlength(short) <= 100 and viz.fit_text("copy of abra", font, 100) == "copy of abra"
