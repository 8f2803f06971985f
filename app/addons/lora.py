"""LoRA as an add-on kind: found by name in the catalog, fused into the loaded model's weights.

Fusing (ComfyUI's way) costs nothing per step: the patched weights are the model's own. The original
of every weight a LoRA touches is kept (on the CPU) the first time it is patched, so switching to
another set restores those and patches again without reloading the base model, and a job with no
LoRA gets the base weights back exactly. Deltas are added in float32 and cast once to the weight's
dtype (16-bit weights would lose small deltas otherwise). Weight 0 leaves a LoRA out entirely, so its
images are the base model's, bit for bit.

A FLUX.1 Canny/Depth LoRA (`control`, brought by a ControlNet unit) is fused the same way, after its
model's input projection is widened and with its norm scales set (control_lora.py); a set without one
narrows the projection back. On a GGUF transformer, whose weights stay quantized, the LoRA is added beside
each layer at run time instead (lora_runtime.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from app.addons.base import AddonContext, Prepared
from app.errors import InvalidRequest

log = logging.getLogger(__name__)

COMPONENTS = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
FAMILY_NAMES = {"flux": "FLUX.1", "sd3": "SD3.5"}
MAX_NAMES_SHOWN = 12


@dataclass(frozen=True)
class ResolvedLora:
    name: str  # as the request wrote it
    path: Path
    weight: float
    text_encoder_weight: float
    from_prompt: bool
    index: int  # its place in the request's addons (errors name addons[index])
    kind: str = "lora"
    control: bool = False  # a FLUX.1 Canny/Depth LoRA, brought by a ControlNet unit

    @property
    def key(self) -> tuple:
        st = self.path.stat()
        return (str(self.path), st.st_size, st.st_mtime_ns, self.weight, self.text_encoder_weight, self.control)


@dataclass
class FusedState:
    """What the loaded model carries now: the set's key, the originals of patched weights, the report."""

    key: tuple = ()
    originals: dict[tuple[str, str], Any] = field(default_factory=dict)  # (component, parameter) -> CPU copy
    prepared: Prepared = field(default_factory=Prepared)
    narrow_input: Any = None  # the transformer's own input projection while a control LoRA's widened one is in
    runtime: list[Any] = field(default_factory=list)  # hooks adding LoRAs beside quantized (GGUF) layers


def lora_name(found) -> str:
    """The name a LoRA is called by: its file name without the suffix."""
    return found.path.stem


class LoraKind:
    kind = "lora"

    # -- at submit --------------------------------------------------------------------------------------
    def resolve(self, addon, index: int, context: AddonContext) -> ResolvedLora:
        files = context.catalog.files_of_kind("lora")
        wanted = addon.name.strip().lower()
        matches = [f for f in files if lora_name(f).lower() == wanted or f.path.name.lower() == wanted]
        if not matches:  # A1111's alias (ss_output_name), read from the header only
            matches = [f for f in files if context.lora_infos.info(f.path).alias.lower() == wanted]
        if not matches:
            names = sorted({lora_name(f) for f in files})
            shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (" ..." if len(names) > MAX_NAMES_SHOWN else "")
            raise InvalidRequest(f"addons[{index}].name", f"no LoRA named {addon.name!r} in the loras folders "
                                                          f"(available: {shown or 'none'})")
        found = matches[0]
        family = found.family or context.lora_infos.info(found.path).family  # names and widths, then the metadata
        fits = context.capabilities.lora_family
        if family and fits and family != fits:
            model = context.entry.variant or context.entry.family
            raise InvalidRequest(f"addons[{index}].name",
                                 f"{model} cannot take {lora_name(found)!r}: it is a "
                                 f"{FAMILY_NAMES.get(family, family.upper())} LoRA")
        te = addon.text_encoder_weight if addon.text_encoder_weight is not None else addon.weight
        return ResolvedLora(addon.name, found.path, addon.weight, te, addon.from_prompt, index)

    # -- on the worker ----------------------------------------------------------------------------------
    def prepare(self, loaded, resolved: Sequence[ResolvedLora], hash_cache) -> Prepared:
        active = [r for r in resolved if r.weight or r.text_encoder_weight]
        state: FusedState = loaded.addon_state.setdefault(self.kind, FusedState())
        key = tuple(r.key for r in active)
        if key == state.key:
            return state.prepared
        components = {name: getattr(loaded.base_pipeline, name, None) for name in COMPONENTS}
        components = {name: module for name, module in components.items() if module is not None}
        _restore(components, state)
        state.key, state.prepared = (), Prepared()
        _fit_input_width(loaded, state, widened=any(r.control for r in active))
        if not active:
            return state.prepared
        warnings: list[str] = []
        for lora in active:
            warnings.extend(_fuse(lora, components, state, loaded.family.name, loaded.entry))
        # a control LoRA is named by its unit's "ControlNet N" entry, not as a LoRA to add again
        hashes = ", ".join(f"{r.name}: {hash_cache.addnet_hash(r.path)}" for r in active if not r.control)
        state.key, state.prepared = key, Prepared(infotext={"Lora hashes": hashes} if hashes else {},
                                                  warnings=warnings)
        return state.prepared


def refuse_quantized(entry, field: str, what: str) -> None:
    """What needs the weights themselves changed (a FLUX.1 Canny/Depth LoRA widens the input layer) cannot be
    done to a GGUF transformer, which keeps them quantized: refused, named."""
    from app.families.gguf_transformer import is_gguf

    transformer = (entry.parts or {}).get("transformer")
    if transformer is not None and is_gguf(transformer):
        raise InvalidRequest(field, f"{entry.name} keeps its transformer quantized (GGUF), and {what} needs its "
                                    "weights changed: use the model's .safetensors file for it")


def _fuse(lora: ResolvedLora, components: dict[str, Any], state: FusedState, family: str, entry) -> list[str]:
    """Add one LoRA's deltas to the weights; returns its warnings (skipped keys)."""
    import torch

    from app.addons.lora_formats import read_lora
    from app.addons.lora_runtime import attach, is_quantized
    from app.addons.lora_match import LoraDoesNotFit, plan_lora_patches

    lora_file = read_lora(lora.path)
    field_name = f"addons[{lora.index}].{'model' if lora.control else 'name'}"
    try:
        plan = plan_lora_patches(lora_file, components, family=family, model_name=_model_label(entry))
    except LoraDoesNotFit as exc:
        raise InvalidRequest(field_name, str(exc)) from None
    with torch.no_grad():
        for patch in plan.patches:
            strength = lora.weight if patch.component == "transformer" else lora.text_encoder_weight
            if not strength:
                continue
            module = components[patch.component].get_submodule(patch.module)
            if is_quantized(getattr(module, patch.param)):  # GGUF: added beside the layer at run time
                state.runtime.append(attach(module, patch, strength))
                continue
            parameter = _original_kept(components, state, patch.component, patch.module, patch.param)
            delta = patch.delta(strength, torch.float32, parameter.device)
            parameter.data.copy_((parameter.data.float() + delta).to(parameter.dtype))
        set_norms = _set_control_norms(lora, lora_file, components, state) if lora.control else set()
    plan = replace(plan, skipped=[k for k in plan.skipped if k not in set_norms])
    log.info("LoRA %s: %d keys applied, %d skipped", lora.path.name, plan.matched + len(set_norms), len(plan.skipped))
    warning = plan.warning()
    return [f"LoRA {warning}"] if warning else []


def _original_kept(components: dict[str, Any], state: FusedState, component: str, module: str, param: str):
    """The tensor of one parameter, its original copied to the CPU the first time it is changed."""
    parameter = stored_weight(components[component].get_submodule(module), param)
    where = (component, f"{module}.{param}")
    if where not in state.originals:
        state.originals[where] = parameter.detach().to("cpu", copy=True)
    return parameter


def _set_control_norms(lora: ResolvedLora, lora_file, components: dict[str, Any], state: FusedState) -> set[str]:
    """A control LoRA's norm scales set on the transformer (weight w: original + w * (new - original));
    returns the file keys set."""
    import torch

    from app.addons.control_lora import norm_scales

    done = set()
    for key, (module, new) in norm_scales(lora_file.tensors).items():
        try:
            parameter = _original_kept(components, state, "transformer", module, "weight")
        except AttributeError:
            continue  # no such norm in this model: left in the plan's skipped keys
        if tuple(parameter.shape) != tuple(new.shape):
            continue
        original = state.originals[("transformer", f"{module}.weight")].to(parameter.device, torch.float32)
        value = original + lora.weight * (new.to(parameter.device, torch.float32) - original)
        parameter.data.copy_(value.to(parameter.dtype))
        done.add(key)
    return done


def _fit_input_width(loaded, state: FusedState, widened: bool) -> None:
    """The transformer's input projection widened for a control LoRA, or its own when none is in the set."""
    from app.addons.control_lora import narrow_input, widen_input

    transformer = getattr(loaded.base_pipeline, "transformer", None)
    if widened and state.narrow_input is None:
        offloaded = loaded.plan.placement in ("group_offload", "sequential_offload")
        state.narrow_input = widen_input(transformer, device=loaded.device.torch_device if offloaded else None)
    elif not widened and state.narrow_input is not None:
        narrow_input(transformer, state.narrow_input)
        state.narrow_input = None


def stored_weight(module: Any, name: str) -> Any:
    """The tensor that holds `module`'s parameter `name`. Under sequential offload (accelerate's hooks) the
    parameter itself is an empty meta tensor and the weights live in the hook's CPU map, loaded into the
    layer at each call: writing to the meta tensor would be silently lost, so the map's tensor is the one."""
    parameter = getattr(module, name)
    if parameter.device.type != "meta":
        return parameter
    hook = getattr(module, "_hf_hook", None)
    for one in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        weights = getattr(one, "weights_map", None)
        if weights is not None and name in weights:
            return weights[name]
    raise RuntimeError(f"the weight {name!r} of {type(module).__name__} is not loaded (meta) and no offload "
                       f"hook holds it: a LoRA cannot be applied to it")


def _restore(components: dict[str, Any], state: FusedState) -> None:
    import torch

    with torch.no_grad():
        for (component, name), original in state.originals.items():
            module_path, _, param = name.rpartition(".")
            parameter = stored_weight(components[component].get_submodule(module_path), param)
            parameter.data.copy_(original.to(parameter.device))
    state.originals.clear()
    for handle in state.runtime:
        handle.remove()
    state.runtime.clear()


def _model_label(entry) -> str:
    return f"{FAMILY_NAMES.get(entry.family, entry.family)} {entry.variant or ''}".strip()


LORA = LoraKind()
