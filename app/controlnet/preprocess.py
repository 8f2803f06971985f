"""ControlNet preprocessors (annotators) as sd-webui-controlnet offers them.

Module names, UI labels, control types, slider specs and the order of the list are the extension's
(v1.1.455, `scripts/preprocessor/*`: what `/controlnet/module_list` and `/controlnet/control_types`
return), for the preprocessors Easel has. Each runs one small function of `app.controlnet.annotators`;
the detectors that need weights read them from the annotators folder (models/annotators) and never
download them.

Sliders: the resolution slider is shown only where the preprocessor uses the resolution (the
extension's older `preprocessor_sliders_config` hid it for tile_resample, recolor_* and invert; its
current code shows it but ignores it). Values out of a slider's range fall back to the default, as
the extension's unit bound check does (API clients send -1 for "default").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
from PIL import Image

from app.controlnet.annotators import basic, depth, lineart, openpose
from app.controlnet.annotators.base import AnnotatorCall, LoadedAnnotators, WeightNeed
from app.controlnet.preprocess_sizing import hwc3
from app.errors import InvalidRequest, MissingModelFiles


@dataclass(frozen=True)
class SliderSpec:
    label: str
    minimum: float
    maximum: float
    default: float
    step: float

    def api_json(self) -> dict:
        """As sd-webui-controlnet's module_detail lists a slider."""
        return {"name": self.label, "value": self.default, "min": self.minimum, "max": self.maximum,
                "step": self.step}

    def resolve(self, value: float | None) -> float:
        if value is None or value < self.minimum or value > self.maximum:
            return self.default
        return value


RESOLUTION = SliderSpec("Resolution", 64, 2048, 512, 8)


@dataclass(frozen=True)
class Preprocessor:
    name: str  # the module name sd-webui-controlnet's API takes
    label: str  # what its UI shows (an alias for some)
    control_types: tuple[str, ...]
    annotate: Callable[[np.ndarray, AnnotatorCall], np.ndarray]
    resolution: SliderSpec | None = RESOLUTION
    threshold_a: SliderSpec | None = None
    threshold_b: SliderSpec | None = None
    weights: tuple[WeightNeed, ...] = ()
    priority: int = 0  # the extension's sorting_priority: higher first in the list

    @property
    def needs_weights(self) -> bool:
        return bool(self.weights)

    def sliders(self) -> list[SliderSpec]:
        return [s for s in (self.resolution, self.threshold_a, self.threshold_b) if s is not None]

    def module_detail(self) -> dict:
        """As /controlnet/module_list's module_detail gives it (model_free: the unit needs no
        ControlNet model, which is never the case for these)."""
        return {"model_free": False, "sliders": [s.api_json() for s in self.sliders()]}

    def settings(self, resolution: int | None, threshold_a: float | None,
                 threshold_b: float | None) -> tuple[int, float, float]:
        """The values a run uses: a missing or out-of-range threshold is its default; a resolution
        under the slider's minimum (or None, or -1) is its default, one above the maximum is kept
        (pixel-perfect resolutions of large pictures pass 2048, as they do in the extension)."""
        spec = self.resolution or RESOLUTION
        res = spec.default if resolution is None or resolution < spec.minimum else resolution
        a = self.threshold_a.resolve(threshold_a) if self.threshold_a else 0.0
        b = self.threshold_b.resolve(threshold_b) if self.threshold_b else 0.0
        return int(res), float(a), float(b)

    def missing_files(self, annotators_dir: Path) -> list[str]:
        """What must be put where before this preprocessor can run; empty when it can."""
        return [need.describe(annotators_dir) for need in self.weights if need.found(annotators_dir) is None]

    def run(self, image: Image.Image, *, resolution: int | None, threshold_a: float | None,
            threshold_b: float | None, annotators_dir: Path, device: str = "cpu",
            loaded: LoadedAnnotators | None = None) -> Image.Image:
        """The control map (RGB) of `image`, at the size the preprocessor makes it: the input scaled
        so its short side is the resolution for detectors, the input's own size (or a fraction of it
        for tile_resample) for the others. `fit_control_map` brings it to the job's size.

        `loaded` keeps detector models between runs (the caller owns it); `device` is where they run.
        """
        missing = self.missing_files(annotators_dir)
        if missing:
            raise MissingModelFiles(f"The {self.name} preprocessor needs its weights: put " + "; and ".join(missing))
        res, a, b = self.settings(resolution, threshold_a, threshold_b)
        call = AnnotatorCall(resolution=res, threshold_a=a, threshold_b=b, annotators_dir=Path(annotators_dir),
                             device=device, loaded=loaded)
        return Image.fromarray(hwc3(self.annotate(hwc3(image), call)))


def _slider(label: str, minimum: float, maximum: float, default: float, step: float = 0.01) -> SliderSpec:
    return SliderSpec(label, minimum, maximum, default, step)  # the extension's step default is 0.01


_GAMMA = _slider("Gamma Correction", 0.1, 2.0, 1.0, 0.001)

# The extension tags invert with Scribble and MLSD too; Easel has no such control types.
_TABLE = (
    Preprocessor("none", "none", (), basic.identity, resolution=None, priority=10),
    Preprocessor("canny", "canny", ("Canny",), basic.canny,
                 threshold_a=_slider("Low Threshold", 1, 255, 100, 1),
                 threshold_b=_slider("High Threshold", 1, 255, 200, 1), priority=100),
    Preprocessor("invert", "invert (from white bg & black line)", ("Canny", "Lineart"), basic.invert,
                 resolution=None, priority=20),
    Preprocessor("tile_resample", "tile_resample", ("Tile",), basic.tile_resample, resolution=None,
                 threshold_a=_slider("Down Sampling Rate", 1.0, 8.0, 1.0), priority=100),
    Preprocessor("blur_gaussian", "blur_gaussian", ("Tile",), basic.blur_gaussian,
                 threshold_a=_slider("Sigma", 0.01, 64.0, 9.0)),
    Preprocessor("recolor_luminance", "recolor_luminance", ("Recolor",), basic.recolor_luminance,
                 resolution=None, threshold_a=_GAMMA, priority=100),
    Preprocessor("recolor_intensity", "recolor_intensity", ("Recolor",), basic.recolor_intensity,
                 resolution=None, threshold_a=_GAMMA),
    Preprocessor("lineart_standard", "lineart_standard (from white bg & black line)", ("Lineart",),
                 basic.lineart_standard, priority=100),
    Preprocessor("lineart", "lineart_realistic", ("Lineart",), lineart.lineart_realistic,
                 weights=(lineart.WEIGHTS_REALISTIC,)),
    Preprocessor("lineart_coarse", "lineart_coarse", ("Lineart",), lineart.lineart_coarse,
                 weights=(lineart.WEIGHTS_COARSE,)),
    Preprocessor("depth_anything_v2", "depth_anything_v2", ("Depth",), depth.depth_anything_v2,
                 weights=(depth.WEIGHTS,)),
    Preprocessor("openpose", "openpose", ("OpenPose",), openpose.openpose, weights=(openpose.WEIGHTS,)),
)


def _sorted(table: tuple[Preprocessor, ...]) -> tuple[Preprocessor, ...]:
    """none first, then as the extension sorts: by priority, then label, both descending."""
    rest = sorted((p for p in table if p.name != "none"), key=lambda p: str(p.priority).zfill(8) + p.label,
                  reverse=True)
    return tuple(p for p in table if p.name == "none") + tuple(rest)


_SORTED = _sorted(_TABLE)
_BY_KEY: Mapping[str, Preprocessor] = MappingProxyType(
    {k.lower(): p for p in _SORTED for k in (p.name, p.label)})


def list_preprocessors() -> list[Preprocessor]:
    """Every preprocessor, in the order of the extension's module list."""
    return list(_SORTED)


def preprocessor(name: str, field: str = "module") -> Preprocessor:
    """The preprocessor of that module name or UI label, any case; InvalidRequest naming the allowed
    names otherwise."""
    found = _BY_KEY.get(str(name).strip().lower())
    if found is None:
        allowed = ", ".join(p.name for p in _SORTED)
        raise InvalidRequest(field, f"unknown preprocessor {name!r}; allowed: {allowed} "
                                    f"(or the UI labels: {', '.join(p.label for p in _SORTED if p.label != p.name)})")
    return found


@dataclass(frozen=True)
class ControlType:
    """A control type of the extension's UI: the preprocessors it lists and the one it selects."""

    name: str
    modules: tuple[str, ...]  # module names, "none" first
    default_module: str

    @property
    def module_labels(self) -> tuple[str, ...]:
        return tuple(preprocessor(m).label for m in self.modules)

    @property
    def default_label(self) -> str:
        return preprocessor(self.default_module).label


def _control_types(ordered: tuple[Preprocessor, ...]) -> Mapping[str, ControlType]:
    """"All" with every module (default none), then each tag in alphabetical order with none and
    its tagged modules; the default is the first after none (the extension's get_default_preprocessor)."""
    types = {"All": ControlType("All", tuple(p.name for p in ordered), "none")}
    for tag in sorted({t for p in ordered for t in p.control_types}):
        modules = tuple(p.name for p in ordered if p.name == "none" or tag in p.control_types)
        types[tag] = ControlType(tag, modules, modules[1] if len(modules) > 1 else modules[0])
    return MappingProxyType(types)


CONTROL_TYPES: Mapping[str, ControlType] = _control_types(_SORTED)
