"""Tell what a model file is from its tensor names and shapes alone.

Rules, in the order they are tried (the first that matches wins):

0. bitsandbytes 4-bit files (Forge's NF4: "...weight.quant_state.bitsandbytes__nf4" keys) are refused by
   name, with what to use instead.

1. ControlNet, by app/controlnet/layouts.py's rules (its docstring lists the keys of each layout):
   FLUX InstantX / union / Union-Pro 2.0 / jasperai (controlnet_x_embedder + transformer_blocks.N),
   XLabs (controlnet_blocks.N + input_hint_block + pos_embed_input), SD3.5 Large by Stability and
   diffusers SD3 ControlNets (controlnet_blocks.N + pos_embed_input.proj), and BFL's FLUX.1
   Canny/Depth dev: a whole FLUX transformer whose input projection takes 128 channels, or a LoRA
   whose img_in / x_embedder LoRA does. Tried first: a ControlNet also holds transformer blocks, and a
   control LoRA is a LoRA. `variant` is the layout's flavour, `family` the family it controls,
   `key_layout` its key naming ("diffusers", "bfl" or "stability", layouts.key_naming) and
   `control_types` what its union modes or its name say it reads. A file with other controlnet_* keys
   (MistoLine, Qwen-Image ControlNets) is an unknown ControlNet, never a transformer.
2. LoRA: any key with lora_A / lora_B / lora_up / lora_down / LoKr / LoHa markers or ending in
   ".alpha". Tried before the models because LoRA keys embed the names of the blocks they patch.
3. Diffusion transformers, keys bare or under "model.diffusion_model.":
   - FLUX original (BFL / ComfyUI): img_in.weight + double_blocks.N / single_blocks.N;
     flux-dev iff guidance_in.in_layer.weight.
   - FLUX diffusers: x_embedder.weight + transformer_blocks.N + single_transformer_blocks.N;
     flux-dev iff time_text_embed.guidance_embedder.linear_1.weight.
   - SD3 original: x_embedder.proj.weight + joint_blocks.N.
   - SD3 diffusers: pos_embed.proj.weight + context_embedder.weight + transformer_blocks.N and no
     single_transformer_blocks.
   SD3.5 medium (MMDiT-X) is the only one with attn2 in its blocks. Large and large-turbo have the
   same weights layout and shapes, so turbo is told by the file or folder name containing "turbo".
   A transformer beside text_encoders.* or first_stage_model.* / vae.* keys is an all-in-one
   checkpoint; `contains` lists the parts inside. A FLUX transformer with another input width than
   64 (text-to-image) or 384 (Fill) is recognised and refused.
4. Text encoders. CLIP (text_model.encoder.layers.N..., prefix optional): the width of the token
   embedding decides, 768 = clip_l and 1280 = clip_g. A width no real encoder has (tiny test models)
   falls back to text_projection.weight, which ComfyUI's clip_g files carry and clip_l files usually
   do not. T5 (encoder.block.N.layer.0.SelfAttention.q.weight): d_model 4096 is T5-XXL; the widths
   of smaller released T5s are refused; tiny test widths are accepted as T5-XXL.
5. VAE: decoder.conv_in.weight in-channels = latent channels; 16 is usable ("vae"), anything else
   (4 for SD 1.x/XL) is "vae-4ch".
6. Upscalers (ESRGAN, Real-ESRGAN, SwinIR, ...): conv_first.weight, model.0.weight or body.N.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.catalog.safetensors_header import TensorInfo
from app.controlnet.layouts import control_types, controlnet_layout, key_naming

KINDS = (
    "flux-transformer", "sd3-transformer", "flux-checkpoint", "sd3-checkpoint",
    "clip_l", "clip_g", "t5xxl", "vae", "vae-4ch", "lora", "upscaler", "controlnet", "unknown",
)
GENERATION_KINDS = ("flux-transformer", "sd3-transformer", "flux-checkpoint", "sd3-checkpoint")

CHECKPOINT_PREFIX = "model.diffusion_model."
# Where an all-in-one checkpoint keeps each part (ComfyUI's save format and SD3's releases).
EMBEDDED_PARTS = {
    "clip_l": ("text_encoders.clip_l.",),
    "clip_g": ("text_encoders.clip_g.",),
    "t5xxl": ("text_encoders.t5xxl.",),
    "vae": ("first_stage_model.", "vae."),
}

CLIP_WIDTHS = {768: "clip_l", 1280: "clip_g"}
OTHER_CLIP_WIDTHS = {1024: "a CLIP-H text encoder (SD 2.x)"}
T5XXL_WIDTH = 4096
SMALLER_T5_WIDTHS = (512, 768, 1024, 2048)
FLUX_WIDTH, FLUX_IN_CHANNELS = 3072, 64
FILL_IN_CHANNELS = 384  # FLUX.1 Fill: 64 latent + 64 masked-picture latent + 256 mask channels

_LORA_MARKERS = ("lora_A", "lora_B", "lora_up", "lora_down", "lora.up", "lora.down", "lokr_w", "hada_w")
_T5_Q = re.compile(r"(?:^|\.)encoder\.block\.\d+\.layer\.0\.SelfAttention\.q\.weight$")
_ATTN2 = re.compile(r"^(?:joint_blocks|transformer_blocks)\.\d+\.(?:x_block\.)?attn2\.")
_UPSCALER_BODY = re.compile(r"^body\.\d+\.")
_CONTROLNET_PREFIXES = ("controlnet_", "single_controlnet_blocks.")
_BNB_STATE = "quant_state.bitsandbytes__"  # bitsandbytes' packed 4-bit weights (nf4 / fp4)
BNB_PROBLEM = ("bitsandbytes NF4/FP4 weights (Forge's flux1-dev-bnb-nf4): Easel does not load bitsandbytes files; "
               "a GGUF Q4_K_S (about the same size) or an fp8 file of the model works instead")
_SD_CONTROLNET_MARKERS = ("controlnet_down_blocks.", "controlnet_cond_embedding.", "zero_convs.", "control_model.")
SD_CONTROLNET = "a Stable Diffusion 1.x/XL ControlNet: Easel runs FLUX.1 and SD3.5 ControlNets"


@dataclass(frozen=True)
class Identity:
    """What a file is. `problem` is set when the file is recognised but Easel cannot use it.
    control_types: for a ControlNet, the control types it reads (() when nothing tells)."""

    kind: str
    family: str | None = None
    variant: str | None = None
    key_layout: str | None = None
    contains: frozenset[str] = frozenset()
    problem: str | None = None
    control_types: tuple[str, ...] = ()


def identify(tensors: Mapping[str, TensorInfo], name: str = "") -> Identity:
    """Identify a file from its header; `name` (file or folder name) only tells SD3.5 turbo apart and a
    single-type ControlNet's control type."""
    keys = list(tensors)
    if not keys:
        return Identity("unknown", problem="the file holds no tensors")
    if any(_BNB_STATE in k for k in keys):
        return Identity("unknown", problem=BNB_PROBLEM)
    control = controlnet_layout(tensors)
    if control is not None:
        return Identity("controlnet", control.family, control.flavour, key_naming(tensors),
                        control_types=control_types(control, name))
    if any(m in k for k in keys for m in _LORA_MARKERS) or any(k.endswith(".alpha") for k in keys):
        return Identity("lora", family=_lora_family(keys))
    if any(k.startswith(_CONTROLNET_PREFIXES) for k in keys):
        return Identity("unknown", problem=_controlnet_hint(keys))
    for prefix in ("", CHECKPOINT_PREFIX):
        found = _transformer(_strip(tensors, prefix), name)
        if found is not None:
            return _with_embedded_parts(found, keys)
    for probe in (_clip, _t5, _vae, _upscaler):
        found = probe(tensors)
        if found is not None:
            return found
    return Identity("unknown", problem=_unknown_hint(keys))


def _strip(tensors: Mapping[str, TensorInfo], prefix: str) -> dict[str, TensorInfo]:
    if not prefix:
        return dict(tensors)
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _has_prefix(keys, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _transformer(t: dict[str, TensorInfo], name: str) -> Identity | None:
    keys = t.keys()
    if "img_in.weight" in t and (_has_prefix(keys, "double_blocks.") or _has_prefix(keys, "single_blocks.")):
        dev = "guidance_in.in_layer.weight" in t
        return _flux(dev, "bfl", t["img_in.weight"][1])
    has_joint = _has_prefix(keys, "transformer_blocks.")
    has_single = _has_prefix(keys, "single_transformer_blocks.")
    if "x_embedder.weight" in t and has_joint and has_single:
        dev = "time_text_embed.guidance_embedder.linear_1.weight" in t
        return _flux(dev, "diffusers", t["x_embedder.weight"][1])
    if "x_embedder.proj.weight" in t and _has_prefix(keys, "joint_blocks."):
        return _sd3(keys, "bfl", name)
    if "pos_embed.proj.weight" in t and "context_embedder.weight" in t and has_joint and not has_single:
        return _sd3(keys, "diffusers", name)
    return None


def _flux(dev: bool, layout: str, shape: tuple[int, ...]) -> Identity:
    variant = "flux-dev" if dev else "flux-schnell"
    if len(shape) == 2 and shape[0] == FLUX_WIDTH and shape[1] == FILL_IN_CHANNELS and dev:
        return Identity("flux-transformer", "flux", "flux-fill", layout)  # FLUX.1 Fill: inpaint and outpaint
    # FLUX.1 Canny / Depth (128 channels) are ControlNet kinds, found before this; any other width is none
    # of BFL's models.
    if len(shape) == 2 and shape[0] == FLUX_WIDTH and shape[1] != FLUX_IN_CHANNELS:
        problem = (f"a FLUX.1 model with {shape[1]} input channels: "
                   "the text-to-image and Fill FLUX.1 models are supported")
        return Identity("flux-transformer", "flux", None, layout, problem=problem)
    return Identity("flux-transformer", "flux", variant, layout)


def _sd3(keys, layout: str, name: str) -> Identity:
    if any(_ATTN2.match(k) for k in keys):
        variant = "sd3.5-medium"
    elif "turbo" in name.lower():
        variant = "sd3.5-large-turbo"
    else:
        variant = "sd3.5-large"
    return Identity("sd3-transformer", "sd3", variant, layout)


def _with_embedded_parts(found: Identity, keys: list[str]) -> Identity:
    contains = frozenset(
        part for part, prefixes in EMBEDDED_PARTS.items()
        if any(k.startswith(p) for k in keys for p in prefixes)
    )
    if not contains:
        return found
    kind = f"{found.family}-checkpoint"
    return Identity(kind, found.family, found.variant, found.key_layout, contains, found.problem)


def _clip(t: Mapping[str, TensorInfo]) -> Identity | None:
    token = [k for k in t if k.endswith("embeddings.token_embedding.weight") and "vision" not in k]
    if not token:
        return None
    prefix = token[0][: -len("embeddings.token_embedding.weight")]
    if not _has_prefix(t, prefix + "encoder.layers."):
        return None
    width = t[token[0]][1][-1] if t[token[0]][1] else 0
    if width in CLIP_WIDTHS:
        return Identity(CLIP_WIDTHS[width])
    if width in OTHER_CLIP_WIDTHS:
        return Identity("unknown", problem=f"{OTHER_CLIP_WIDTHS[width]}: FLUX and SD3.5 use CLIP-L and CLIP-G")
    has_projection = any(k.endswith("text_projection.weight") or k.endswith("text_projection") for k in t)
    return Identity("clip_g" if has_projection else "clip_l")


def _t5(t: Mapping[str, TensorInfo]) -> Identity | None:
    q = next((k for k in t if _T5_Q.search(k)), None)
    if q is None:
        return None
    shape = t[q][1]
    width = shape[-1] if shape else 0
    if width in SMALLER_T5_WIDTHS:
        return Identity("unknown", problem=f"a T5 encoder of width {width}: FLUX and SD3.5 need T5-XXL ({T5XXL_WIDTH})")
    return Identity("t5xxl")


def _vae(t: Mapping[str, TensorInfo]) -> Identity | None:
    for prefix in ("", "first_stage_model.", "vae."):
        conv_in = t.get(prefix + "decoder.conv_in.weight")
        if conv_in is None or len(conv_in[1]) < 2:
            continue
        layout = "diffusers" if _has_prefix(t, prefix + "decoder.up_blocks.") else "bfl"
        channels = conv_in[1][1]
        if channels == 16:
            return Identity("vae", key_layout=layout)
        what = "SD 1.x/XL" if channels == 4 else "not for FLUX or SD3.5"
        return Identity("vae-4ch", key_layout=layout,
                        problem=f"a {channels}-channel VAE ({what}): FLUX and SD3.5 need a 16-channel VAE")
    return None


def _upscaler(t: Mapping[str, TensorInfo]) -> Identity | None:
    if "conv_first.weight" in t or "model.0.weight" in t or any(_UPSCALER_BODY.match(k) for k in t):
        return Identity("upscaler")
    return None


def _lora_family(keys: list[str]) -> str | None:
    """Best guess of the family a LoRA patches, from the block names in its keys."""
    joined = " ".join(keys)
    if any(m in joined for m in ("double_blocks", "single_blocks", "single_transformer_blocks")):
        return "flux"
    if "joint_blocks" in joined or "context_block" in joined:
        return "sd3"
    return None


def _unknown_hint(keys: list[str]) -> str:
    joined = " ".join(keys[:2000])
    if any(m in joined for m in _SD_CONTROLNET_MARKERS):
        return SD_CONTROLNET
    if "input_blocks." in joined or ("down_blocks." in joined and "conv_in.weight" in joined):
        return "a Stable Diffusion 1.x/2.x/XL model: Easel runs FLUX.1 and SD3.5"
    if "vision_model." in joined:
        return "a CLIP vision model, not a text encoder or a generation model"
    sample = ", ".join(repr(k) for k in sorted(keys)[:2])
    return f"not a FLUX.1 or SD3.5 model file (keys such as {sample})"


def _controlnet_hint(keys: list[str]) -> str:
    if any(k.startswith(_SD_CONTROLNET_MARKERS) for k in keys):
        return SD_CONTROLNET
    return ("a ControlNet of a layout Easel does not read: FLUX.1 InstantX, union, XLabs and jasperai "
            "ControlNets and SD3.5 ControlNets are read")
