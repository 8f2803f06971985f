"""A1111's img2img scripts (`script_name` + positional `script_args`) as Easel's own: a table. SD upscale
becomes the tiled upscale stage; the outpainting scripts make the inpaint job's canvas and mask.

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


OUTPAINT_DEFAULTS = {"pixels": 128, "directions": ["left", "right", "up", "down"]}  # A1111's, both scripts
MASKED_CONTENT_BY_INDEX = ("fill", "original", "latent-noise", "latent-noise")  # A1111's inpainting_fill 0..3


def _directions(args: list, index: int) -> list[str]:
    value = _arg(args, index, OUTPAINT_DEFAULTS["directions"])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise InvalidRequest(f"script_args[{index}]", f"expected a list of directions (left, right, up, down), got {value!r}")
    return value


def _outpaint(fields: dict[str, Any], pixels: int, blur: int, directions: list[str], index: dict[str, int],
              masked_content: str = "fill") -> None:
    from app.generation.outpaint import Outpaint, outpaint_fields

    if not directions:
        raise InvalidRequest(f"script_args[{index['directions']}]", "no direction: choose from left, right, up, down")
    try:
        outpaint = Outpaint.towards(directions, pixels, feather=blur)
        fields.update(outpaint_fields(fields["image"], outpaint))
    except InvalidRequest as exc:
        arg = {"direction": "directions", "outpaint.feather": "mask_blur"}.get(exc.field, "pixels")
        raise InvalidRequest(f"script_args[{index[arg]}]", exc.message) from None
    fields.update(task="inpaint", masked_content=masked_content, inpaint_only_masked=False)


def poor_mans_outpainting(args: list, fields: dict[str, Any], engine, notes: list[str]) -> None:
    """pixels, mask_blur, inpainting_fill (an index), direction: the canvas grown, the new area inpainted."""
    fill = _number(args, 2, 0, int)
    if not 0 <= fill < len(MASKED_CONTENT_BY_INDEX):
        raise InvalidRequest("script_args[2]", f"{fill!r} is out of range: inpainting_fill 0..3")
    _outpaint(fields, _number(args, 0, OUTPAINT_DEFAULTS["pixels"], int), _number(args, 1, 4, int),
              _directions(args, 3), {"pixels": 0, "mask_blur": 1, "directions": 3}, MASKED_CONTENT_BY_INDEX[fill])


def outpainting_mk2(args: list, fields: dict[str, Any], engine, notes: list[str]) -> None:
    """info, pixels, mask_blur, direction, noise_q, color_variation: the new area starts from the border's
    colours blurred (Easel's fill); mk2's noise settings are for SD1's latents and are not used."""
    _outpaint(fields, _number(args, 1, OUTPAINT_DEFAULTS["pixels"], int), _number(args, 2, 8, int),
              _directions(args, 3), {"pixels": 1, "mask_blur": 2, "directions": 3})
    if len(args) > 4:
        notes.append("outpainting mk2's fall-off exponent and colour variation are not used: the new area "
                     "starts from the border's colours, blurred")


IMG2IMG_SCRIPTS: dict[str, Callable[[list, dict[str, Any], Any, list[str]], None]] = {
    "sd upscale": sd_upscale,
    "poor man's outpainting": poor_mans_outpainting,
    "outpainting mk2": outpainting_mk2,
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
