"""ControlNet as an add-on kind: units found by model name in the controlnet folders, their control
maps made by a preprocessor, the models loaded once and kept on the loaded base model.

A job's active units (weight > 0 and a schedule that is not empty) become the pipeline's `controlnet`
component: one model, or the family's Multi model over several, which picks the ControlNet pipeline
class (FluxControlNetPipeline...). A job whose units are all inactive runs the plain pipeline, so its
pictures are the base model's exactly. Loaded ControlNet models are kept while the next job uses them
and dropped when it does not. BFL's FLUX.1 Canny/Depth model and LoRA are listed and chosen as ControlNet
models too; they run with FluxControlPipeline instead (flux_control.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from app.addons import flux_control
from app.addons.base import AddonContext, Prepared
from app.errors import InvalidRequest
from app.families.base import FLUX_CONTROL

log = logging.getLogger(__name__)

MULTI_MODELS = {"flux": "FluxMultiControlNetModel", "sd3": "SD3MultiControlNetModel"}
FAMILY_NAMES = {"flux": "FLUX.1", "sd3": "SD3.5"}
CONTROL_MODE_NAMES = {"balanced": "Balanced", "prompt": "My prompt is more important",
                      "controlnet": "ControlNet is more important"}
RESIZE_MODE_NAMES = {"just-resize": "Just Resize", "crop-and-resize": "Crop and Resize",
                     "resize-and-fill": "Resize and Fill"}
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,10}\]$")  # sd-webui-controlnet's "name [hash]"
MAX_NAMES_SHOWN = 12


@dataclass(frozen=True)
class ResolvedUnit:
    index: int  # its place in the request's addons (errors name addons[index])
    number: int  # its place among the request's ControlNet units ("ControlNet 0" in the infotext)
    unit: Any  # the request's ControlNetAddon
    name: str  # the model's name as the catalog lists it
    path: Path
    family: str
    pixel_hint: bool
    union_mode: int | None  # the control_mode a union model takes, None for single-type models
    source: Any  # the picture the preprocessor reads (the unit's image or the job's input image)
    size: tuple[int, int]  # the job's width x height
    annotators_dir: Path | None
    drop_unconditional: bool  # "ControlNet is more important" where the pipeline batches CFG
    kind: str = "controlnet"
    flavour: str = ""  # the layout's (layouts.ControlNetLayout.flavour)
    brings: tuple = ()  # what other kinds prepare for it: a FLUX.1 Canny/Depth LoRA's LoRA

    @property
    def model_key(self) -> tuple:
        st = self.path.stat()
        return (str(self.path), st.st_size, st.st_mtime_ns)


@dataclass
class ControlNetState:
    """What the loaded base model carries: the ControlNet models by file, the hooks of the last job."""

    models: dict[tuple, Any] = field(default_factory=dict)
    hooks: list[Any] = field(default_factory=list)
    annotators: Any = None  # LoadedAnnotators: the preprocessors' detector models
    parked: Any = None  # flux_control.ParkedTransformer while a FLUX.1 Canny/Depth model's stands in


# The union mode a preprocessor's maps are for (union ControlNets take one mode per unit).
UNION_TYPE_OF_MODULE = {"canny": "canny", "tile_resample": "tile", "blur_gaussian": "blur",
                        "depth_anything_v2": "depth", "openpose": "pose", "recolor_luminance": "gray",
                        "recolor_intensity": "gray", "lineart": "lineart", "lineart_coarse": "lineart",
                        "lineart_standard": "lineart"}


def union_type_of(module) -> str:
    """The union mode for a preprocessor ("" for none, whose maps may be anything)."""
    return UNION_TYPE_OF_MODULE.get(module.name, "")


def without_listed_hash(name: str) -> str:
    """A model name as a request may give it, "name" or "name [hash]" (sd-webui-controlnet's listing), as the name."""
    return _HASH_SUFFIX.sub("", name.strip())


def controlnet_files(catalog) -> list:
    return catalog.files_of_kind("controlnet")


def controlnet_name(found) -> str:
    """The name a ControlNet is called by: its file name without the suffix, or a diffusers folder's name
    as it is (FLUX.1-Canny-dev has a dot but no suffix)."""
    return found.path.name if found.path.is_dir() else found.path.stem


def listed_name(found, hash_cache) -> str:
    """"name [hash]", as sd-webui-controlnet lists a model (a request may give either form)."""
    short = _short_hash(hash_cache, found.path)
    return f"{controlnet_name(found)} [{short}]" if short else controlnet_name(found)


def model_choices(catalog, hash_cache, family: str | None = None) -> list[str]:
    """Every usable ControlNet (of `family`, when given) as listed_name gives it, sorted by name."""
    return [listed_name(f, hash_cache) for f in controlnet_files(catalog)
            if family is None or f.family == family]


class ControlNetKind:
    kind = "controlnet"

    # -- at submit --------------------------------------------------------------------------------------
    def resolve(self, addon, index: int, context: AddonContext) -> ResolvedUnit:
        from app.controlnet.layouts import control_types, layout_of_file
        from app.controlnet.preprocess import preprocessor

        found = self._find(addon.model, index, context)
        family = context.entry.family
        layout = layout_of_file(found.path)
        if layout is None or not (layout.model_class or layout.flavour in flux_control.FLAVOURS):
            raise InvalidRequest(f"addons[{index}].model", f"{controlnet_name(found)!r} is not a ControlNet Easel can "
                                                            "load as a unit")
        if layout.family != family:
            raise InvalidRequest(f"addons[{index}].model",
                                 f"{context.entry.name} cannot take {controlnet_name(found)!r}: it is a "
                                 f"{FAMILY_NAMES.get(layout.family, layout.family)} ControlNet")
        module = preprocessor(addon.module, field=f"addons[{index}].module")
        missing = module.missing_files(context.annotators_dir or Path("models/annotators"))
        if missing:
            raise InvalidRequest(f"addons[{index}].module", f"the {module.name} preprocessor needs its weights: put "
                                                            + "; and ".join(missing))
        request = context.request
        if layout.flavour in flux_control.FLAVOURS:
            flux_control.check_unit(addon, index, request, controlnet_name(found), layout.flavour)
        union_mode = None
        if layout.union_modes:
            wanted = (addon.control_type or union_type_of(module)).lower()
            if wanted not in layout.union_modes:
                allowed = ", ".join(layout.union_modes)
                said = f"{wanted!r}" if wanted else f"the preprocessor {module.name!r} names none"
                raise InvalidRequest(f"addons[{index}].control_type",
                                     f"{controlnet_name(found)!r} is a union ControlNet: say which of its modes to "
                                     f"use ({allowed}); {said}")
            union_mode = layout.union_modes[wanted]
        elif addon.control_type and control_types(layout, found.path.name) and \
                addon.control_type.lower() not in control_types(layout, found.path.name):
            raise InvalidRequest(f"addons[{index}].control_type",
                                 f"{controlnet_name(found)!r} is a {', '.join(control_types(layout, found.path.name))} "
                                 f"ControlNet, not {addon.control_type}")
        number = sum(1 for a in request.addons[:index] if a.kind == self.kind) if request is not None else 0
        source = addon.image if addon.image is not None else getattr(request, "image", None)
        cfg = request.cfg_scale if request is not None and request.cfg_scale is not None else \
            _default_cfg(context)
        unit = ResolvedUnit(index=index, number=number, unit=addon, name=controlnet_name(found), path=found.path,
                            family=family, pixel_hint=layout.pixel_hint, union_mode=union_mode, source=source,
                            size=context.size or (1024, 1024), annotators_dir=context.annotators_dir,
                            drop_unconditional=addon.control_mode == "controlnet" and family == "sd3" and cfg > 1,
                            flavour=layout.flavour)
        if layout.flavour == flux_control.LORA and addon.active:
            from app.addons.lora import refuse_quantized

            refuse_quantized(context.entry, f"addons[{index}].model", "a FLUX.1 Canny/Depth LoRA")
            unit = replace(unit, brings=(flux_control.control_lora(unit),))
        return unit

    def check_together(self, resolved: Sequence[ResolvedUnit]) -> None:
        """Units that cannot run in one job, refused at submit: XLabs beside other layouts, a FLUX.1
        Canny/Depth unit beside any other."""
        flux_control.check_alone(resolved)
        units = [r for r in resolved if r.unit.active]
        if len({u.pixel_hint for u in units}) > 1:
            raise InvalidRequest(f"addons[{units[0].index}].model", "XLabs ControlNets (which read the control "
                                 "picture as pixels) cannot run beside other ControlNets in one job")

    def _find(self, name: str, index: int, context: AddonContext):
        files = controlnet_files(context.catalog)
        wanted = without_listed_hash(name).lower()
        matches = [f for f in files if controlnet_name(f).lower() == wanted or f.path.name.lower() == wanted]
        if not matches:
            names = sorted({controlnet_name(f) for f in files})
            shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (" ..." if len(names) > MAX_NAMES_SHOWN else "")
            raise InvalidRequest(f"addons[{index}].model", f"no ControlNet named {name!r} in the controlnet folders "
                                                           f"(available: {shown or 'none'})")
        return matches[0]

    # -- on the worker ----------------------------------------------------------------------------------
    def prepare(self, loaded, resolved: Sequence[ResolvedUnit], hash_cache) -> Prepared:
        state: ControlNetState = loaded.addon_state.setdefault(self.kind, ControlNetState())
        for handle in state.hooks:
            handle.remove()
        state.hooks.clear()
        units = [r for r in resolved if r.unit.active]
        self.check_together(units)
        kept = {u.model_key for u in units}
        loaded.drop_pipelines_using([m for key, m in state.models.items() if key not in kept])
        state.models = {key: model for key, model in state.models.items() if key in kept}
        if not any(u.flavour == flux_control.MODEL for u in units):
            flux_control.unpark(loaded, state.parked)
            state.parked = None
        if not units:
            return Prepared()
        if units[0].flavour in flux_control.FLAVOURS:
            return self._prepare_flux_control(loaded, state, units[0], hash_cache)
        models = [self._model(loaded, state, unit) for unit in units]
        maps = [control_map(unit, loaded.device.torch_device, _annotators(state)) for unit in units]
        for model in {id(m): m for m in models}.values():  # one hook per model, for the units that use it
            handle = _shaping_hook(model, [u for u, m in zip(units, models) if m is model])
            if handle is not None:
                state.hooks.append(handle)
        one = len(units) == 1
        kwargs: dict[str, Any] = {
            "control_image": maps[0] if one else maps,
            "controlnet_conditioning_scale": units[0].unit.weight if one else [u.unit.weight for u in units],
            "control_guidance_start": [u.unit.guidance_start for u in units],
            "control_guidance_end": [u.unit.guidance_end for u in units],
        }
        if units[0].family == "flux":
            modes = [u.union_mode for u in units]
            if any(mode is not None for mode in modes):
                kwargs["control_mode"] = modes[0] if one else modes
        warnings = [f"ControlNet {u.number}: ControlNet is more important acts through CFG, which this job does "
                    "not batch; it ran as Balanced" for u in units
                    if u.unit.control_mode == "controlnet" and not u.drop_unconditional]
        infotext = {f"ControlNet {u.number}": unit_infotext(u, _short_hash(hash_cache, u.path)) for u in units}
        detected = [m for u, m in zip(units, maps) if u.unit.save_detected_map]
        return Prepared(call_kwargs=kwargs, infotext=infotext, warnings=warnings,
                        components={"controlnet": models[0] if one else _multi(units[0].family, models)},
                        extra_images=detected)

    def _prepare_flux_control(self, loaded, state: ControlNetState, unit: ResolvedUnit, hash_cache) -> Prepared:
        """A FLUX.1 Canny/Depth unit: the control picture for FluxControlPipeline, the transformer it runs
        (the control model's, or the loaded model's with the LoRA the LoRA kind fused)."""
        if unit.flavour == flux_control.MODEL:
            key = unit.model_key
            if key not in state.models:
                from app.runtime.apply import torch_dtype

                model = flux_control.load_control_transformer(unit.path, loaded.entry.variant, torch_dtype(loaded.plan))
                state.parked = flux_control.place_control_transformer(model, loaded, state.parked)
                state.models[key] = model
            transformer = state.models[key]
        else:
            transformer = loaded.base_pipeline.transformer
        control = control_map(unit, loaded.device.torch_device, _annotators(state))
        return Prepared(call_kwargs={"control_image": control},
                        infotext={f"ControlNet {unit.number}": unit_infotext(unit, _short_hash(hash_cache, unit.path))},
                        components={"transformer": transformer}, pipeline_kinds=FLUX_CONTROL,
                        extra_images=[control] if unit.unit.save_detected_map else [])

    def _model(self, loaded, state: ControlNetState, unit: ResolvedUnit):
        key = unit.model_key
        if key not in state.models:
            from app.controlnet.load import load_controlnet
            from app.runtime.apply import place_addon_module, torch_dtype

            model = load_controlnet(unit.path, torch_dtype(loaded.plan))
            model.eval().requires_grad_(False)
            log.info("ControlNet %s: %s", unit.name, place_addon_module(model, loaded.plan, loaded.device))
            state.models[key] = model
        return state.models[key]


def unit_model_bytes(units: Sequence[ResolvedUnit]) -> int:
    """The 16-bit bytes of the ControlNet models the active units run, each file once. A FLUX.1 Canny/Depth
    unit adds none: its whole model stands in for the transformer, its LoRA is fused into it."""
    from app.controlnet.folder import weight_files, weights_folder
    from app.runtime.weights import sixteen_bit_size

    paths = {u.path for u in units if u.unit.active and u.flavour not in flux_control.FLAVOURS}
    files = [f for p in paths for f in ([p] if p.is_file() else weight_files(weights_folder(p)))]
    return sum(sixteen_bit_size(f) for f in files)


def _annotators(state: ControlNetState):
    if state.annotators is None:
        from app.controlnet.annotators.base import LoadedAnnotators

        state.annotators = LoadedAnnotators()
    return state.annotators


def control_map(unit: ResolvedUnit, device: str = "cpu", annotators=None):
    """The unit's control picture at the job's size: preprocessed at its resolution, then fitted."""
    width, height = unit.size
    return detect_map(unit.unit, unit.source, width, height, unit.annotators_dir, device, annotators)


def detect_map(unit, source, width: int, height: int, annotators_dir: Path | None, device: str = "cpu",
               annotators=None):
    """A unit's preprocessor run on `source` as sd-webui-controlnet runs it (pixel perfect: the resolution
    from the picture and the target size), the map fitted to width x height by the unit's resize mode."""
    from app.controlnet.preprocess import preprocessor
    from app.controlnet.preprocess_sizing import fit_control_map, pixel_perfect_resolution

    source = source.convert("RGB")
    resolution = unit.processor_res
    if unit.pixel_perfect:
        resolution = pixel_perfect_resolution(source.size, width, height, unit.resize_mode)
    detected = preprocessor(unit.module).run(source, resolution=resolution, threshold_a=unit.threshold_a,
                                             threshold_b=unit.threshold_b,
                                             annotators_dir=annotators_dir or Path("models/annotators"),
                                             device=device, loaded=annotators)
    return fit_control_map(detected, width, height, unit.resize_mode)


def unit_infotext(unit: ResolvedUnit, model_hash: str) -> str:
    """One unit as sd-webui-controlnet writes it in the infotext (the value of "ControlNet N")."""
    from app.controlnet.preprocess import preprocessor
    from app.generation.infotext import format_value

    spec = preprocessor(unit.unit.module)
    u = unit.unit
    resolution, threshold_a, threshold_b = spec.settings(u.processor_res, u.threshold_a, u.threshold_b)
    values = {
        "Module": spec.name,
        "Model": f"{unit.name} [{model_hash}]" if model_hash else unit.name,
        "Weight": u.weight,
        "Resize Mode": RESIZE_MODE_NAMES[u.resize_mode],
        "Processor Res": resolution,
        "Threshold A": threshold_a,
        "Threshold B": threshold_b,
        "Guidance Start": u.guidance_start,
        "Guidance End": u.guidance_end,
        "Pixel Perfect": u.pixel_perfect,
        "Control Mode": CONTROL_MODE_NAMES[u.control_mode],
    }
    if unit.union_mode is not None:
        values["Union Control Type"] = (u.control_type or union_type_of(spec)).lower()
    return ", ".join(f"{k}: {format_value(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}"
                     for k, v in values.items() if v is not None)


def _shaping_hook(model, units: list[ResolvedUnit]):
    """The hook shaping `model`'s residuals for the units that use it, in their order (a model two units
    share is called once per unit in each step, in the units' order), or None when no unit needs one."""
    from app.controlnet.residuals import ResidualShaping, shape_residuals

    shapings = [ResidualShaping(token_mask=_unit_token_mask(u) if u.unit.mask is not None else None,
                                soft_injection=u.unit.control_mode == "prompt",
                                drop_unconditional=u.drop_unconditional) for u in units]
    return shape_residuals(model, shapings) if any(s.needed for s in shapings) else None


def _unit_token_mask(unit: ResolvedUnit):
    """The unit's mask fitted to the job's size as its control map is (same resize mode), per token."""
    from app.controlnet.preprocess_sizing import fit_control_map
    from app.controlnet.residuals import token_mask

    width, height = unit.size
    fitted = fit_control_map(unit.unit.mask.convert("RGB"), width, height, unit.unit.resize_mode)
    return token_mask(fitted, width, height)


def _multi(family: str, models: list):
    import diffusers

    return getattr(diffusers, MULTI_MODELS[family])(models)


def _short_hash(hash_cache, path: Path) -> str:
    """sd-webui-controlnet's 8-character hash of the weights (of the one weight file in a folder)."""
    from app.controlnet.folder import weights_folder

    files = [path] if path.is_file() else sorted(weights_folder(path).glob("*.safetensors"))
    return hash_cache.partial_hash(files[0]) if files else ""


def _default_cfg(context: AddonContext) -> float:
    from app.families import family_for

    family = family_for(context.entry.family)
    return family.defaults_for(context.entry.variant, context.entry.path).cfg_scale


CONTROLNET = ControlNetKind()
