"""Upscale, then refine with diffusion tile by tile (SD upscale, as A1111's script does it).

Each tile runs img2img at low strength through the engine, so memory stays bounded by the tile size
whatever the output size (a 4K picture is 16 tiles of 1024 px), and the tiles are blended with feathered
edges where they overlap so no seams show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from app.generation.request import MIN_SIZE, SIZE_MULTIPLE, validate_request


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


def plan_tiles(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles covering the whole picture, each overlapping its neighbours by at least `overlap` px.

    The tile size is a multiple of 16; the last tile of a row or column sits flush with the far edge
    (overlapping its neighbour more), so the picture need not be a multiple of the tile or of 16. A side
    shorter than a tile gets one tile that long (a multiple of 16 only if that side is one).
    """
    tile, overlap = _tile_size(tile), _overlap(overlap, tile)

    def starts(total: int) -> list[int]:
        if total <= tile:
            return [0]
        return sorted(set(range(0, total - tile, tile - overlap)) | {total - tile})

    tw, th = min(tile, width), min(tile, height)
    return [Tile(x, y, tw, th) for y in starts(height) for x in starts(width)]


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
    """Blend weight (0..1, height x width) of a tile: 1 inside, fading over `overlap // 2` px on each side
    that meets another tile. Row and column ramps multiply, so where two fades cross (a corner with
    neighbours on two sides) the weight keeps falling smoothly in both directions."""
    w, h = image_size
    ramp = max(0, overlap) // 2
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


def refine_tiled(image: Image.Image, generate: Callable, *, prompt: str, model: str | None, strength: float,
                 steps: int | None, seed: int, tile: int = 1024, overlap: int = 64,
                 on_tile: Callable[[int, int], None] | None = None) -> Image.Image:
    """img2img over each tile of `image` (already upscaled); `generate(request) -> GenerationResult`.

    Every output pixel comes from the tiles: each tile is laid over what the earlier ones made through
    its feathered mask, and the sum is divided by the weight laid down, so the input never shows through.
    """
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    pad_w, pad_h = _padded_size(width, height, tile)
    base = np.pad(rgb, ((0, pad_h - height), (0, pad_w - width), (0, 0)), mode="edge")
    overlap = _overlap(overlap, tile)
    tiles = plan_tiles(pad_w, pad_h, tile, overlap)
    made = np.zeros(base.shape, np.float32)
    weight = np.zeros(base.shape[:2], np.float32)
    for i, t in enumerate(tiles):
        if on_tile:
            on_tile(i, len(tiles))
        box = (slice(t.y, t.y + t.height), slice(t.x, t.x + t.width))
        request = validate_request(task="img2img", prompt=prompt, model=model, image=Image.fromarray(base[box]),
                                   width=t.width, height=t.height, strength=strength, steps=steps, seed=seed + i,
                                   save=False)
        done = generate(request)
        if done.interrupted or not done.images:
            from app.errors import Interrupted

            raise Interrupted(f"refining was interrupted at tile {i + 1} of {len(tiles)}")
        refined = np.asarray(done.images[0].convert("RGB"), np.float32)
        mask = feather_mask(t, overlap, (pad_w, pad_h))
        made[box] += (refined - made[box]) * mask[..., None]
        weight[box] += (1 - weight[box]) * mask
    out = np.rint(made / weight[..., None]).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out[:height, :width])
