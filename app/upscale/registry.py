"""Which upscalers exist and how to run one.

An `Upscaler` is a name plus a function `(image, (width, height)) -> image` that returns the image at
exactly that size. The built-ins are Pillow resamplers:

- "None": no upscaler; the image comes back unchanged (A1111's Extras tab does the same).
- "Lanczos", "Nearest": Pillow's resampling filters.

Upscaler model files (ESRGAN, SwinIR, DAT ... loaded with spandrel, see app/upscale/models.py) are
listed by `_model_upscalers(catalog_scan, models)`, one `Upscaler` per usable file of kind "upscaler"
in the catalog, whose `run` loads the file (weights only, never unpickled code), runs it tiled and
resizes the result to the asked size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from app.errors import EaselError, InvalidRequest

MAX_OUTPUT_SIDE = 8192
NONE = "None"

Resize = Callable[[Image.Image, tuple[int, int]], Image.Image]


@dataclass(frozen=True)
class Upscaler:
    """name: what clients pass (A1111's `upscaler_1`). scale: the model's native factor (None for
    resamplers, which take any factor). model_path: the weights file, None for built-ins."""

    name: str
    run: Resize
    scale: float | None = None
    model_name: str | None = None
    model_path: str | None = None


class UnknownUpscaler(EaselError):
    """No upscaler of that name; the message lists the available ones."""

    def __init__(self, name: str, available: Sequence[str]):
        super().__init__(f"no upscaler named {name!r}; available: {', '.join(available)}")
        self.name = name
        self.available = list(available)


def _resampler(method: Image.Resampling) -> Resize:
    def run(image: Image.Image, size: tuple[int, int]) -> Image.Image:
        return image if image.size == size else image.resize(size, method)

    return run


def _unchanged(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image


BUILTIN_UPSCALERS = (
    Upscaler(NONE, _unchanged),
    Upscaler("Lanczos", _resampler(Image.Resampling.LANCZOS)),
    Upscaler("Nearest", _resampler(Image.Resampling.NEAREST)),
)


def available_upscalers(catalog_scan=None, models=None) -> list[Upscaler]:
    """The built-ins, then the upscaler model files of `catalog_scan` (a CatalogScan), run by `models`
    (an UpscalerModels; one is made when not given)."""
    return [*BUILTIN_UPSCALERS, *_model_upscalers(catalog_scan, models)]


def _model_upscalers(catalog_scan, models) -> list[Upscaler]:
    """One Upscaler per usable upscaler file in the catalog, named by its file name without extension."""
    if catalog_scan is None:
        return []
    files = catalog_scan.files_of_kind("upscaler")
    if not files:
        return []
    if models is None:
        from app.upscale.models import UpscalerModels

        models = UpscalerModels()
    out = []
    for found in files:
        path = found.path

        def run(image: Image.Image, size: tuple[int, int], path=path) -> Image.Image:
            return models.upscale(path, image, size)

        out.append(Upscaler(name=path.stem, run=run, model_name=path.stem, model_path=str(path)))
    return out


def find_upscaler(name: str, upscalers: Sequence[Upscaler]) -> Upscaler:
    """The upscaler called `name` (case-insensitive); UnknownUpscaler naming the others otherwise."""
    wanted = (name or NONE).strip().lower()
    for upscaler in upscalers:
        if upscaler.name.lower() == wanted:
            return upscaler
    raise UnknownUpscaler(name, [u.name for u in upscalers])


def target_size(
    source: tuple[int, int],
    *,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    max_side: int = MAX_OUTPUT_SIDE,
) -> tuple[int, int]:
    """Output size for `scale` (a factor) or `size` (width, height). InvalidRequest names "scale" or
    "size" when the result would be empty or larger than `max_side` on a side."""
    if (scale is None) == (size is None):
        raise ValueError("give either scale or size")
    width, height = source
    if size is not None:
        field, (out_w, out_h) = "size", size
    else:
        field = "scale"
        if not scale or scale <= 0 or scale != scale or scale == float("inf"):
            raise InvalidRequest(field, f"{scale!r} must be a finite number above 0")
        out_w, out_h = round(width * scale), round(height * scale)
    if out_w < 1 or out_h < 1:
        raise InvalidRequest(field, f"gives a {out_w}x{out_h} image; each side must be at least 1 px")
    if out_w > max_side or out_h > max_side:
        raise InvalidRequest(field, f"gives a {out_w}x{out_h} image; at most {max_side} px per side are allowed")
    return out_w, out_h


def upscale(
    image: Image.Image,
    name: str,
    *,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    upscalers: Sequence[Upscaler] | None = None,
) -> Image.Image:
    """`image` upscaled by the upscaler `name` to `scale` times its size, or to `size` (width, height).

    "None" returns the image as it is, whatever the size asked.
    """
    upscaler = find_upscaler(name, upscalers if upscalers is not None else BUILTIN_UPSCALERS)
    out = target_size(image.size, scale=scale, size=size)
    return upscaler.run(image, out)
