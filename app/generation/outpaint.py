"""Outpaint: a picture extended on chosen sides, the new area inpainted (A1111's outpainting scripts).

    fields = outpaint_fields(image, Outpaint(right=128, feather=16))
    request = validate_request(task="inpaint", prompt=..., **fields)

The canvas is the picture with the new strips filled by its edge pixels stretched outward (the model then
starts from the colours at the border, "fill" blurs them further); the mask is white over the new area,
rising from black at the old border over `feather` px into the new area, so every pixel of the picture
itself is kept exactly (inpaint pastes the unmasked pixels back) and the new area fades in from it.
Sizes are multiples of 16, at least 64: the outpainted sides grow up to 15 px more, and a side that is
outpainted on neither end grows at its far end (right, bottom) when it is not one of those already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.errors import InvalidRequest
from app.generation.request import MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE

DIRECTIONS = ("left", "right", "up", "down")
MAX_OUTPAINT = 2048  # px added on one side
MAX_FEATHER = 256


@dataclass(frozen=True)
class Outpaint:
    """Pixels added on each side, and how far into the new area the mask fades in from the old border."""

    left: int = 0
    right: int = 0
    up: int = 0
    down: int = 0
    feather: int = 16

    @classmethod
    def towards(cls, directions, pixels: int, feather: int = 16) -> "Outpaint":
        """A1111's form: the same `pixels` on each of `directions` ("left", "right", "up", "down")."""
        chosen = [d.strip().lower() for d in directions]
        unknown = [d for d in chosen if d not in DIRECTIONS]
        if unknown:
            raise InvalidRequest("direction", f"{unknown[0]!r} is not a direction (allowed: {', '.join(DIRECTIONS)})")
        return cls(**{d: pixels for d in chosen}, feather=feather)

    def check(self) -> None:
        for side in DIRECTIONS:
            value = getattr(self, side)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OUTPAINT:
                raise InvalidRequest(f"outpaint.{side}", f"{value!r} is out of range: 0 to {MAX_OUTPAINT} px")
        if not any(getattr(self, side) for side in DIRECTIONS):
            raise InvalidRequest("outpaint", f"nothing to outpaint: give pixels for at least one of {', '.join(DIRECTIONS)}")
        if not 0 <= self.feather <= MAX_FEATHER:
            raise InvalidRequest("outpaint.feather", f"{self.feather!r} is out of range: 0 to {MAX_FEATHER} px")


def _grow(size: int, before: int, after: int) -> tuple[int, int]:
    """(before, after) grown so that size + before + after is a multiple of 16, and at least 64."""
    total = size + before + after
    short = max(-total % SIZE_MULTIPLE, MIN_SIZE - total)
    if before and not after:
        return before + short, after
    return before, after + short


def outpaint_canvas(image: Image.Image, outpaint: Outpaint) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
    """(canvas, mask, where the picture sits on the canvas)."""
    outpaint.check()
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    left, right = _grow(width, outpaint.left, outpaint.right)
    up, down = _grow(height, outpaint.up, outpaint.down)
    size = (width + left + right, height + up + down)
    if max(size) > MAX_SIZE:
        raise InvalidRequest("outpaint", f"makes a {size[0]}x{size[1]} picture; at most {MAX_SIZE} px per side")
    canvas = np.pad(rgb, ((up, down), (left, right), (0, 0)), mode="edge")
    distance = _distance_outside(size, (left, up, width, height))
    mask = np.where(distance > 0, np.clip(distance / max(1, outpaint.feather), 0, 1) if outpaint.feather else 1.0, 0.0)
    return Image.fromarray(canvas), Image.fromarray(np.rint(mask * 255).astype(np.uint8), "L"), (left, up)


def _distance_outside(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Per pixel of the canvas: how far (px, the larger of the two axes) it lies outside the picture's box."""
    left, up, width, height = box
    xs = np.arange(size[0])
    ys = np.arange(size[1])
    dx = np.maximum(np.maximum(left - xs, xs - (left + width - 1)), 0)
    dy = np.maximum(np.maximum(up - ys, ys - (up + height - 1)), 0)
    return np.maximum(dx[None, :], dy[:, None]).astype(np.float32)


def outpaint_fields(image: Image.Image, outpaint: Outpaint) -> dict:
    """The inpaint request's fields: the canvas, its mask (feathered already: no mask blur on top, which
    would reach into the picture), and the new area starting from the border's colours blurred."""
    canvas, mask, _ = outpaint_canvas(image, outpaint)
    return {"image": canvas, "mask": mask, "mask_blur": 0, "masked_content": "fill", "width": canvas.width,
            "height": canvas.height}
