"""Read a LoRA file, tell its format and family, and group its tensors by the module they patch.

    read_lora(path) -> LoraFile(tensors, metadata, format, family)
    group_tensors(lora_file) -> Grouping(groups: list[LoraGroup], unknown: list[str])

Formats, told from the key names alone (`LoraFile.format`):
- "diffusers": diffusers / PEFT / ai-toolkit keys, "<module>.lora_A.weight" / ".lora_B.weight"
  (also ".lora.down/.lora.up"), under "transformer.", "text_encoder[_2|_3].", "base_model.model."
  or no prefix, module names as diffusers has them.
- "kohya": sd-scripts keys "lora_unet_<module>" / "lora_te[1-3]_<module>" with ".lora_down.weight",
  ".lora_up.weight", ".alpha"; module names with "_" for "." (BFL names for FLUX, Stability's for
  SD3, diffusers' for trainers that use those, "lora_transformer_" too).
- "lycoris": kohya names with LoHa ("hada_w1_a" ...) or LoKr ("lokr_w1" ...) tensors.
- "comfyui": "diffusion_model.<BFL/Stability module>" and "text_encoders.{clip_l,clip_g,t5xxl}.transformer.".
- "xlabs": XLabs' "double_blocks.N.processor.qkv_lora1.down.weight" style (FLUX only).
- "bfl" / "bfl-control": BFL module names with lora_A / lora_B; "bfl-control" (FLUX.1 Canny/Depth
  LoRAs) also holds full tensors (norm ".scale" weights) that only the FLUX control pipeline uses.

Alpha (the LoRA scale is alpha / rank): a module's ".alpha" tensor when the file has one (kohya,
LyCORIS, some PEFT trainers); else, for diffusers files saved with adapter metadata
("lora_adapter_metadata": "<component>.lora_alpha", "<component>.alpha_pattern"), that alpha;
else none, which means scale 1 (PEFT's and ai-toolkit's files are trained with alpha = rank).

`LoraFile.family` is a guess from the keys ("flux", "sd3", "sdxl", "sd1" or None): the catalog's
(app.catalog.identify) for FLUX and SD3 names, widened with the U-Net names of SD 1.x/2.x and SDXL
LoRAs and the transformer width of diffusers-named files, so a mismatch can say what the file is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from app.addons.lora_keys_flux import xlabs_to_bfl
from app.catalog.identify import identify
from app.catalog.safetensors_header import UnreadableFile, read_header

PEFT_METADATA_KEY = "lora_adapter_metadata"

# Key ending -> the role of the tensor in its module's adapter (longest ending wins).
_ROLES = {
    ".lora_down.weight": "down", ".lora_up.weight": "up", ".lora_mid.weight": "mid",
    ".lora_A.weight": "down", ".lora_B.weight": "up", ".lora_B.bias": "up_bias",
    ".lora.down.weight": "down", ".lora.up.weight": "up", ".down.weight": "down", ".up.weight": "up",
    ".alpha": "alpha",
    ".hada_w1_a": "hada_w1_a", ".hada_w1_b": "hada_w1_b", ".hada_w2_a": "hada_w2_a", ".hada_w2_b": "hada_w2_b",
    ".hada_t1": "hada_t1", ".hada_t2": "hada_t2",
    ".lokr_w1": "lokr_w1", ".lokr_w1_a": "lokr_w1_a", ".lokr_w1_b": "lokr_w1_b",
    ".lokr_w2": "lokr_w2", ".lokr_w2_a": "lokr_w2_a", ".lokr_w2_b": "lokr_w2_b", ".lokr_t2": "lokr_t2",
    ".diff": "diff", ".diff_b": "diff_b", ".dora_scale": "dora_scale",
    ".oft_blocks": "oft", ".oft_diag": "oft", ".boft_blocks": "boft",
    ".a1.weight": "glora", ".a2.weight": "glora", ".b1.weight": "glora", ".b2.weight": "glora",
    ".scale": "full", ".weight": "full", ".bias": "full",
}
_ROLE_ENDINGS = sorted(_ROLES, key=len, reverse=True)

# Key prefix -> namespace: which part of the model the module is in (longest prefix wins).
# "te1" / "te2" / "te3" are kohya's text-encoder indices; lora_match reads them per family.
_PREFIXES = {
    "lora_unet_": "unet", "lora_transformer_": "unet", "lora_te_": "te1", "lora_te1_": "te1",
    "lora_te2_": "te2", "lora_te3_": "te3",
    "transformer.": "unet", "unet.": "unet", "diffusion_model.": "unet", "model.diffusion_model.": "unet",
    "text_encoder.": "text_encoder", "text_encoder_2.": "text_encoder_2", "text_encoder_3.": "text_encoder_3",
    "text_encoders.clip_l.transformer.": "clip_l", "text_encoders.clip_g.transformer.": "clip_g",
    "text_encoders.t5xxl.transformer.": "t5",
}
_PREFIX_ORDER = sorted(_PREFIXES, key=len, reverse=True)
_PEFT_WRAPPER = "base_model.model."
# Namespace -> the diffusers component name its adapter metadata is saved under.
_METADATA_COMPONENT = {"unet": "transformer"}

def _has_bfl_names(keys) -> bool:
    return any(k.startswith(("double_blocks.", "single_blocks.", "img_in.", "final_layer.")) for k in keys)


_FORMAT_RULES = (  # (format, test on the key list), first match wins
    ("xlabs", lambda ks: any(".processor." in k and ("qkv_lora" in k or "proj_lora" in k) for k in ks)),
    ("lycoris", lambda ks: any(".hada_w" in k or ".lokr_w" in k for k in ks)),
    ("kohya", lambda ks: any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) for k in ks)),
    ("comfyui", lambda ks: any(k.startswith(("diffusion_model.", "text_encoders.")) for k in ks)),
    ("bfl-control", lambda ks: _has_bfl_names(ks) and any(k.endswith(".scale") for k in ks)),
    ("bfl", _has_bfl_names),
    ("diffusers", lambda ks: any(m in k for k in ks for m in (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up."))),
)

FAMILY_DESCRIPTIONS = {
    "flux": "a FLUX.1 LoRA", "sd3": "an SD3/SD3.5 LoRA", "sdxl": "an SDXL LoRA", "sd1": "an SD 1.x/2.x LoRA",
}
_UNET_NAMES = ("down_blocks", "up_blocks", "mid_block", "input_blocks", "output_blocks", "middle_block")
_SD1_ONLY = re.compile(r"down_blocks[._]0[._]attentions|input_blocks[._]1[._]1[._]")
_TRANSFORMER_WIDTHS = {3072: "flux", 2432: "sd3", 1536: "sd3"}  # FLUX.1; SD3.5 large; SD3/3.5 medium
_BLOCK_DOWN = re.compile(r"transformer_blocks[._]\d+[._].*(lora_A|lora_down|lora\.down)")


@dataclass(frozen=True)
class LoraFile:
    """A LoRA file's tensors (on the CPU, as stored), metadata, format and family guess."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    format: str
    family: str | None
    name: str = ""  # the file name, for messages


@dataclass
class LoraGroup:
    """The tensors of one module as the file names it.

    `namespace` is where the module is ("unet", "te1".."te3", "text_encoder[_2|_3]", "clip_l",
    "clip_g", "t5"); `name` the module as written (dotted, or kohya's underscores); `roles` the
    tensors by role ("down", "up", "alpha", "hada_w1_a", ...; a second tensor of a role goes to
    `duplicates`); `leading` marks XLabs single-block adapters, which cover only the leading rows
    (qkv) or columns (proj) of the fused BFL weight.
    """

    namespace: str
    name: str
    roles: dict[str, torch.Tensor] = field(default_factory=dict)
    key_roles: dict[str, str] = field(default_factory=dict)  # file key -> its role
    alpha: float | None = None
    leading: bool = False
    duplicates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Grouping:
    groups: list[LoraGroup]
    unknown: list[str]  # keys with no role this reader knows


def detect_format(keys) -> str:
    keys = list(keys)
    return next((name for name, test in _FORMAT_RULES if test(keys)), "unknown")


def guess_family(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """"flux", "sd3", "sdxl", "sd1" or None, from the key names (and one width where names tie)."""
    header = {k: (str(t.dtype), tuple(t.shape)) for k, t in tensors.items()}
    family = identify(header).family
    if family is not None:
        return family
    keys = list(tensors)
    if any(u in k for k in keys for u in _UNET_NAMES):
        if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys):
            return "sdxl"
        return "sd1" if any(_SD1_ONLY.search(k) for k in keys) else "sdxl"
    for key in keys:
        if _BLOCK_DOWN.search(key) and tensors[key].dim() >= 2:
            found = _TRANSFORMER_WIDTHS.get(tensors[key].shape[1])
            if found:
                return found
    return None


def read_lora(path: Path | str) -> LoraFile:
    """Load a LoRA .safetensors file. Raises UnreadableFile (an UnreadableModel) with the reason."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UnreadableFile(
            f"not a .safetensors file: Easel loads LoRAs only as .safetensors ({path.suffix or 'no suffix'} "
            "files may be pickles, which can run code when loaded); convert it", path)
    header = read_header(path)
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise UnreadableFile(f"cannot read its tensors ({err})", path) from err
    fmt = detect_format(tensors)
    if fmt == "unknown":
        raise UnreadableFile(
            f"not a LoRA file: none of its {len(tensors)} keys is a LoRA tensor "
            "(lora_A/lora_B, lora_down/lora_up, LoHa hada_*, LoKr lokr_*)", path)
    return LoraFile(tensors, dict(header.metadata), fmt, guess_family(tensors), path.name)


def _split_role(key: str) -> tuple[str, str] | None:
    for ending in _ROLE_ENDINGS:
        if key.endswith(ending) and len(key) > len(ending):
            return key[: -len(ending)], _ROLES[ending]
    return None


def _split_namespace(module: str) -> tuple[str, str]:
    module = module.removeprefix(_PEFT_WRAPPER)
    for prefix in _PREFIX_ORDER:
        if module.startswith(prefix):
            return _PREFIXES[prefix], module[len(prefix):].removeprefix(_PEFT_WRAPPER)
    return "unet", module


def _peft_alphas(metadata: Mapping[str, str]) -> dict[str, dict]:
    """diffusers' saved adapter configs: component -> {"lora_alpha": .., "alpha_pattern": {..}}."""
    raw = metadata.get(PEFT_METADATA_KEY)
    if not raw:
        return {}
    try:
        flat = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    configs: dict[str, dict] = {}
    if isinstance(flat, dict):
        for key, value in flat.items():
            component, _, setting = str(key).rpartition(".")
            configs.setdefault(component, {})[setting] = value
    return configs


def _metadata_alpha(configs: dict[str, dict], namespace: str, name: str) -> float | None:
    config = configs.get(_METADATA_COMPONENT.get(namespace, namespace))
    if not config:
        return None
    for pattern, alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", name):  # PEFT's rule for per-module patterns
            return float(alpha)
    alpha = config.get("lora_alpha")
    return float(alpha) if isinstance(alpha, int | float) else None


def group_tensors(lora: LoraFile) -> Grouping:
    """Group the file's tensors by module; XLabs names become BFL ones; alphas are read."""
    groups: dict[tuple[str, str], LoraGroup] = {}
    unknown: list[str] = []
    for key, tensor in lora.tensors.items():
        split = _split_role(key)
        if split is None:
            unknown.append(key)
            continue
        module, role = split
        namespace, name = _split_namespace(module)
        leading = False
        if lora.format == "xlabs" and (xlabs := xlabs_to_bfl(name)) is not None:
            name, leading = xlabs
        group = groups.setdefault((namespace, name), LoraGroup(namespace, name, leading=leading))
        group.key_roles[key] = role
        if role in group.roles:
            group.duplicates.append(key)
        else:
            group.roles[role] = tensor
    configs = _peft_alphas(lora.metadata)
    for group in groups.values():
        alpha = group.roles.get("alpha")
        if alpha is not None and alpha.numel() == 1:
            group.alpha = float(alpha.float().item())
        elif configs:
            group.alpha = _metadata_alpha(configs, group.namespace, group.name)
    return Grouping(list(groups.values()), unknown)
