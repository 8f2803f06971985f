"""Match a LoRA file to the modules of a loaded model: the weight patches, and what was skipped.

    plan_lora_patches(lora_file, components, *, family, model_name=None) -> LoraPlan

`components` maps diffusers component names ("transformer", "text_encoder", "text_encoder_2",
"text_encoder_3") to the loaded modules; any may be absent or None, other entries (tokenizers,
the VAE) are ignored, and modules on the meta device will do (only names and shapes are read).
A file module is looked up, in this order, as a diffusers module path, as an original-layout name
(BFL for FLUX, Stability's for SD3, dotted or with kohya's underscores), and as a diffusers path
written with underscores. kohya's text-encoder indices mean
CLIP-L (te1), T5 (te2 or te3) for FLUX and CLIP-L, CLIP-G, T5 (te1, te2, te3) for SD3.

Each LoraPatch is one parameter: add `patch.delta(strength, dtype, device)` to
`components[patch.component].get_submodule(patch.module)` `.weight` (or `.bias`, per `patch.param`).
Several patches may land on one parameter (a file naming a module twice): add them all. A fused
module in the file gives one patch per diffusers module, each taking its rows of the up matrix.

The plan counts file keys: `matched + len(skipped) == len(lora_file.tensors)`; `skip_reasons`
says why each skipped key did not land. Nothing matching raises LoraDoesNotFit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from app.addons import lora_keys_flux, lora_keys_sd3
from app.addons.lora_formats import FAMILY_DESCRIPTIONS, LoraFile, LoraGroup, group_tensors
from app.addons.lora_math import (
    WEIGHT_ROLES, Adapter, IncompleteAdapter, bias_adapter, build_adapter, patch_delta,
)
from app.errors import EaselError

# family -> file namespace -> diffusers component
COMPONENTS = {
    "flux": {"unet": "transformer", "te1": "text_encoder", "clip_l": "text_encoder", "text_encoder": "text_encoder",
             "te2": "text_encoder_2", "te3": "text_encoder_2", "t5": "text_encoder_2",
             "text_encoder_2": "text_encoder_2"},
    "sd3": {"unet": "transformer", "te1": "text_encoder", "clip_l": "text_encoder", "text_encoder": "text_encoder",
            "te2": "text_encoder_2", "clip_g": "text_encoder_2", "text_encoder_2": "text_encoder_2",
            "te3": "text_encoder_3", "t5": "text_encoder_3", "text_encoder_3": "text_encoder_3"},
}
ORIGINAL_TARGETS = {"flux": lora_keys_flux.original_targets, "sd3": lora_keys_sd3.original_targets}
MODEL_NAMES = {"flux": "FLUX.1", "sd3": "SD3.5"}

CLIP_LEVELS = ("text_model.", "text_model_")
CONTROL_REASON = "needs the FLUX control pipeline"
FULL_WEIGHT_REASON = "a full weight, not a LoRA delta: Easel does not replace model weights from a LoRA"
UNSUPPORTED = {
    "oft": "LyCORIS OFT is not supported", "boft": "LyCORIS BOFT is not supported",
    "glora": "LyCORIS GLoRA is not supported",
    "mid": "LoCon's Tucker-decomposed layers (lora_mid) are not supported",
}
DORA_REASON = "DoRA magnitude (dora_scale) is not applied; the low-rank part is"
DUPLICATE_REASON = "a second tensor of the same role for the same module"
UNKNOWN_REASON = "not a LoRA tensor name this reader knows"


class LoraDoesNotFit(EaselError):
    """No key of a LoRA file lands on the model: the message says what the file seems to be."""

    def __init__(self, message: str, plan: LoraPlan):
        super().__init__(message)
        self.plan = plan


@dataclass(frozen=True)
class LoraPatch:
    """One parameter's change: `delta(strength, dtype, device)` has the parameter's shape."""

    component: str
    module: str
    param: str  # "weight" or "bias"
    shape: tuple[int, ...]
    adapter: Adapter
    rows: torch.Tensor | None = None  # the adapter's output rows this parameter takes
    columns: int | None = None  # the delta covers only these leading input columns
    source: str = ""  # the module as the file names it

    def delta(self, strength: float, dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
        return patch_delta(self.adapter, self.shape, strength, dtype, device, self.rows, self.columns)


@dataclass
class LoraPlan:
    patches: list[LoraPatch]
    matched: int  # file keys that landed on a module
    skipped: list[str]  # file keys that did not
    skip_reasons: dict[str, str]
    format: str
    family_guess: str | None
    file: str = ""
    modules: int = 0  # file modules (groups of keys) that landed

    def warning(self) -> str | None:
        """"<file>: N of M keys match nothing ..." with the commonest reason, or None when all landed."""
        if not self.skipped:
            return None
        reason, count = Counter(self.skip_reasons[k] for k in self.skipped).most_common(1)[0]
        example = next(k for k in self.skipped if self.skip_reasons[k] == reason)
        total = self.matched + len(self.skipped)
        return (f"{self.file}: {len(self.skipped)} of {total} keys are ignored "
                f"({count} of them: {reason}, e.g. {example!r})")


class _Resolver:
    """Finds a file's module name in one component (diffusers path, original name, underscores)."""

    def __init__(self, component: torch.nn.Module, original=None):
        self.modules = {n: m for n, m in component.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)}
        self.underscored = {n.replace(".", "_"): n for n in self.modules}
        self._original_factory = original
        self._original: dict | None = None
        self._original_underscored: dict = {}
        self._component = component

    def _originals(self) -> tuple[dict, dict]:
        if self._original is None:
            self._original = self._original_factory(self._component) if self._original_factory else {}
            self._original_underscored = {k.replace(".", "_"): k for k in self._original}
        return self._original, self._original_underscored

    def targets(self, name: str) -> list[tuple[str, torch.Tensor | None]] | None:
        if name in self.modules:
            return [(name, None)]
        original, underscored = self._originals()
        key = name if name in original else underscored.get(name)
        if key is not None:
            return original[key]
        for variant in _variants(name):
            path = variant if variant in self.modules else self.underscored.get(variant)
            if path:
                return [(path, None)]
        return None


def _variants(name: str) -> list[str]:
    """The name, and the name with or without CLIP's "text_model." level (transformers 5's
    CLIPTextModel has none; CLIPTextModelWithProjection and the files' names keep it)."""
    found = [name]
    for level in CLIP_LEVELS:
        found.append(name.removeprefix(level) if name.startswith(level) else level + name)
    return found


def logical_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    """A weight's shape as the layer sees it: a GGUF-quantized one stores packed bytes (its quant_shape is it)."""
    return tuple(getattr(tensor, "quant_shape", None) or tensor.shape)


def _in_width(tensor: torch.Tensor) -> int:
    width = 1
    for d in logical_shape(tensor)[1:]:
        width *= d
    return width


def _place(group: LoraGroup, adapter, targets, modules, component: str) -> tuple[list[dict], str | None]:
    """Fit the adapter onto its targets: (patch fields per target, None) or ([], reason)."""
    total = sum(len(rows) if rows is not None else modules[p].weight.shape[0] for p, rows in targets)
    out_rows = adapter.out_rows
    if out_rows != total and not (group.leading and out_rows < total):
        return [], _shape_reason(adapter, targets, modules, component, total)
    placed = []
    for path, rows in targets:
        weight = modules[path].weight
        if rows is None:
            rows = torch.arange(weight.shape[0])
        if out_rows < total:  # a leading-part adapter: keep the rows it has
            rows = rows[rows < out_rows]
        if len(rows) == 0:
            continue
        columns = None
        in_size = _in_width(weight)
        if adapter.in_size is not None and adapter.in_size != in_size:
            if not (group.leading and weight.dim() == 2 and adapter.in_size < in_size):
                return [], _shape_reason(adapter, targets, modules, component, total)
            columns = adapter.in_size
        if len(rows) != weight.shape[0]:
            return [], _shape_reason(adapter, targets, modules, component, total)
        same_order = len(rows) == out_rows and torch.equal(rows, torch.arange(out_rows))
        placed.append(dict(module=path, rows=None if same_order else rows, columns=columns))
    return placed, None


def _shape_reason(adapter, targets, modules, component: str, total: int) -> str:
    names = ", ".join(p for p, _ in targets)
    width = _in_width(modules[targets[0][0]].weight)
    return (f"shape does not fit: the file's module is {adapter.out_rows} x {adapter.in_size}, "
            f"{component} {names} is {total} x {width}")


def _plan_group(group, lora, family, resolvers, components) -> tuple[list[LoraPatch], dict[str, str]]:
    """The patches of one file module, and the reason for each of its keys that does not land."""
    roles = set(group.key_roles.values())
    full_reason = CONTROL_REASON if lora.format == "bfl-control" else FULL_WEIGHT_REASON
    skipped = {k: full_reason for k, r in group.key_roles.items() if r == "full"}
    skipped.update({k: DORA_REASON for k, r in group.key_roles.items() if r == "dora_scale"})
    skipped.update({k: DUPLICATE_REASON for k in group.duplicates})
    rest = [k for k in group.key_roles if k not in skipped]

    def refuse(reason: str):
        return [], {**skipped, **{k: reason for k in rest}}

    if unsupported := next((UNSUPPORTED[r] for r in roles if r in UNSUPPORTED), None):
        return refuse(unsupported)
    try:
        adapter = build_adapter(group.roles, group.alpha)
    except (IncompleteAdapter, ValueError) as err:
        return refuse(str(err))
    bias = bias_adapter(group.roles, adapter)
    if adapter is None and bias is None:
        return refuse("an alpha with no weights" if "alpha" in roles else full_reason)
    component = COMPONENTS[family].get(group.namespace)
    if component is None:
        return refuse(f"{group.namespace} has no counterpart in a {MODEL_NAMES[family]} model")
    if components.get(component) is None:
        return refuse(f"the model has no {component} loaded")
    if component not in resolvers:
        original = ORIGINAL_TARGETS[family] if component == "transformer" else None
        resolvers[component] = _Resolver(components[component], original)
    resolver = resolvers[component]
    targets = resolver.targets(group.name)
    if targets is None:
        return refuse(f"no module {group.name} in the {component}")
    placed = {}
    for param, one, place in (("weight", adapter, _place), ("bias", bias, _place_bias)):
        if one is not None:
            fits, reason = place(group, one, targets, resolver.modules, component)
            if reason is not None and lora.format == "bfl-control":
                reason = f"{reason} ({CONTROL_REASON})"
            placed[param] = (one, fits, reason)
    if "weight" in placed and placed["weight"][2] is not None:
        return refuse(placed["weight"][2])
    if "bias" in placed and placed["bias"][2] is not None:
        bias_keys = [k for k in rest if group.key_roles[k] in ("up_bias", "diff_b")]
        skipped.update(dict.fromkeys(bias_keys, placed.pop("bias")[2]))
    if not placed:
        return refuse(next(iter(skipped.values())))
    patches = [
        LoraPatch(component, param=param, shape=logical_shape(getattr(resolver.modules[f["module"]], param)),
                  adapter=one, source=group.name, **f)
        for param, (one, fits, _) in placed.items() for f in fits
    ]
    return patches, skipped


def _place_bias(group, bias, targets, modules, component) -> tuple[list[dict], str | None]:
    missing = [p for p, _ in targets if getattr(modules[p], "bias", None) is None]
    if missing:
        return [], f"{component} {missing[0]} has no bias"
    return _place(group, bias, targets, modules, component)


def _no_fit_message(plan: LoraPlan, family: str, model_name: str | None) -> str:
    model = model_name or MODEL_NAMES.get(family, family)
    guess = plan.family_guess
    if guess is not None and guess != family:
        what = f"it looks like {FAMILY_DESCRIPTIONS.get(guess, guess)}"
    elif plan.skipped:
        reason, _ = Counter(plan.skip_reasons[k] for k in plan.skipped).most_common(1)[0]
        example = next(k for k in plan.skipped if plan.skip_reasons[k] == reason)
        what = f"{len(plan.skipped)} keys, e.g. {example!r}: {reason}"
    else:
        what = "it holds no tensors"
    return f"{plan.file or 'the LoRA'}: no key matches this model ({what}; the model is {model})"


def plan_lora_patches(lora: LoraFile, components: Mapping[str, torch.nn.Module], *, family: str,
                      model_name: str | None = None) -> LoraPlan:
    """Plan the patches of `lora` on the model made of `components` (family "flux" or "sd3").

    `model_name` (e.g. "FLUX.1-dev") is only for the message of LoraDoesNotFit.
    """
    if family not in COMPONENTS:
        raise ValueError(f"family {family!r} is not one of {sorted(COMPONENTS)}")
    grouping = group_tensors(lora)
    reasons = {k: UNKNOWN_REASON for k in grouping.unknown}
    patches: list[LoraPatch] = []
    resolvers: dict[str, _Resolver] = {}
    modules = 0
    for group in grouping.groups:
        found, skipped = _plan_group(group, lora, family, resolvers, components)
        patches += found
        modules += bool(found)
        reasons.update(skipped)
    skipped_keys = [k for k in lora.tensors if k in reasons]
    plan = LoraPlan(patches, len(lora.tensors) - len(skipped_keys), skipped_keys, reasons, lora.format,
                    lora.family, lora.name, modules)
    if not patches:
        raise LoraDoesNotFit(_no_fit_message(plan, family, model_name), plan)
    return plan
