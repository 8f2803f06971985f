"""Upscale then refine tile by tile: every pixel comes from a tile, overlaps blend over a ramp, no seams.

Most tests give `refine_in_tiles` a fake img2img that fills each tile with a constant, so what the output is
made of can be read exactly: painting one tile 255 and everything else 0 (input included) turns the
output into that tile's blend weight at every pixel, and the weights of all tiles must add up to 255.
"""

import numpy as np
import pytest
from PIL import Image

from app.upscale.refine import Tile, plan_tiles, refine_in_tiles

TILE, OVERLAP = 128, 32
RAMP = OVERLAP  # the feathered band of a tile's edge that meets a neighbour: the whole overlap
ROUNDING = 2  # each paste through an 8-bit mask may round by one level


class ConstantTiles:
    """A fake img2img: call i answers a tile filled with values[i] (None: stopped); it keeps every part it got."""

    def __init__(self, values):
        self.values, self.parts = list(values), []

    def __call__(self, part, tile, index, count):
        self.parts.append((part, tile, index, count))
        value = self.values[len(self.parts) - 1]
        return None if value is None else Image.new("RGB", part.size, (value,) * 3)


def tiles_of(size: tuple[int, int]) -> list[Tile]:
    return plan_tiles(size[0], size[1], TILE, OVERLAP)


def refine(size, values, input_value=0, image=None) -> tuple[np.ndarray, ConstantTiles]:
    fake = ConstantTiles(values)
    image = image or Image.new("RGB", size, (input_value,) * 3)
    out = refine_in_tiles(image, fake, tile=TILE, overlap=OVERLAP)
    assert out.image.size == image.size
    return np.asarray(out.image)[..., 0].astype(int), fake


def weights(size) -> list[np.ndarray]:
    """Each tile's blend weight (0..255) at every output pixel."""
    count = len(tiles_of(size))
    return [refine(size, [255 if k == i else 0 for k in range(count)])[0] for i in range(count)]


def inside(tile: Tile, shape) -> np.ndarray:
    rect = np.zeros(shape, bool)
    rect[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width] = True
    return rect


def test_tiles_cover_the_picture_with_overlap():
    tiles = plan_tiles(300, 200, tile=128, overlap=32)
    covered = np.zeros((200, 300), bool)
    for t in tiles:
        assert t.width == 128 and t.height == 128 and t.x + t.width <= 300 and t.y + t.height <= 200
        covered[t.y:t.y + t.height, t.x:t.x + t.width] = True
    assert covered.all()
    assert plan_tiles(64, 64, tile=1024, overlap=64)[0].width == 64  # one tile when the picture is small


def test_each_tile_gets_its_own_part_of_the_picture():
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (192, 288, 3), dtype=np.uint8))
    _, fake = refine((288, 192), [0] * len(tiles_of((288, 192))), image=picture)
    assert len(fake.parts) == len(tiles_of((288, 192))) == 6
    for index, ((part, tile, number, count), t) in enumerate(zip(fake.parts, tiles_of((288, 192)))):
        assert (tile, number, count, part.size) == (t, index, 6, (128, 128))
        assert np.array_equal(np.asarray(part), np.asarray(picture)[t.y:t.y + 128, t.x:t.x + 128])


@pytest.mark.parametrize("size", [(192, 128), (288, 192), (128, 128), (300, 200), (100, 70), (200, 90)])
def test_every_output_pixel_comes_from_the_tiles(size):
    out, _ = refine(size, [0] * len(tiles_of(size)), input_value=255)
    shows_input = out > ROUNDING
    assert not shows_input.any(), f"{shows_input.sum()} pixels still show the input, e.g. (y, x) {np.argwhere(shows_input)[0]}"


@pytest.mark.parametrize("size", [(192, 128), (288, 192), (300, 200)])
def test_the_blend_weights_add_up_and_stay_inside_each_tile(size):
    tile_weights = weights(size)
    total = sum(tile_weights)
    assert np.abs(total - 255).max() <= ROUNDING
    for weight, tile in zip(tile_weights, tiles_of(size)):
        assert weight[~inside(tile, weight.shape)].max() == 0
        assert weight[inside(tile, weight.shape)].max() == 255


def test_the_weights_ramp_across_a_side_by_side_overlap():
    left, right = weights((192, 128))  # tiles at x 0 and 64, 128 px tall: they overlap on columns 64..127
    row = 64
    rising, falling = right[row, 64:64 + RAMP + 2], left[row, 64:64 + RAMP + 2]
    assert np.all(np.diff(rising) >= 0) and np.all(np.diff(falling) <= 0)
    assert rising[0] < 255 * 0.15 and rising[-1] == 255  # from nearly none of the new tile to all of it
    assert len(set(rising.tolist())) >= RAMP  # a ramp of many levels, not a step
    assert np.abs(rising + falling - 255).max() <= ROUNDING  # a weighted mix of exactly these two tiles
    assert np.all(left[:, :64] == 255) and np.all(right[:, 64 + RAMP + 2:] == 255)  # one tile alone elsewhere


def test_the_weights_ramp_across_a_stacked_overlap():
    tiles = tiles_of((128, 192))
    assert [(t.x, t.y) for t in tiles] == [(0, 0), (0, 64)]
    top, bottom = weights((128, 192))
    column = 64
    rising, falling = bottom[64:64 + RAMP + 2, column], top[64:64 + RAMP + 2, column]
    assert np.all(np.diff(rising) >= 0) and np.all(np.diff(falling) <= 0)
    assert rising[0] < 255 * 0.15 and rising[-1] == 255
    assert len(set(rising.tolist())) >= RAMP
    assert np.abs(rising + falling - 255).max() <= ROUNDING


@pytest.mark.parametrize("size", [
    (288, 128),  # one row of three tiles
    (288, 192),  # two rows: corners where a tile has neighbours on two sides
    (300, 200),  # the last tile of each row and column flush with the far edge
])
def test_no_seam_where_very_different_tiles_meet(size):
    """Tiles alternating between dark and light: a hard paste would jump by 200 at each border."""
    dark, light = 40, 240
    out, _ = refine(size, [dark, light] * 3)
    step_x, step_y = np.abs(np.diff(out, axis=1)).max(), np.abs(np.diff(out, axis=0)).max()
    assert max(step_x, step_y) <= (light - dark) / RAMP * 2, (step_x, step_y)
    assert out.min() >= dark - ROUNDING and out.max() <= light + ROUNDING  # only the tiles, mixed


def test_tiles_reach_the_far_edges_of_a_picture_not_a_multiple_of_16():
    tiles = tiles_of((300, 200))
    assert max(t.x + t.width for t in tiles) == 300 and max(t.y + t.height for t in tiles) == 200
    assert all(t.width == t.height == TILE for t in tiles)


@pytest.mark.parametrize("size, padded", [((100, 70), (112, 80)), ((40, 30), (64, 64)), ((200, 90), (128, 96))])
def test_a_picture_smaller_than_a_tile_is_refined_at_a_size_img2img_accepts(size, padded):
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    _, fake = refine(size, [0, 0], image=picture)
    assert {part.size for part, *_ in fake.parts} == {(min(padded[0], TILE), padded[1])}
    first = np.asarray(fake.parts[0][0])
    w = min(size[0], TILE)
    assert np.array_equal(first[:size[1], :w], np.asarray(picture)[:, :w])  # the picture itself, then its edge
    assert np.array_equal(first[size[1]:, :w], np.repeat(np.asarray(picture)[-1:, :w], padded[1] - size[1], 0))


def test_a_stopped_tile_keeps_the_tiles_done_over_the_picture():
    picture = Image.new("RGB", (192, 128), (90, 90, 90))  # tiles at x 0 and 64
    fake = ConstantTiles([200, None])
    out = refine_in_tiles(picture, fake, tile=TILE, overlap=OVERLAP)
    pixels = np.asarray(out.image)[..., 0].astype(int)
    assert (out.done, out.total, len(fake.parts)) == (1, 2, 2)
    assert np.all(pixels[:, :64] == 200) and np.all(pixels[:, 128:] == 90)  # the first tile, then the picture
    assert np.all(np.diff(pixels[0, 64:128]) <= 0)  # the first tile's feathered edge fading into it
