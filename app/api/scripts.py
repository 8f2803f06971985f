"""A1111's img2img scripts (`script_name` + positional `script_args`) as Easel stages: a table.

    script = IMG2IMG_SCRIPTS.get(normalised script_name)
    script(args, fields, engine, notes)  # sets the request's fields (stages, strength, size ...)

The args are what A1111's script `run` takes after `p`, in its order; a missing one takes A1111's
default. A field error names the arg as `script_args[i]`.
"""

from __future__ import annotations

from typing import Any, Callable

from app.errors import InvalidRequest

SD_UPSCALE_DEFAULTS = (None, 64, 1, 2.0)  # info, overlap, upscaler_index (A1111's first after None), scale_factor


def _arg(args: list, index: int, default: Any) -> Any:
    return args[index] if index < len(args) and args[index] is not None else default


def _number(args: list, index: int, default: float, kind=float) -> Any:
    value = _arg(args, index, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"script_args[{index}]", f"expected a number, got {value!r}")
    return kind(value)


def _upscaler_name(value: Any, index: int, engine) -> str:
    """A1111 sends the upscaler as its index in /sdapi/v1/upscalers (a Radio of type "index"); a name works too."""
    names = [u.name for u in engine.upscalers()]
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(names):
        listed = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
        raise InvalidRequest(f"script_args[{index}]", f"{value!r} is not an upscaler index ({listed})")
    return names[value]


def sd_upscale(args: list, fields: dict[str, Any], engine, notes: list[str]) -> None:
    """SD upscale: the init image upscaled, then img2img over tiles of the request's width x height at
    its denoising strength (the img2img pass itself runs on no whole picture: strength 0 first)."""
    overlap = _number(args, 1, SD_UPSCALE_DEFAULTS[1], int)
    upscaler = _upscaler_name(_arg(args, 2, SD_UPSCALE_DEFAULTS[2]), 2, engine)
    scale = _number(args, 3, SD_UPSCALE_DEFAULTS[3])
    stage = {"kind": "tiled_upscale", "upscaler": upscaler, "scale": scale, "overlap": overlap,
             "tile_width": fields.pop("width", None) or 0, "tile_height": fields.pop("height", None) or 0}
    strength = fields.get("strength")
    if strength is not None:
        stage["strength"] = strength
    fields["strength"] = 0
    fields["stages"] = [stage, *fields.get("stages", [])]


IMG2IMG_SCRIPTS: dict[str, Callable[[list, dict[str, Any], Any, list[str]], None]] = {
    "sd upscale": sd_upscale,
}
# A1111 stage field -> the script arg or request field a client sets it with, per stage kind.
SCRIPT_ARG_FIELDS = {
    "tiled_upscale": {"overlap": "script_args[1]", "upscaler": "script_args[2]", "scale": "script_args[3]",
                      "tile_width": "width", "tile_height": "height", "strength": "denoising_strength"},
}


def script_for(name: Any) -> Callable | None:
    """The script of `script_name` (None when Easel has none of that name); A1111 matches titles case-blind."""
    if not isinstance(name, str):
        return None
    return IMG2IMG_SCRIPTS.get(name.strip().lower())
