"""The diffusers config of a ControlNet whose file carries none, read from its (diffusers-named) tensor
shapes. What shapes cannot tell takes the released models' values: FLUX's rotary split (16, 56, 56) for
128-wide heads, SD3's 64-wide heads when no query norm shows the width."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]

SD3_HEAD_DIM = 64  # every released SD3 / SD3.5 model and ControlNet
SD35_CAPTION_PROJECTION_DIM = 2048  # unused by the 8B ControlNets (no text stream); the released value
_FLUX_NORMS = ("transformer_blocks.0.attn.norm_q.weight", "single_transformer_blocks.0.attn.norm_q.weight")


def infer_config(family: str, shapes: Shapes, metadata: Mapping[str, str]) -> dict[str, Any]:
    """FluxControlNetModel / SD3ControlNetModel config; ValueError naming the tensor a config needs and lacks."""
    return flux_config(shapes, metadata) if family == "flux" else sd3_config(shapes)


def flux_config(shapes: Shapes, metadata: Mapping[str, str]) -> dict[str, Any]:
    from app.families.keys_flux import axes_dims_for

    inner_dim, in_channels = _need(shapes, "x_embedder.weight")[:2]
    norm = next((k for k in _FLUX_NORMS if k in shapes), None)
    if norm is None:
        raise ValueError(f"{_FLUX_NORMS[0]} is missing: no block shows the attention head width")
    head_dim = shapes[norm][0]
    if inner_dim % head_dim:
        raise ValueError(f"width {inner_dim} is not a multiple of the head width {head_dim}")
    config: dict[str, Any] = {
        "patch_size": 1,
        "in_channels": in_channels,
        "num_layers": count_blocks(shapes, "transformer_blocks."),
        "num_single_layers": count_blocks(shapes, "single_transformer_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": inner_dim // head_dim,
        "joint_attention_dim": _need(shapes, "context_embedder.weight")[1],
        "pooled_projection_dim": _need(shapes, "time_text_embed.text_embedder.linear_1.weight")[1],
        "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in shapes,
        "axes_dims_rope": list(axes_dims_for(head_dim, metadata)),
        "num_mode": shapes["controlnet_mode_embedder.weight"][0] if "controlnet_mode_embedder.weight" in shapes
        else None,
        "conditioning_embedding_channels": None,
    }
    hint = shapes.get("input_hint_block.conv_out.weight")
    if hint is not None:  # XLabs: the hint's channels are patchified into the control projection's inputs
        channels = hint[0]
        patch = math.isqrt(in_channels // channels) if channels else 0
        if not patch or patch * patch * channels != in_channels:
            raise ValueError(f"the control hint's {channels} channels do not patchify into {in_channels} inputs")
        config.update(conditioning_embedding_channels=channels, patch_size=patch)
    return config


def sd3_config(shapes: Shapes) -> dict[str, Any]:
    inner_dim = _need(shapes, "controlnet_blocks.0.weight")[0]
    hint = _need(shapes, "pos_embed_input.proj.weight")  # (width, channels, patch, patch)
    norm = shapes.get("transformer_blocks.0.attn.norm_q.weight")
    head_dim = norm[0] if norm else SD3_HEAD_DIM
    if inner_dim % head_dim:
        raise ValueError(f"width {inner_dim} is not a multiple of the head width {head_dim}")
    layers = count_blocks(shapes, "transformer_blocks.")
    config: dict[str, Any] = {
        "patch_size": hint[2],
        "num_layers": layers,
        "attention_head_dim": head_dim,
        "num_attention_heads": inner_dim // head_dim,
        "pooled_projection_dim": _need(shapes, "time_text_embed.text_embedder.linear_1.weight")[1],
    }
    if "context_embedder.weight" not in shapes:  # SD3.5 Large's 8B ControlNets: patch embedding from the transformer
        return config | {
            "in_channels": hint[1], "out_channels": hint[1], "joint_attention_dim": None,
            "caption_projection_dim": SD35_CAPTION_PROJECTION_DIM, "pos_embed_max_size": None,
            "pos_embed_type": None, "use_pos_embed": False, "force_zeros_for_pooled_projection": False,
        }
    patch_embed = _need(shapes, "pos_embed.proj.weight")
    in_channels = patch_embed[1]
    context = shapes["context_embedder.weight"]
    positions = shapes.get("pos_embed.pos_embed")  # saved only when the model crops a larger grid
    max_size = math.isqrt(positions[1]) if positions else None
    return config | {
        "in_channels": in_channels, "out_channels": in_channels,
        "extra_conditioning_channels": hint[1] - in_channels,
        "joint_attention_dim": context[1], "caption_projection_dim": context[0],
        "pos_embed_max_size": max_size, "qk_norm": "rms_norm" if norm else None,
        "dual_attention_layers": tuple(i for i in range(layers)
                                       if f"transformer_blocks.{i}.attn2.to_q.weight" in shapes),
    }


def count_blocks(shapes: Shapes, prefix: str) -> int:
    indices = {int(k[len(prefix):].split(".", 1)[0]) for k in shapes
               if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()}
    return max(indices) + 1 if indices else 0


def _need(shapes: Shapes, key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ValueError(f"{key} is missing")
    return tuple(shapes[key])
