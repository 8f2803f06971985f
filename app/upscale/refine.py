"""Refine a picture with diffusion tile by tile (SD upscale, as A1111's script does it): the tiles and
their blending. The engine's tiled upscale stage (app/engine/tiled_stage.py) runs img2img on each tile.

Each tile runs img2img at low strength, so memory stays bounded by the tile size
whatever the output size (a 4K picture is 16 tiles of 1024 px), and the tiles are blended with feathered
edges where they overlap so no seams show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from app.generation.request import MIN_SIZE, SIZE_MULTIPLE


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int


def _tile_size(tile: int) -> int:
    return max(MIN_SIZE, tile // SIZE_MULTIPLE * SIZE_MULTIPLE)


def _overlap(overlap: int, tile: int) -> int:
    return max(0, min(overlap, _tile_size(tile) // 2))


def plan_tiles(width: int, height: int, tile: int, overlap: int, tile_height: int | None = None) -> list[Tile]:
    """Tiles covering the whole picture, each overlapping its neighbours by at least `overlap` px;
    `tile` px wide and `tile_height` (default: `tile`) px high.

    The tile size is a multiple of 16; the last tile of a row or column sits flush with the far edge
    (overlapping its neighbour more), so the picture need not be a multiple of the tile or of 16. A side
    shorter than a tile gets one tile that long (a multiple of 16 only if that side is one).
    """
    tile_w, tile_h = _tile_size(tile), _tile_size(tile_height or tile)
    overlap = _overlap(overlap, min(tile_w, tile_h))

    def starts(total: int, size: int) -> list[int]:
        if total <= size:
            return [0]
        return sorted(set(range(0, total - size, size - overlap)) | {total - size})

    tw, th = min(tile_w, width), min(tile_h, height)
    return [Tile(x, y, tw, th) for y in starts(height, tile_h) for x in starts(width, tile_w)]


def _ramp(length: int, ramp: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    """1 along `length`, falling linearly to 1/(ramp+1) over `ramp` px at each end that fades."""
    d = np.arange(length, dtype=np.float32)
    out = np.ones(length, np.float32)
    if fade_start:
        out = np.minimum(out, (d + 1) / (ramp + 1))
    if fade_end:
        out = np.minimum(out, (length - d) / (ramp + 1))
    return out


def feather_mask(tile: Tile, overlap: int, image_size: tuple[int, int]) -> np.ndarray:
    """Blend weight (0..1, height x width) of a tile: 1 inside, fading over `overlap` px on each side that
    meets another tile, so neighbours cross-fade over the whole overlap and what a model paints at a
    tile's own edge (a frame, a vignette) is faded out under its neighbour. Row and column ramps
    multiply, so where two fades cross (a corner with neighbours on two sides) the weight keeps
    falling smoothly in both directions."""
    w, h = image_size
    ramp = max(0, overlap)
    columns = _ramp(tile.width, ramp, tile.x > 0, tile.x + tile.width < w)
    rows = _ramp(tile.height, ramp, tile.y > 0, tile.y + tile.height < h)
    return np.outer(rows, columns)


def _padded_size(width: int, height: int, tile: int) -> tuple[int, int]:
    """A side shorter than a tile is padded up to a size img2img accepts (a multiple of 16, at least 64)."""
    def side(total: int) -> int:
        if total >= _tile_size(tile):
            return total
        return max(MIN_SIZE, -(-total // SIZE_MULTIPLE) * SIZE_MULTIPLE)

    return side(width), side(height)


@dataclass
class TiledResult:
    """The blended picture; `done` of `total` tiles were refined (fewer when a tile was stopped)."""

    image: Image.Image
    done: int
    total: int


RefineTile = Callable[[Image.Image, Tile, int, int], "Image.Image | None"]


def refine_in_tiles(image: Image.Image, refine_tile: RefineTile, *, tile: int = 1024, tile_height: int | None = None,
                    overlap: int = 64) -> TiledResult:
    """`refine_tile(part, tile, index, count)` over each tile of `image` (already upscaled), blended.

    `refine_tile` answers the refined part (the part's size), or None when it was stopped. Each tile is
    laid over what the earlier ones made through its feathered mask, and the sum divided by the weight
    laid down, so every output pixel comes from the tiles. When a tile is stopped, the tiles done so far
    are laid over `image` and the rest of it shows as it was.
    """
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    tile_w, tile_h = _tile_size(tile), _tile_size(tile_height or tile)
    pad_w, _ = _padded_size(width, height, tile_w)
    _, pad_h = _padded_size(width, height, tile_h)
    base = np.pad(rgb, ((0, pad_h - height), (0, pad_w - width), (0, 0)), mode="edge")
    overlap = _overlap(overlap, min(tile_w, tile_h))
    tiles = plan_tiles(pad_w, pad_h, tile_w, overlap, tile_height=tile_h)
    made = np.zeros(base.shape, np.float32)
    weight = np.zeros(base.shape[:2], np.float32)
    done = 0
    for index, t in enumerate(tiles):
        box = (slice(t.y, t.y + t.height), slice(t.x, t.x + t.width))
        refined = refine_tile(Image.fromarray(base[box]), t, index, len(tiles))
        if refined is None:
            break
        mask = feather_mask(t, overlap, (pad_w, pad_h))
        made[box] += (np.asarray(refined.convert("RGB"), np.float32) - made[box]) * mask[..., None]
        weight[box] += (1 - weight[box]) * mask
        done += 1
    # In place: at 4096 px each full-size float32 temporary would be another 200 MB.
    if done == len(tiles):
        made /= weight[..., None]
    else:  # stopped: what the tiles made so far over the picture as it came
        np.subtract(1, weight, out=weight)
        made += base * weight[..., None]
    np.rint(made, out=made)
    np.clip(made, 0, 255, out=made)
    return TiledResult(Image.fromarray(made[:height, :width].astype(np.uint8)), done, len(tiles))
