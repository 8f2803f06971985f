"""What a ControlNet unit's controls offer, as sd-webui-controlnet's UI offers it: the control types, the
preprocessors and models each type lists, the sliders a preprocessor shows, the union modes of a model.

Plain data, no components: `controlnet_unit.py` and `controlnet_controls.py` turn it into updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from app.addons.controlnet import CONTROL_MODE_NAMES, RESIZE_MODE_NAMES, controlnet_files, listed_name
from app.controlnet.preprocess import CONTROL_TYPES, SliderSpec, preprocessor

NO_MODEL = "None"  # the model dropdown's first entry, as the extension's
ALL_TYPES = "All"
CONTROL_MODE_CHOICES = [(label, mode) for mode, label in CONTROL_MODE_NAMES.items()]
RESIZE_MODE_CHOICES = [(label, mode) for mode, label in RESIZE_MODE_NAMES.items()]
DEFAULT_RESIZE_MODE = "crop-and-resize"
SLIDER_SLOTS = ("resolution", "threshold_a", "threshold_b")

# The UI's control types (the extension's names) -> the control types the catalog reads from a
# ControlNet's layout or name (app/controlnet/layouts.py). "All" lists every model.
CATALOG_TYPES: dict[str, tuple[str, ...]] = {
    "Canny": ("canny",),
    "Depth": ("depth",),
    "Lineart": ("lineart",),
    "OpenPose": ("pose",),
    "Recolor": ("gray",),
    "Tile": ("tile", "blur", "low-quality"),
}
# Catalog flavours of union ControlNets: one file, several control types, one picked per unit.
UNION_FLAVOURS = frozenset({"union", "union-pro-2"})
FROM_PREPROCESSOR = ("From the preprocessor", "")


def control_type_names() -> list[str]:
    return list(CONTROL_TYPES)


def module_choices(type_name: str) -> list[tuple[str, str]]:
    """(label, module name) of the preprocessors a control type lists, in the extension's order."""
    control_type = CONTROL_TYPES.get(type_name) or CONTROL_TYPES[ALL_TYPES]
    return [(preprocessor(m).label, m) for m in control_type.modules]


def default_module(type_name: str) -> str:
    return (CONTROL_TYPES.get(type_name) or CONTROL_TYPES[ALL_TYPES]).default_module


def fits_type(found, type_name: str) -> bool:
    """Whether a catalog ControlNet belongs under a control type. Models whose type the catalog could
    not tell are listed under every type (their file names say nothing the filter could use)."""
    wanted = CATALOG_TYPES.get(type_name)
    if wanted is None or not found.control_types:
        return True
    return any(t in wanted for t in found.control_types)


@dataclass(frozen=True)
class ModelOption:
    name: str  # as the dropdown shows and the request sends it: "name [hash]"
    found: object  # the catalog's FoundFile


def model_options(catalog, hash_cache, family: str | None, type_name: str) -> list[ModelOption]:
    """The usable ControlNets of `family` (every family when None) under the control type."""
    return [ModelOption(listed_name(f, hash_cache), f) for f in controlnet_files(catalog)
            if (family is None or f.family == family) and fits_type(f, type_name)]


def model_names(options: Sequence[ModelOption]) -> list[str]:
    return [NO_MODEL, *(o.name for o in options)]


def pick_model(options: Sequence[ModelOption], current: str | None, type_name: str) -> str:
    """The current model while it is listed; else, as the extension does on a type change, the type's
    first model ("None" under All, or when the type has none)."""
    names = [o.name for o in options]
    if current in names:
        return current
    if type_name != ALL_TYPES and names:
        return names[0]
    return NO_MODEL


def option_named(options: Iterable[ModelOption], name: str | None) -> ModelOption | None:
    return next((o for o in options if o.name == name), None)


def union_types(option: ModelOption | None) -> tuple[str, ...] | None:
    """The control types a union model takes (its dropdown's choices); None for other models."""
    if option is None or getattr(option.found, "variant", None) not in UNION_FLAVOURS:
        return None
    return tuple(option.found.control_types)


def union_choices(types: Sequence[str]) -> list[tuple[str, str]]:
    return [FROM_PREPROCESSOR, *((t, t) for t in types)]


def slider_layout(module: str, pixel_perfect: bool) -> dict[str, SliderSpec | None]:
    """The preprocessor's sliders by slot; None where the slot is hidden. Pixel perfect hides the
    resolution, which is then computed from the picture and the job's size (as the extension does)."""
    spec = preprocessor(module)
    return {"resolution": None if pixel_perfect else spec.resolution,
            "threshold_a": spec.threshold_a, "threshold_b": spec.threshold_b}


def missing_note(module: str, annotators_dir: Path) -> str:
    """A warning naming the weights a preprocessor still needs ("" when it can run)."""
    missing = preprocessor(module).missing_files(annotators_dir)
    if not missing:
        return ""
    return f"⚠️ **{module}** needs its weights before it can run: put " + "; and ".join(missing)
