"""Upscale, then refine with diffusion tile by tile (SD upscale, as A1111's script does it).

Each tile runs img2img at low strength through the engine, so memory stays bounded by the tile size
whatever the output size (a 4K picture is 16 tiles of 1024 px), and the tiles are blended with feathered
edges where they overlap so no seams show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter

from app.generation.request import validate_request


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int


def plan_tiles(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles (multiples of 16) covering the picture, each overlapping its neighbours by `overlap` px."""
    tile = max(64, tile // 16 * 16)
    overlap = min(overlap, tile // 2)

    def starts(total: int) -> list[int]:
        if total <= tile:
            return [0]
        step = tile - overlap
        out = list(range(0, total - tile, step)) + [total - tile]
        return sorted(set(out))

    tw, th = min(tile, width), min(tile, height)
    return [Tile(x, y, tw, th) for y in starts(height) for x in starts(width)]


def feather_mask(tile: Tile, overlap: int, image_size: tuple[int, int]) -> Image.Image:
    """Opaque inside, fading to transparent over `overlap` px on sides that touch another tile."""
    mask = Image.new("L", (tile.width, tile.height), 255)
    if overlap <= 0:
        return mask
    draw = ImageDraw.Draw(mask)
    w, h = image_size
    ramp = overlap // 2
    for i in range(ramp):
        value = int(255 * (i + 1) / (ramp + 1))
        if tile.x > 0:
            draw.line([(i, 0), (i, tile.height)], fill=value)
        if tile.y > 0:
            draw.line([(0, i), (tile.width, i)], fill=value)
        if tile.x + tile.width < w:
            draw.line([(tile.width - 1 - i, 0), (tile.width - 1 - i, tile.height)], fill=value)
        if tile.y + tile.height < h:
            draw.line([(0, tile.height - 1 - i), (tile.width, tile.height - 1 - i)], fill=value)
    return mask.filter(ImageFilter.BoxBlur(1))


def refine_tiled(image: Image.Image, generate: Callable, *, prompt: str, model: str | None, strength: float,
                 steps: int | None, seed: int, tile: int = 1024, overlap: int = 64,
                 on_tile: Callable[[int, int], None] | None = None) -> Image.Image:
    """img2img over each tile of `image` (already upscaled); `generate(request) -> GenerationResult`."""
    image = image.convert("RGB")
    width, height = image.size
    crop_w, crop_h = width // 16 * 16, height // 16 * 16
    base = image.crop((0, 0, crop_w, crop_h))
    tiles = plan_tiles(crop_w, crop_h, tile, overlap)
    out = base.copy()
    for i, t in enumerate(tiles):
        if on_tile:
            on_tile(i, len(tiles))
        piece = base.crop((t.x, t.y, t.x + t.width, t.y + t.height))
        request = validate_request(task="img2img", prompt=prompt, model=model, image=piece, width=t.width,
                                   height=t.height, strength=strength, steps=steps, seed=seed + i, save=False)
        done = generate(request)
        if done.interrupted or not done.images:
            from app.errors import Interrupted

            raise Interrupted(f"refining was interrupted at tile {i + 1} of {len(tiles)}")
        refined = done.images[0]
        out.paste(refined, (t.x, t.y), feather_mask(t, overlap, (crop_w, crop_h)))
    if (crop_w, crop_h) != (width, height):
        full = image.copy()
        full.paste(out, (0, 0))
        return full
    return out
