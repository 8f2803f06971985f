"""The `ControlNet N` entries of an infotext read back, as sd-webui-controlnet and Easel write them:

    ControlNet 0: "Module: canny, Model: name [hash], Weight: 1, Resize Mode: Crop and Resize,
                   Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0,
                   Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced"

    parse_controlnet_units(params)   # [{"unit": 0, "module": "canny", "resize_mode": "crop-and-resize", ...}]
    controlnet_paste_fields(params)  # {"ControlNet 0 module": "canny", "ControlNet 0 resize_mode": "Crop and Resize", ...}

The first gives ControlNetAddon's fields (the UI's "send to" and any front end building a request);
the second the keys A1111's /png-info gains from the extension's infotext hook. `params` is
`parse_infotext(text).params`. Neither raises: a value that does not read is left out. The extension's
pre-1.1.4 entries ("preprocessor: ..., starting/ending: (0, 1)") are not read, as the extension no
longer reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_UNIT_KEY = re.compile(r"ControlNet (\d+)")
RESIZE_MODES = {"just resize": "just-resize", "crop and resize": "crop-and-resize",
                "resize and fill": "resize-and-fill", "inner fit (scale to fit)": "crop-and-resize",
                "outer fit (shrink to fit)": "resize-and-fill"}
CONTROL_MODES = {"balanced": "balanced", "my prompt is more important": "prompt",
                 "controlnet is more important": "controlnet"}
# Easel's value -> the extension's enum value, which its infotext hook gives.
DISPLAY_NAMES = {
    "resize_mode": {"just-resize": "Just Resize", "crop-and-resize": "Crop and Resize",
                    "resize-and-fill": "Resize and Fill"},
    "control_mode": {"balanced": "Balanced", "prompt": "My prompt is more important",
                     "controlnet": "ControlNet is more important"},
}


def _flag(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(text)
    return text == "True"


def _choice(table: Mapping[str, str]) -> Callable[[str], str]:
    return lambda text: table[text.strip().lower()]


# Infotext key -> (the ControlNetAddon field, its reader, the extension's field or None where it has none).
FIELDS: dict[str, tuple[str, Callable[[str], Any], str | None]] = {
    "Module": ("module", str, "module"),
    "Model": ("model", str, "model"),
    "Weight": ("weight", float, "weight"),
    "Resize Mode": ("resize_mode", _choice(RESIZE_MODES), "resize_mode"),
    "Processor Res": ("processor_res", lambda text: int(float(text)), "processor_res"),
    "Threshold A": ("threshold_a", float, "threshold_a"),
    "Threshold B": ("threshold_b", float, "threshold_b"),
    "Guidance Start": ("guidance_start", float, "guidance_start"),
    "Guidance End": ("guidance_end", float, "guidance_end"),
    "Pixel Perfect": ("pixel_perfect", _flag, "pixel_perfect"),
    "Control Mode": ("control_mode", _choice(CONTROL_MODES), "control_mode"),
    "Union Control Type": ("control_type", str.lower, None),  # Easel's, for union models
}


def unit_entries(params: Mapping[str, str]) -> list[tuple[int, dict[str, str]]]:
    """(N, {infotext key: value text}) of each `ControlNet N` entry, in N's order."""
    units = []
    for key, value in params.items():
        match = _UNIT_KEY.fullmatch(key.strip())
        if match:
            units.append((int(match[1]), _pairs(value)))
    return sorted(units, key=lambda unit: unit[0])


def parse_controlnet_units(params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each `ControlNet N` entry as ControlNetAddon's fields (Easel's values: "crop-and-resize",
    "balanced"), with "unit": N. The model is as written ("name [hash]"), which a unit accepts."""
    out = []
    for number, pairs in unit_entries(params):
        unit: dict[str, Any] = {"unit": number}
        for key, text in pairs.items():
            if key in FIELDS:
                ours, read, _ = FIELDS[key]
                try:
                    unit[ours] = read(text)
                except (KeyError, ValueError):
                    continue
        out.append(unit)
    return out


def controlnet_paste_fields(params: Mapping[str, str]) -> dict[str, Any]:
    """"ControlNet N <field>" -> value, as A1111 with sd-webui-controlnet adds them to an infotext's
    parsed parameters: the extension's field names, its display values ("Crop and Resize")."""
    out: dict[str, Any] = {}
    for number, pairs in unit_entries(params):
        for key, text in pairs.items():
            if key not in FIELDS or FIELDS[key][2] is None:
                continue
            ours, read, theirs = FIELDS[key]
            try:
                value = read(text)
            except (KeyError, ValueError):
                continue
            out[f"ControlNet {number} {theirs}"] = DISPLAY_NAMES.get(ours, {}).get(value, value)
    return out


def _pairs(text: str) -> dict[str, str]:
    """"Key: value, Key: value" -> {key: value}; a part without ": " is skipped."""
    pairs = {}
    for part in str(text).split(","):
        key, sep, value = part.partition(":")
        if sep and key.strip():
            pairs[key.strip()] = value.strip()
    return pairs
