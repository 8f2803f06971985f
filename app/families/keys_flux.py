"""FLUX.1 transformer files: original (BFL / ComfyUI) keys -> diffusers keys, and the config.

diffusers' own converter assumes the released width (3072) when it splits the fused projection of
the single-stream blocks; this one reads every width from the tensors, so pruned and test-size
models convert as well as the released ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import torch

BFL_PREFIX = "model.diffusion_model."
AXES_DIMS_METADATA_KEY = "easel.axes_dims_rope"
RELEASED_HEAD_DIM = 128
RELEASED_AXES_DIMS = (16, 56, 56)

# Whole-tensor renames outside the blocks: BFL module -> diffusers module.
_TOP_LEVEL = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE_BLOCK = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm": "attn.norm_q",
    "img_attn.norm.key_norm": "attn.norm_k",
    "txt_attn.norm.query_norm": "attn.norm_added_q",
    "txt_attn.norm.key_norm": "attn.norm_added_k",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
}
_DOUBLE_QKV = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE_BLOCK = {
    "modulation.lin": "norm.linear",
    "norm.query_norm": "attn.norm_q",
    "norm.key_norm": "attn.norm_k",
    "linear2": "proj_out",
}
_SINGLE_FUSED = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_BLOCK_KEY = re.compile(r"(double_blocks|single_blocks)\.(\d+)\.(.+)")


def is_bfl_layout(keys: list[str] | set[str]) -> bool:
    return any(k.startswith(("double_blocks.", "single_blocks.", BFL_PREFIX)) for k in keys) or "img_in.weight" in keys


def _swap_scale_shift(tensor: torch.Tensor) -> torch.Tensor:
    """BFL's final AdaLayerNorm emits (shift, scale); diffusers' emits (scale, shift)."""
    shift, scale = tensor.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def _convert_one(key: str, tensor: torch.Tensor, inner_dim: int) -> dict[str, torch.Tensor] | None:
    module, _, param = key.rpartition(".")
    param = "weight" if param == "scale" else param
    if module == "final_layer.adaLN_modulation.1":
        return {f"norm_out.linear.{param}": _swap_scale_shift(tensor)}
    if module in _TOP_LEVEL:
        return {f"{_TOP_LEVEL[module]}.{param}": tensor}
    match = _BLOCK_KEY.fullmatch(module)
    if match is None:
        return None
    kind, index, rest = match.groups()
    if kind == "double_blocks":
        prefix = f"transformer_blocks.{index}."
        if rest in _DOUBLE_BLOCK:
            return {f"{prefix}{_DOUBLE_BLOCK[rest]}.{param}": tensor}
        if rest in _DOUBLE_QKV:
            return {f"{prefix}{name}.{param}": part for name, part in zip(_DOUBLE_QKV[rest], tensor.chunk(3, dim=0))}
        return None
    prefix = f"single_transformer_blocks.{index}."
    if rest in _SINGLE_BLOCK:
        return {f"{prefix}{_SINGLE_BLOCK[rest]}.{param}": tensor}
    if rest == "linear1":
        mlp_rows = tensor.shape[0] - 3 * inner_dim
        if mlp_rows <= 0:
            raise ValueError(f"{key} has {tensor.shape[0]} rows, fewer than q, k and v of width {inner_dim} need")
        parts = torch.split(tensor, [inner_dim, inner_dim, inner_dim, mlp_rows], dim=0)
        return {f"{prefix}{name}.{param}": part for name, part in zip(_SINGLE_FUSED, parts)}
    return None


def convert_bfl_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and split the fused q/k/v tensors of) a FLUX transformer in the original layout.

    The width used to split the single blocks' fused projection is read from img_in.weight.
    Raises ValueError naming the keys it does not know, so nothing is dropped silently.
    """
    tensors = {k.removeprefix(BFL_PREFIX): v for k, v in state_dict.items()}
    if "img_in.weight" not in tensors:
        raise ValueError("img_in.weight is missing")
    inner_dim = tensors["img_in.weight"].shape[0]
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in tensors.items():
        renamed = _convert_one(key, tensor, inner_dim)
        if renamed is None:
            unknown.append(key)
        else:
            converted.update(renamed)
    if unknown:
        raise ValueError(f"unknown keys for a FLUX transformer: {', '.join(sorted(unknown)[:5])}")
    return converted


def _count_blocks(keys: Mapping[str, Any], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def default_axes_dims(head_dim: int) -> tuple[int, int, int]:
    """Split a head's rotary dims over FLUX's 3 position axes (index, row, column).

    The first axis gets an eighth of the head and the rest is halved, every part rounded to an even
    number (rotary pairs). head_dim 128 gives the released (16, 56, 56); 32 gives (4, 14, 14).
    """
    if head_dim < 6 or head_dim % 2:
        raise ValueError(f"head dim {head_dim} cannot be split into three even rotary axes")
    first = max(2, 2 * round(head_dim / 16))
    rest = head_dim - first
    second = 2 * (rest // 4)
    return first, second, rest - second


def axes_dims_for(head_dim: int, metadata: Mapping[str, str]) -> tuple[int, ...]:
    """Rotary axes: the released split for head dim 128, else the file's metadata, else the rule."""
    if head_dim == RELEASED_HEAD_DIM:
        return RELEASED_AXES_DIMS
    if AXES_DIMS_METADATA_KEY in metadata:
        try:
            dims = tuple(int(d) for d in json.loads(metadata[AXES_DIMS_METADATA_KEY]))
        except (ValueError, TypeError) as err:
            raise ValueError(f"metadata {AXES_DIMS_METADATA_KEY} is not a list of integers") from err
        if len(dims) != 3 or sum(dims) != head_dim or any(d <= 0 or d % 2 for d in dims):
            raise ValueError(
                f"metadata {AXES_DIMS_METADATA_KEY}={list(dims)} must be 3 positive even numbers summing to "
                f"the head dim {head_dim}"
            )
        return dims
    return default_axes_dims(head_dim)


def infer_config(
    state_dict: Mapping[str, torch.Tensor], released: Mapping[str, Any], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """FluxTransformer2DModel config for a diffusers-layout state dict: the released config with
    every width and count read from the tensors."""
    inner_dim, in_channels = state_dict["x_embedder.weight"].shape
    norm_key = next(
        (k for k in ("transformer_blocks.0.attn.norm_q.weight", "single_transformer_blocks.0.attn.norm_q.weight")
         if k in state_dict),
        None,
    )
    if norm_key is None:
        raise ValueError("no attention block with a query norm (transformer_blocks.0.attn.norm_q.weight)")
    head_dim = state_dict[norm_key].shape[0]
    if inner_dim % head_dim:
        raise ValueError(f"width {inner_dim} is not a multiple of the head dim {head_dim}")
    out_channels = state_dict["proj_out.weight"].shape[0]
    config = dict(released)
    config.update(
        patch_size=1,
        in_channels=in_channels,
        out_channels=None if out_channels == in_channels else out_channels,
        num_layers=_count_blocks(state_dict, "transformer_blocks."),
        num_single_layers=_count_blocks(state_dict, "single_transformer_blocks."),
        attention_head_dim=head_dim,
        num_attention_heads=inner_dim // head_dim,
        joint_attention_dim=state_dict["context_embedder.weight"].shape[1],
        pooled_projection_dim=state_dict["time_text_embed.text_embedder.linear_1.weight"].shape[1],
        guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in state_dict,
        axes_dims_rope=list(axes_dims_for(head_dim, metadata)),
    )
    return config
