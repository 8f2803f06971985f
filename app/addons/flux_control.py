"""FLUX.1 Canny/Depth dev by BFL as ControlNet units: the whole control model, or its LoRA.

Neither is a ControlNet: the control picture goes through the VAE and its latents are read beside the
image's by a transformer that takes 128 input channels (FluxControlPipeline and its img2img / inpaint
siblings). A unit naming one:
- the model (flux1-canny-dev.safetensors): its transformer stands in for the loaded model's during the job
  (text encoders and VAE are the loaded model's). It is placed as the plan places the model's own
  transformer; where that one is kept on the device, it goes to the CPU meanwhile, so the device holds one.
- the LoRA (flux1-canny-dev-lora.safetensors): fused into the loaded model's transformer by the LoRA kind
  (input projection widened, lora.py); the unit's weight is the LoRA's strength.

What these models cannot do is refused at submit, naming the field: a weight other than 1 for the whole
model, a guidance start/end (they read the control at every step), control modes and masks (there are no
residuals to shape), a second such unit or one beside ControlNets, and stages that run the model again
(hires fix, tiled upscale, refine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from app.errors import InvalidRequest

log = logging.getLogger(__name__)

MODEL, LORA = "bfl-control", "bfl-control-lora"
FLAVOURS = (MODEL, LORA)
NAME = "FLUX.1 Canny/Depth"


def check_unit(addon, index: int, request, name: str, flavour: str) -> None:
    """What a FLUX.1 Canny/Depth unit cannot take, refused with the field named (an inactive unit takes anything)."""
    if not addon.active:
        return
    what = f"{name!r} is a {NAME} {'LoRA' if flavour == LORA else 'model'}"
    if flavour == MODEL and addon.weight != 1:
        raise InvalidRequest(f"addons[{index}].weight", f"{what}: a whole model has no strength; use weight 1 "
                                                         "(or 0 to leave it out), or its LoRA for other weights")
    if (addon.guidance_start, addon.guidance_end) != (0.0, 1.0):
        raise InvalidRequest(f"addons[{index}].guidance_start", f"{what}: it reads the control picture at every "
                                                                 "step; guidance start and end must be 0 and 1")
    if addon.control_mode != "balanced":
        raise InvalidRequest(f"addons[{index}].control_mode", f"{what}: only Balanced control mode applies to it")
    if addon.mask is not None:
        raise InvalidRequest(f"addons[{index}].mask", f"{what}: it takes no unit mask (it acts on the whole picture)")
    if request is not None and request.stages:
        raise InvalidRequest(f"addons[{index}].model", f"{what}: it changes the model for the whole job, so stages "
                                                        "(hires fix, tiled upscale, refine) cannot follow; leave "
                                                        "them out")


def check_alone(units: Sequence[Any]) -> None:
    """A FLUX.1 Canny/Depth unit runs alone: the control pipeline takes one control picture and no ControlNet."""
    active = [u for u in units if u.unit.active]
    control = [u for u in active if u.flavour in FLAVOURS]
    if control and len(active) > 1:
        other = next(u for u in active if u is not control[0])
        raise InvalidRequest(f"addons[{other.index}].model",
                             f"ControlNet {control[0].number} ({control[0].name!r}) is a {NAME} model, which runs "
                             "alone: no other ControlNet unit can be active beside it")


def control_lora(unit: Any) -> Any:
    """The LoRA the LoRA kind fuses for a control LoRA unit."""
    from app.addons.lora import ResolvedLora

    return ResolvedLora(unit.name, unit.path, unit.unit.weight, 0.0, False, unit.index, control=True)


@dataclass
class ParkedTransformer:
    """The loaded model's own transformer, moved to the CPU while a control model's is on the device."""

    device: str


def load_control_transformer(path: Path, variant: str | None, dtype) -> Any:
    """The whole FLUX.1 Canny/Depth transformer in `path` (a file in BFL, ComfyUI or diffusers keys, or a
    diffusers folder), on the CPU."""
    from app.families.safetensors_parts import find_part, index_file
    from app.families.single_file import load_transformer

    if Path(path).is_dir():
        return _from_folder(Path(path), dtype)
    source = find_part("transformer", {"transformer": index_file(Path(path))})
    if source is None:
        raise InvalidRequest("model", f"{Path(path).name}: holds no FLUX.1 transformer")
    model = load_transformer("flux", variant or "flux-dev", source, dtype)
    return model.eval().requires_grad_(False)


def _from_folder(path: Path, dtype) -> Any:
    from diffusers import FluxTransformer2DModel

    from app.controlnet.folder import weights_folder
    from app.errors import UnreadableModel

    try:
        model = FluxTransformer2DModel.from_pretrained(str(weights_folder(path)), dtype=dtype, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnreadableModel(f"{path}: its FLUX.1 control transformer cannot be loaded: {first}") from None
    return model.eval().requires_grad_(False)


def place_control_transformer(model, loaded, parked: ParkedTransformer | None) -> ParkedTransformer | None:
    """Place the control transformer as the plan places the model's own; returns what was parked."""
    from app.runtime.apply import place_addon_module

    if loaded.plan.placement != "gpu":
        log.info("%s transformer: %s", NAME, place_addon_module(model, loaded.plan, loaded.device))
        return parked
    own = loaded.base_pipeline.transformer
    if parked is None:
        own.to("cpu")
        parked = ParkedTransformer(loaded.device.torch_device)
    model.to(loaded.device.torch_device)
    log.info("%s transformer on %s (the model's own moved to the CPU meanwhile)", NAME, loaded.device.torch_device)
    return parked


def unpark(loaded, parked: ParkedTransformer | None) -> None:
    """The model's own transformer back where the plan put it."""
    if parked is not None:
        loaded.base_pipeline.transformer.to(parked.device)
