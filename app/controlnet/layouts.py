"""Tell a ControlNet file's layout from its tensor names and shapes, never from its name.

Layouts, as the released files name their tensors (the first rule of RULES that matches wins):

- FLUX, diffusers FluxControlNetModel keys (InstantX, Shakker-Labs, jasperai): controlnet_x_embedder,
  transformer_blocks.N, controlnet_blocks.N, and single_transformer_blocks.N / controlnet_single_blocks.N
  where the model has single blocks. A union model adds controlnet_mode_embedder (InstantX's 10 modes, 7
  used). Union-Pro 2.0 has 6 double blocks, no single ones and no mode embedder (its model card);
  jasperai's (upscaler, depth, normals) have 5 double blocks and no single ones, so they are single-type
  models whose type their name says.
- FLUX, XLabs (x-flux): BFL block names (img_in, double_blocks.N...), controlnet_blocks.N,
  pos_embed_input (a Linear) and input_hint_block.0..14, a conv stack that reads the control picture
  in pixels. XLabs' "-diffusers" repos hold the same weights under diffusers names
  (input_hint_block.conv_in...).
- SD3.5 Large by Stability: controlnet_blocks.N, pos_embed_input.proj, diffusers-named
  time_text_embed.*, and blocks in SD3's original naming (transformer_blocks.N.adaLN_modulation.1,
  attn.qkv, mlp.fc1...). Converted to diffusers, the blocks read norm1.linear, attn.to_q...; neither
  has a context_embedder (the 8B ControlNets read no text stream of their own).
- SD3, diffusers SD3ControlNetModel with its own text stream (InstantX SD3): pos_embed, context_embedder,
  pos_embed_input.proj and controlnet_blocks.N.
- FLUX.1 Canny/Depth dev by BFL: a whole FLUX transformer whose input projection (img_in /
  x_embedder) takes 128 channels, twice what it puts out (proj_out / final_layer), and their LoRAs, whose
  img_in / x_embedder LoRA reads 128 channels. They are chosen as ControlNet units but run with
  FluxControlPipeline (app/addons/flux_control.py), so they name no ControlNet model class.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from app.catalog.safetensors_header import TensorInfo, read_header
from app.controlnet.folder import weight_files, weights_folder

CONTROL_TYPES = ("canny", "tile", "depth", "blur", "pose", "gray", "low-quality", "lineart", "normal")

# InstantX's union modes (also Shakker-Labs' Union-Pro 1.0): control type -> the control_mode index.
INSTANTX_UNION_MODES = MappingProxyType(
    {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "gray": 5, "low-quality": 6})
# Union-Pro 2.0 reads canny, soft edge (AnylineDetector line maps), depth, pose and gray maps as they
# are: it has no mode embedder, so there is no index to give.
UNION_PRO_2_TYPES = ("canny", "lineart", "depth", "pose", "gray")

FLUX_WIDTH = 3072
BFL_CONTROL_IN_CHANNELS = 128  # 64 latent channels + 64 of the control picture's latent
CHECKPOINT_PREFIX = "model.diffusion_model."

_FLUX_BLOCK = "transformer_blocks.0.norm1_context.linear.weight"
_CONTROL_LORA_INPUT = re.compile(r"(?:^|[._])(?:img_in|x_embedder)\.(?:lora_A|lora_down)\.weight$")
_LORA_MARKERS = ("lora_A", "lora_B", "lora_up", "lora_down", "lora.up", "lora.down")


@dataclass(frozen=True)
class ControlNetLayout:
    """What a ControlNet file is and what loads it.

    family: "flux" | "sd3". flavour: "instantx", "union", "union-pro-2", "xlabs", "sd35",
    "bfl-control", "bfl-control-lora". model_class: the diffusers class the weights load into
    ("" for bfl-control*). union_modes: control type -> the control_mode index the pipeline takes
    ({} when not a union model). pixel_hint: the control image goes in as pixels, not VAE latents."""

    family: str
    flavour: str
    model_class: str
    union_modes: Mapping[str, int]
    pixel_hint: bool = False


@dataclass(frozen=True)
class _Rule:
    """A layout and how to recognise it. keys: the naming load.py converts from ("diffusers", "bfl" for
    BFL block names, "stability" for SD3's original block names)."""

    layout: ControlNetLayout
    keys: str
    has: tuple[str, ...] = ()          # every one of these keys
    has_prefix: tuple[str, ...] = ()   # a key starting with each of these
    lacks_prefix: tuple[str, ...] = ()  # no key starting with any of these
    check: Callable[[Mapping[str, TensorInfo]], bool] | None = None


def _takes_control_channels(key: str, output: str) -> Callable[[Mapping[str, TensorInfo]], bool]:
    """The input projection reads twice the channels the model puts out: the latents and the control's."""
    def check(t: Mapping[str, TensorInfo]) -> bool:
        shape, out = tuple(t[key][1]), tuple(t[output][1]) if output in t else ()
        return len(shape) == 2 and shape[1] == BFL_CONTROL_IN_CHANNELS and out[:1] == (BFL_CONTROL_IN_CHANNELS // 2,)
    return check


UNION_PRO_2_DOUBLE_BLOCKS = 6
_DOUBLE_BLOCK = re.compile(r"^transformer_blocks\.(\d+)\.")


def _double_blocks(t: Mapping[str, TensorInfo]) -> int:
    return len({m[1] for k in t if (m := _DOUBLE_BLOCK.match(k))})


def _is_union_pro_2(t: Mapping[str, TensorInfo]) -> bool:
    return _double_blocks(t) == UNION_PRO_2_DOUBLE_BLOCKS


def _is_control_lora(t: Mapping[str, TensorInfo]) -> bool:
    return any(_CONTROL_LORA_INPUT.search(k) and t[k][1][-1:] == (BFL_CONTROL_IN_CHANNELS,) for k in t)


_NO_MODES: Mapping[str, int] = MappingProxyType({})
_FLUX_CN, _SD3_CN = "FluxControlNetModel", "SD3ControlNetModel"

RULES: tuple[_Rule, ...] = (
    _Rule(ControlNetLayout("flux", "bfl-control-lora", "", _NO_MODES), "bfl", check=_is_control_lora),
    _Rule(ControlNetLayout("flux", "bfl-control", "", _NO_MODES), "bfl", has=("img_in.weight",),
          has_prefix=("double_blocks.",), lacks_prefix=("controlnet_",),
          check=_takes_control_channels("img_in.weight", "final_layer.linear.weight")),
    _Rule(ControlNetLayout("flux", "bfl-control", "", _NO_MODES), "diffusers", has=("x_embedder.weight",),
          has_prefix=("transformer_blocks.", "single_transformer_blocks."), lacks_prefix=("controlnet_",),
          check=_takes_control_channels("x_embedder.weight", "proj_out.weight")),
    _Rule(ControlNetLayout("flux", "xlabs", _FLUX_CN, _NO_MODES, pixel_hint=True), "bfl",
          has=("controlnet_blocks.0.weight", "pos_embed_input.weight", "input_hint_block.0.weight",
               "double_blocks.0.img_attn.qkv.weight")),
    _Rule(ControlNetLayout("flux", "xlabs", _FLUX_CN, _NO_MODES, pixel_hint=True), "diffusers",
          has=("controlnet_x_embedder.weight", "input_hint_block.conv_in.weight", _FLUX_BLOCK)),
    _Rule(ControlNetLayout("flux", "union", _FLUX_CN, INSTANTX_UNION_MODES), "diffusers",
          has=("controlnet_x_embedder.weight", "controlnet_mode_embedder.weight", _FLUX_BLOCK)),
    _Rule(ControlNetLayout("flux", "union-pro-2", _FLUX_CN, _NO_MODES), "diffusers",
          has=("controlnet_x_embedder.weight", _FLUX_BLOCK),
          lacks_prefix=("single_transformer_blocks.", "controlnet_single_blocks.", "controlnet_mode_embedder.",
                        "input_hint_block."), check=_is_union_pro_2),
    _Rule(ControlNetLayout("flux", "instantx", _FLUX_CN, _NO_MODES), "diffusers",
          has=("controlnet_x_embedder.weight", _FLUX_BLOCK), lacks_prefix=("input_hint_block.",)),
    _Rule(ControlNetLayout("sd3", "sd35", _SD3_CN, _NO_MODES), "stability",
          has=("controlnet_blocks.0.weight", "pos_embed_input.proj.weight",
               "transformer_blocks.0.adaLN_modulation.1.weight")),
    _Rule(ControlNetLayout("sd3", "sd35", _SD3_CN, _NO_MODES), "diffusers",
          has=("controlnet_blocks.0.weight", "pos_embed_input.proj.weight", "transformer_blocks.0.norm1.linear.weight"),
          lacks_prefix=("context_embedder.",)),
    _Rule(ControlNetLayout("sd3", "instantx", _SD3_CN, _NO_MODES), "diffusers",
          has=("controlnet_blocks.0.weight", "pos_embed_input.proj.weight", "pos_embed.proj.weight",
               "context_embedder.weight")),
)

# Control types read from a name: the type, then the words that say it (matched at a word's start, so
# "openpose" says pose and "compose" does not). jasperai's upscaler reads a low-resolution picture, as a
# tile model does.
_NAME_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("canny", ("canny",)),
    ("tile", ("tile", "upscale")),
    ("depth", ("depth", "midas", "zoe")),
    ("blur", ("blur",)),
    ("pose", ("pose", "openpose", "dwpose")),
    ("gray", ("gray", "grey", "recolor")),
    ("low-quality", ("low-quality", "low_quality", "lowquality")),
    ("lineart", ("lineart", "line-art", "line_art", "anyline", "mistoline")),
    ("normal", ("normal",)),
)
_FLAVOUR_TYPES = {"union-pro-2": UNION_PRO_2_TYPES}


def controlnet_layout(tensors: Mapping[str, TensorInfo]) -> ControlNetLayout | None:
    """The layout of a file from its header ({name: (dtype, shape)}); None when it is not a ControlNet."""
    found = _match(tensors)
    if found is None:
        return None
    layout, stripped = found[0].layout, found[1]
    if layout.union_modes:  # a union model trained with fewer modes has no index for the rest
        rows = stripped["controlnet_mode_embedder.weight"][1][:1] or (0,)
        layout = replace(layout, union_modes=MappingProxyType(
            {t: i for t, i in layout.union_modes.items() if i < rows[0]}))
    return layout


def key_naming(tensors: Mapping[str, TensorInfo]) -> str | None:
    """How a ControlNet file names its tensors: "diffusers", "bfl" (BFL / XLabs block names) or "stability"
    (SD3's original block names); None when it is not a ControlNet."""
    found = _match(tensors)
    return found[0].keys if found is not None else None


def control_types(layout: ControlNetLayout, file_name: str) -> tuple[str, ...]:
    """The control types a ControlNet reads: a union model's modes, else what its file or folder name says
    (as sd-webui-controlnet tells a single-type model's type); () when the name says nothing."""
    if layout.union_modes:
        return tuple(layout.union_modes)
    if layout.flavour in _FLAVOUR_TYPES:
        return _FLAVOUR_TYPES[layout.flavour]
    name = file_name.lower()
    return tuple(kind for kind, words in _NAME_WORDS
                 if any(re.search(rf"(?<![a-z]){re.escape(w)}", name) for w in words))


def layout_of_file(path: Path) -> ControlNetLayout | None:
    """The layout of a ControlNet .safetensors file or diffusers folder; None when it is not a ControlNet.
    Raises UnreadableFile (an UnreadableModel) for a corrupt file."""
    return controlnet_layout(read_tensors_info(Path(path)))


def read_tensors_info(path: Path) -> dict[str, TensorInfo]:
    """The {name: (dtype, shape)} of a file, or of all the weight files of a diffusers folder."""
    if not path.is_dir():
        return read_header(path).tensors
    tensors: dict[str, TensorInfo] = {}
    for file in weight_files(weights_folder(path)):
        tensors.update(read_header(file).tensors)
    return tensors


def _match(tensors: Mapping[str, TensorInfo]) -> tuple[_Rule, Mapping[str, TensorInfo]] | None:
    if not tensors:
        return None
    is_lora = any(m in k for k in tensors for m in _LORA_MARKERS)
    views = [tensors]
    if any(k.startswith(CHECKPOINT_PREFIX) for k in tensors):  # a model saved by ComfyUI
        views.append({k[len(CHECKPOINT_PREFIX):]: v for k, v in tensors.items() if k.startswith(CHECKPOINT_PREFIX)})
    for rule in RULES:
        if is_lora != (rule.layout.flavour == "bfl-control-lora"):
            continue
        for view in views:
            if _fits(rule, view):
                return rule, view
    return None


def _fits(rule: _Rule, t: Mapping[str, TensorInfo]) -> bool:
    if not all(k in t for k in rule.has):
        return False
    if not all(any(k.startswith(p) for k in t) for p in rule.has_prefix):
        return False
    if rule.lacks_prefix and any(k.startswith(rule.lacks_prefix) for k in t):
        return False
    return rule.check is None or rule.check(t)
