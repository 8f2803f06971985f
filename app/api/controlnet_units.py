"""sd-webui-controlnet's units, as A1111 clients send them in `alwayson_scripts`, as Easel's ControlNet add-ons.

    units = alwayson_units(alwayson_scripts, engine=engine, model=fields["model"], hires=...)
    fields["addons"] = units.addons         # ControlNetAddon, in the client's order
    units.client_field("addons[1].weight")  # -> "alwayson_scripts.ControlNet.args[2].weight"

Each arg is a unit object as the extension's ControlNetUnit takes it (webuiapi's ControlNetUnit.to_dict,
the extension's API examples): names or the older integers for resize_mode and control_mode, -1 for
"the preprocessor's default", the older field names (input_image, guidance, lowvram). The script key is
matched case-blind ("ControlNet" from webuiapi, "controlnet" from the extension's examples). A unit
without `enabled` is enabled (the default of the extension's older unit class; a client that names a
model means it), one with enabled false or model "None" is skipped. save_detected_map defaults to true,
as in the extension: the detected maps come back after the generated images.

mask / mask_image / effective_region_mask (or an image given as {"image", "mask"}) are where the unit
acts, white: Forge's reading of mask_image. The extension feeds a unit's `mask` to its inpaint
preprocessors, which Easel does not have.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from app.addons.controlnet import without_listed_hash
from app.api.images import decode_image, mask_luminance
from app.errors import EaselError, InvalidRequest
from app.generation.request import ControlNetAddon, invalid_request_from

SCRIPT_KEY = "controlnet"
UNIT_SHAPE = '{"enabled": true, "module": "canny", "model": "<name from /controlnet/model_list>", "image": "<base64>"}'
_OMIT = object()  # a reader's answer for "the add-on's default"
MAX_NAME_CHARS, MAX_TYPE_CHARS = 255, 64  # ControlNetAddon's limits on a model name and a control type
BLANK_MASK_LEVEL = 5  # the extension treats a mask canvas with nothing above this painted as no mask

RESIZE_MODE_NAMES = {
    "just resize": "just-resize", "crop and resize": "crop-and-resize", "resize and fill": "resize-and-fill",
    "inner fit": "crop-and-resize", "outer fit": "resize-and-fill",
    # the extension's older labels, still accepted by its API
    "inner fit (scale to fit)": "crop-and-resize", "scale to fit (inner fit)": "crop-and-resize",
    "outer fit (shrink to fit)": "resize-and-fill", "envelope (outer fit)": "resize-and-fill",
    "just resize (latent upscale)": "just-resize",
    "just-resize": "just-resize", "crop-and-resize": "crop-and-resize", "resize-and-fill": "resize-and-fill",
}
RESIZE_MODE_BY_INDEX = ("just-resize", "crop-and-resize", "resize-and-fill", "just-resize")  # 3: latent upscale
RESIZE_MODES_SHOWN = "Just Resize, Crop and Resize (Inner Fit), Resize and Fill (Outer Fit)"
CONTROL_MODE_NAMES = {"balanced": "balanced", "my prompt is more important": "prompt",
                      "controlnet is more important": "controlnet", "prompt": "prompt", "controlnet": "controlnet"}
CONTROL_MODE_BY_INDEX = ("balanced", "prompt", "controlnet")
CONTROL_MODES_SHOWN = "Balanced, My prompt is more important, ControlNet is more important"
# The extension's union control types (ControlNetUnionControlType) as Easel's union modes; "" lets the
# preprocessor say (Hard Edge is canny or lineart). Other names are passed on as Easel's own ("canny"...).
UNION_TYPES = {"unknown": "", "": "", "hard edge": "", "openpose": "pose", "soft edge": "lineart",
               "normal map": "normal", "segmentation": "segmentation"}
# Unit fields the extension has that change nothing in Easel.
NO_EFFECT = frozenset({
    "low_vram", "lowvram",  # Easel plans memory for the whole job itself
    "hr_option",  # units act on the first pass only (see `alwayson_units`)
    "is_ui", "input_mode", "batch_images", "output_dir", "loopback", "inpaint_crop_input_image", "pulid_mode",
    "batch_mask_dir", "animatediff_batch", "batch_modifiers", "batch_image_files", "batch_keyframe_idx",
})
# Two client names for one field: giving both is refused, as the extension refuses it.
SAME_FIELD = (("image", "input_image"), ("mask", "mask_image"), ("mask", "effective_region_mask"),
              ("mask_image", "effective_region_mask"), ("guidance_end", "guidance"),
              ("union_control_type", "control_type"))


@dataclass
class AlwaysOnUnits:
    """The ControlNet add-ons of a request, where each came from, and what was not used."""

    addons: list[ControlNetAddon] = field(default_factory=list)
    arg_fields: dict[int, str] = field(default_factory=dict)  # addons[i] -> "alwayson_scripts.<key>.args[j]"
    args_field: str = "alwayson_scripts.controlnet.args"
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def client_field(self, ours: str) -> str | None:
        """The field a client sent for one of the request's: addons[0].weight -> ...args[2].weight (None
        when `ours` is not one of these add-ons')."""
        if ours == "addons":
            return self.args_field
        match = re.fullmatch(r"addons\[(\d+)\](?:\.(\w+))?(.*)", ours)
        if not match or int(match[1]) not in self.arg_fields:
            return None
        name = "" if match[2] in (None, "kind") else f".{match[2]}"  # the kind is not a client field
        return f"{self.arg_fields[int(match[1])]}{name}{match[3]}"


def alwayson_units(scripts: Any, *, engine, model: str | None, hires: bool = False) -> AlwaysOnUnits:
    """The ControlNet units of `alwayson_scripts` as add-ons; the other scripts are listed as ignored.
    InvalidRequest naming `alwayson_scripts.<key>.args[i].<field>` for a unit Easel cannot take."""
    out = AlwaysOnUnits()
    if not isinstance(scripts, dict):
        if not _is_empty(scripts):
            out.ignored.append("alwayson_scripts")
        return out
    keys = [k for k in scripts if k.strip().lower() == SCRIPT_KEY]
    out.ignored += [f"alwayson_scripts.{k}" for k, v in scripts.items() if k not in keys and not _is_empty(v)]
    if len(keys) > 1:
        raise InvalidRequest("alwayson_scripts", f"ControlNet is given {len(keys)} times ({', '.join(keys)}): "
                                                 "send all its units under one key")
    if not keys:
        return out
    out.args_field = f"alwayson_scripts.{keys[0]}.args"
    args = _args(scripts[keys[0]], out.args_field)
    models = _ModelNames(engine, model)
    for index, arg in enumerate(args):
        where = f"{out.args_field}[{index}]"
        if arg is None:  # the extension passes over anything that is not a unit
            continue
        if not isinstance(arg, dict):
            raise InvalidRequest(where, f"expected a unit object such as {UNIT_SHAPE}")
        addon = _unit(arg, where, models, out)
        if addon is not None:
            out.arg_fields[len(out.addons)] = where
            out.addons.append(addon)
    if hires and out.addons:
        # Easel's ControlNet units act on the first pass only: the hires pass (hr_option) runs without them.
        out.notes.append("ControlNet units act on the first pass only: the hires pass runs without them")
    return out


def _args(value: Any, where: str) -> list:
    if value is None or value == {}:
        return []
    if not isinstance(value, dict):
        raise InvalidRequest(where.removesuffix(".args"), 'expected {"args": [unit, ...]}')
    args = value.get("args", [])
    if args is None:
        return []
    if not isinstance(args, list):
        raise InvalidRequest(where, f"expected a list of unit objects such as {UNIT_SHAPE}")
    return args


def _unit(arg: dict, where: str, models: "_ModelNames", out: AlwaysOnUnits) -> ControlNetAddon | None:
    """One unit as an add-on; None for a unit that asks for nothing (disabled, or no model)."""
    if not _flag(arg.get("enabled", True), f"{where}.enabled"):
        return None
    model = _model(arg.get("model"), f"{where}.model", models)
    if model is None:
        out.notes.append(f"{where}: no ControlNet model (model {arg.get('model')!r}): the unit was skipped")
        return None
    for one, other in SAME_FIELD:
        if _given(arg.get(one)) and _given(arg.get(other)):
            raise InvalidRequest(f"{where}.{other}", f"{one} and {other} are the same field: give one")
    values: dict[str, Any] = {"model": model, "save_detected_map": True}
    for key, value in arg.items():
        if key in READERS:
            ours, read = READERS[key]
            value = read(value, f"{where}.{key}")
            if value is not _OMIT:
                values[ours] = value
        elif key not in SPECIAL and key not in NO_EFFECT and not _is_empty(value):
            out.ignored.append(f"{where}.{key}")
    image_key = "image" if _given(arg.get("image")) else "input_image"
    image, mask = _image_and_mask(arg.get(image_key), f"{where}.{image_key}")
    mask_key = next((k for k in ("mask", "mask_image", "effective_region_mask") if _given(arg.get(k))), None)
    if mask_key is not None:
        if mask is not None:
            raise InvalidRequest(f"{where}.{mask_key}", f"{image_key} already carries a mask: give one")
        mask = _mask(arg[mask_key], f"{where}.{mask_key}")
    try:
        return ControlNetAddon(**values, image=image, mask=mask)
    except ValidationError as exc:
        error = invalid_request_from(exc)
        name = error.field if error.field in ControlNetAddon.model_fields else None
        message = _range_message(name, values.get(name)) or error.message
        raise InvalidRequest(f"{where}.{name}" if name else where, message) from None


def _range_message(name: str | None, value: Any) -> str | None:
    """"3.0 is out of range: allowed 0..2" for a number outside its field's bounds (None otherwise)."""
    if name is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    low = high = None
    for meta in ControlNetAddon.model_fields[name].metadata:
        low, high = getattr(meta, "ge", low), getattr(meta, "le", high)
    if low is None or high is None or low <= value <= high:
        return None
    return f"{value:g} is out of range: allowed {low:g}..{high:g}"


def _image_and_mask(value: Any, where: str) -> tuple[Any, Any]:
    """The forms the extension reads: base64, {"image": b64, "mask": b64}, [image, mask]; none or ""
    (webuiapi's "no image"): the job's input image."""
    if value is None or value == "":
        return None, None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (str, type(None))) for v in value):
        value = {"image": value[0], "mask": value[1]}
    if isinstance(value, dict):
        image = decode_image(value.get("image"), f"{where}.image")
        mask = value.get("mask")
        return image, (_mask(mask, f"{where}.mask") if mask not in (None, "") else None)
    if isinstance(value, str):
        return decode_image(value, where), None
    raise InvalidRequest(where, 'expected a base64 image or {"image": <base64>, "mask": <base64>} '
                                "(one image per unit)")


def _mask(value: Any, where: str):
    """Where the unit acts (white). A mask with nothing painted is no mask, as in the extension."""
    if value == "":
        return None
    mask = decode_image(value, where)
    return None if mask_luminance(mask).getextrema()[1] <= BLANK_MASK_LEVEL else mask


class _ModelNames:
    """The ControlNet files' names, read once per request, and the family of the job's model."""

    def __init__(self, engine, model: str | None):
        self._engine, self._model = engine, model
        self._names: list[tuple[str, str | None]] | None = None
        self._family: str | None = None

    def closest(self, name: str) -> str:
        """The extension's lookup: the name with or without its "[hash]", else the shortest name holding
        it (the job's family first). Not found: `name` as given, so the engine's error lists the files."""
        if self._names is None:
            self._load()
        wanted = without_listed_hash(name).lower()
        if not wanted:
            return name
        for known, _ in self._names or ():
            if known.lower() == wanted:
                return known
        holding = [(family != self._family, len(known), known) for known, family in self._names or ()
                   if wanted in known.lower()]
        return min(holding)[2] if holding else name

    def _load(self) -> None:
        from app.addons.controlnet import controlnet_files, controlnet_name

        try:
            self._names = [(controlnet_name(f), f.family) for f in controlnet_files(self._engine.catalog())]
            self._family = self._engine.resolve_model(self._model).family
        except EaselError:  # the job's model is unknown: its own field says so
            self._names = self._names or []


def _model(value: Any, where: str, models: _ModelNames) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(where, "expected a ControlNet model name (see /controlnet/model_list)")
    name = value.strip()
    if name.lower() in ("", "none"):
        return None
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(where, f"is not a ControlNet model name (at most {MAX_NAME_CHARS} characters; "
                                    "see /controlnet/model_list)")
    return models.closest(name)


def _module(value: Any, where: str) -> Any:
    from app.controlnet.preprocess import preprocessor

    if value is None:
        return _OMIT
    if not isinstance(value, str):
        raise InvalidRequest(where, "expected a preprocessor name (see /controlnet/module_list)")
    return preprocessor(value, field=where).name


def _number(value: Any, where: str) -> Any:
    if value is None:
        return _OMIT
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer too large for a float
        number = math.nan
    if not math.isfinite(number):
        raise InvalidRequest(where, f"expected a number, got {_shown(value)}")
    return number


def _threshold(value: Any, where: str) -> Any:
    """-1 (or any value out of the slider's range, as the engine reads it): the preprocessor's default."""
    number = _number(value, where)
    return None if number is _OMIT or number == -1 else number


def _processor_res(value: Any, where: str) -> Any:
    """The extension resets a resolution out of its slider's range to the default; so does Easel."""
    from app.generation.request import MAX_PROCESSOR_RES, MIN_PROCESSOR_RES

    number = _number(value, where)
    if number is _OMIT or not MIN_PROCESSOR_RES <= number <= MAX_PROCESSOR_RES:
        return _OMIT
    return int(number)


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise InvalidRequest(where, f"expected true or false, got {_shown(value)}")


def _flag_field(value: Any, where: str) -> Any:
    return _OMIT if value is None else _flag(value, where)


def _named(names: dict[str, str], by_index: tuple[str, ...], allowed: str) -> Callable[[Any, str], Any]:
    """A reader of a choice given by name (any case) or by its index in the extension's list."""
    def read(value: Any, where: str) -> Any:
        if value is None:
            return _OMIT
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(by_index):
            return by_index[value]
        if isinstance(value, str) and value.strip().lower() in names:
            return names[value.strip().lower()]
        raise InvalidRequest(where, f"{_shown(value)} is not allowed: {allowed}, or 0..{len(by_index) - 1}")

    return read


def _control_type(value: Any, where: str) -> Any:
    if value is None:
        return _OMIT
    if not isinstance(value, str):
        raise InvalidRequest(where, "expected a control type name (Canny, Depth, OpenPose ...)")
    name = value.strip().lower()
    if len(name) > MAX_TYPE_CHARS:
        raise InvalidRequest(where, f"{_shown(value)} is not a control type (Canny, Depth, OpenPose ...)")
    return UNION_TYPES.get(name, name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


# Client field -> (the add-on's field, its reader). "image", "input_image", the mask fields, "enabled"
# and "model" are read apart (SPECIAL).
READERS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "module": ("module", _module),
    "weight": ("weight", _number),
    "resize_mode": ("resize_mode", _named(RESIZE_MODE_NAMES, RESIZE_MODE_BY_INDEX, RESIZE_MODES_SHOWN)),
    "processor_res": ("processor_res", _processor_res),
    "threshold_a": ("threshold_a", _threshold),
    "threshold_b": ("threshold_b", _threshold),
    "guidance_start": ("guidance_start", _number),
    "guidance_end": ("guidance_end", _number),
    "guidance": ("guidance_end", _number),  # the extension's older name
    "pixel_perfect": ("pixel_perfect", _flag_field),
    "control_mode": ("control_mode", _named(CONTROL_MODE_NAMES, CONTROL_MODE_BY_INDEX, CONTROL_MODES_SHOWN)),
    "save_detected_map": ("save_detected_map", _flag_field),
    "union_control_type": ("control_type", _control_type),
    "control_type": ("control_type", _control_type),
}
SPECIAL = frozenset({"enabled", "model", "image", "input_image", "mask", "mask_image", "effective_region_mask"})


def _given(value: Any) -> bool:
    """Whether a unit field holds something: webuiapi sends "" for no image, others null."""
    return value is not None and value != ""


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or value == {} or value == {"args": []}
