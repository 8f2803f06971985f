"""The shapes world the demo models are trained on: captions, drawing, and a pixel judge.

Every picture is one flat-coloured shape (circle, square or triangle) on a flat background, captioned
"a red circle on a blue background" (or "a red circle on the left of a blue background" when the shape
is offset). Pictures are drawn on the fly with PIL from a numpy Generator, so a seed gives the same data.

The judge reads colours back from any picture, drawn or generated: the nearest named colour of the
median pixel where the shape should be, and of the border ring, where only background should be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import torch

Picture = Union[Image.Image, np.ndarray]  # a PIL picture or an (h, w, 3) RGB array

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType({
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
})
# Colours the base models never saw, taught by the demo LoRAs (app/demo/train_lora.py). Kept out of
# COLOURS, so the base captions and the judge's default palette stay those the base models learnt.
NEW_COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType({"purple": (140, 40, 200)})
PALETTE: Mapping[str, tuple[int, int, int]] = MappingProxyType({**COLOURS, **NEW_COLOURS})
POSITIONS: tuple[str, ...] = ("center", "left", "right")  # "center" goes unsaid in captions

# Geometry as fractions of the image side: (smallest, largest) half-extent of the shape, and how far its
# centre may stray from the nominal point. A shape stays clear of the border ring the judge reads, and a
# triangle's inradius (half its half-extent) still covers the judge's centre patch after the jitter.
GEOMETRY: Mapping[str, tuple[tuple[float, float], float]] = MappingProxyType(
    {"center": ((0.24, 0.36), 0.08), "left": ((0.18, 0.2), 0.03), "right": ((0.18, 0.2), 0.03)})
SIDE_OFFSET = 0.18  # left/right shapes sit this far from the centre
BORDER = 0.06  # width of the ring the judge reads as background
PATCH = 0.04  # half-width of the patch the judge reads as the shape
SUPERSAMPLE = 4  # draw larger, then downsample: antialiased edges like the pictures a VAE can rebuild


@dataclass(frozen=True)
class ShapeSpec:
    """What a caption asks for."""

    shape: str
    colour: str
    background: str
    position: str = "center"

    @property
    def caption(self) -> str:
        where = "on" if self.position == "center" else f"on the {self.position} of"
        return f"a {self.colour} {self.shape} {where} a {self.background} background"

    def centre(self, size: int) -> tuple[float, float]:
        """The nominal centre of the shape in pixels (x, y) for a square image of side `size`."""
        dx = {"center": 0.0, "left": -SIDE_OFFSET, "right": SIDE_OFFSET}[self.position]
        return ((0.5 + dx) * size, 0.5 * size)


def _all_specs(positions: tuple[str, ...]) -> tuple[ShapeSpec, ...]:
    return tuple(
        ShapeSpec(shape, colour, background, position)
        for position, shape, colour, background in product(positions, SHAPES, COLOURS, COLOURS)
        if colour != background
    )


SPECS: tuple[ShapeSpec, ...] = _all_specs(("center",))
SIDE_SPECS: tuple[ShapeSpec, ...] = _all_specs(("left", "right"))
CAPTIONS: tuple[str, ...] = tuple(spec.caption for spec in SPECS)
SIDE_CAPTIONS: tuple[str, ...] = tuple(spec.caption for spec in SIDE_SPECS)

_COLOUR_WORDS, _SHAPE_WORDS = "|".join(COLOURS), "|".join(SHAPES)
_CAPTION_RE = re.compile(
    rf"^an? (?P<colour>{_COLOUR_WORDS}) (?P<shape>{_SHAPE_WORDS})"
    rf"(?: on the (?P<position>left|right|center|centre|middle) of| on| in the (?:center|centre|middle) of)"
    rf" an? (?P<background>{_COLOUR_WORDS}) background$"
)


def parse_caption(text: str) -> ShapeSpec | None:
    """The spec a caption asks for, or None when it is not a shapes caption (case, spacing, "an" and a
    final full stop are forgiven; a shape the colour of its background is not)."""
    norm = " ".join(text.lower().split()).rstrip(".").strip()
    m = _CAPTION_RE.match(norm)
    if m is None or m["colour"] == m["background"]:
        return None
    position = m["position"] or "center"
    if position in ("centre", "middle"):
        position = "center"
    return ShapeSpec(m["shape"], m["colour"], m["background"], position)


def draw(spec: ShapeSpec | str, size: int, rng: np.random.Generator) -> Image.Image:
    """Draw one picture of `spec` (a spec or a caption) at `size`×`size`, with random size and jitter."""
    if isinstance(spec, str):
        parsed = parse_caption(spec)
        if parsed is None:
            raise ValueError(f"not a shapes caption: {spec!r}")
        spec = parsed
    (lo, hi), jitter = GEOMETRY[spec.position]
    radius = rng.uniform(lo, hi)
    jx, jy = rng.uniform(-jitter, jitter, size=2)
    cx, cy = spec.centre(1)
    return draw_at(spec, size, cx + jx, cy + jy, radius)


def draw_at(spec: ShapeSpec, size: int, centre_x: float, centre_y: float, radius: float) -> Image.Image:
    """Draw `spec`'s shape and colours with its centre at (centre_x, centre_y) and half-extent `radius`,
    all fractions of the side (the demo ControlNets train on shapes anywhere in the picture)."""
    big = size * SUPERSAMPLE
    cx, cy, r = centre_x * big, centre_y * big, radius * big
    img = Image.new("RGB", (big, big), PALETTE[spec.background])
    pen = ImageDraw.Draw(img)
    fill = PALETTE[spec.colour]
    if spec.shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif spec.shape == "square":
        h = r * 0.85  # about the circle's area, so no shape is a much bigger target than another
        pen.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif spec.shape == "triangle":
        # Equilateral, centroid at the centre; inradius r/2 still covers the judge's centre patch.
        s = r * np.sqrt(3) / 2
        pen.polygon([(cx, cy - r), (cx - s, cy + r / 2), (cx + s, cy + r / 2)], fill=fill)
    else:
        raise ValueError(f"unknown shape {spec.shape!r}")
    return img.resize((size, size), Image.Resampling.BOX)


def sample_specs(n: int, rng: np.random.Generator, side_fraction: float = 0.0) -> list[ShapeSpec]:
    """`n` specs drawn uniformly, a `side_fraction` of them offset to the left or right."""
    side = rng.random(n) < side_fraction
    return [
        SIDE_SPECS[rng.integers(len(SIDE_SPECS))] if s else SPECS[rng.integers(len(SPECS))] for s in side
    ]


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL pictures -> float tensor (n, 3, h, w) in [-1, 1]."""
    import torch

    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).div(127.5).sub(1.0)


def sample_batch(n: int, size: int, rng: np.random.Generator,
                 side_fraction: float = 0.0) -> tuple[torch.Tensor, list[str]]:
    """`n` random pictures at `size` px: (tensor (n, 3, size, size) in [-1, 1], their captions)."""
    specs = sample_specs(n, rng, side_fraction)
    return to_tensor([draw(s, size, rng) for s in specs]), [s.caption for s in specs]


def nearest_colour(rgb: Sequence[float] | np.ndarray, palette: Mapping[str, tuple[int, int, int]] = COLOURS) -> str:
    """The name of the colour in `palette` nearest (Euclidean, RGB) to `rgb`."""
    rgb = np.asarray(rgb, dtype=np.float32)
    names = list(palette)
    table = np.array([palette[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def _pixels(image: Picture) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB picture (h, w, 3), got shape {arr.shape}")
    return arr


def shape_colour(image: Picture, spec: ShapeSpec, palette: Mapping[str, tuple[int, int, int]] = COLOURS) -> str:
    """The named colour of the median pixel in a small patch where the shape should be."""
    arr = _pixels(image)
    h, w, _ = arr.shape
    cx, cy = spec.centre(w)[0], spec.centre(h)[1]
    half = max(1, round(PATCH * min(h, w)))
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    patch = arr[max(0, y0): y0 + 2 * half, max(0, x0): x0 + 2 * half].reshape(-1, 3)
    return nearest_colour(np.median(patch, axis=0), palette)


def background_colour(image: Picture, palette: Mapping[str, tuple[int, int, int]] = COLOURS) -> str:
    """The named colour of the median pixel of the border ring."""
    arr = _pixels(image)
    h, w, _ = arr.shape
    b = max(1, round(BORDER * min(h, w)))
    ring = np.concatenate([arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3),
                           arr[b:-b, :b].reshape(-1, 3), arr[b:-b, -b:].reshape(-1, 3)])
    return nearest_colour(np.median(ring, axis=0), palette)


def judge(image: Picture, spec: ShapeSpec,
          palette: Mapping[str, tuple[int, int, int]] = COLOURS) -> tuple[bool, bool]:
    """(shape colour right, background colour right) for a picture meant to show `spec`, reading colours
    as the nearest in `palette` (PALETTE for pictures that may hold a new colour)."""
    return (shape_colour(image, spec, palette) == spec.colour,
            background_colour(image, palette) == spec.background)


def judge_shape(image: Picture, spec: ShapeSpec) -> str | None:
    """A crude guess at the shape drawn: how much of its bounding box the shape-coloured pixels fill
    (circle π/4 ≈ 0.79, square 1, triangle 0.5). None when no shape-coloured region is found."""
    arr = _pixels(image)
    fg, bg = (np.array(PALETTE[c], dtype=np.float32) for c in (spec.colour, spec.background))
    mask = ((arr - fg) ** 2).sum(-1) < ((arr - bg) ** 2).sum(-1)
    ys, xs = np.nonzero(mask)
    if len(xs) < 4:
        return None
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    fill = len(xs) / box
    if fill < 0.64:
        return "triangle"
    return "circle" if fill < 0.9 else "square"


def shape_centroid(image: Picture, spec: ShapeSpec) -> tuple[float, float] | None:
    """Where the shape is: the centroid of the pixels nearer the shape's colour than the background's,
    as fractions of the width and height (None when there are hardly any)."""
    arr = _pixels(image)
    h, w, _ = arr.shape
    fg, bg = (np.array(PALETTE[c], dtype=np.float32) for c in (spec.colour, spec.background))
    ys, xs = np.nonzero(((arr - fg) ** 2).sum(-1) < ((arr - bg) ** 2).sum(-1))
    if len(xs) < max(4, h * w // 400):
        return None
    return (float(xs.mean()) + 0.5) / w, (float(ys.mean()) + 0.5) / h
