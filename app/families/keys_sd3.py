"""SD3.5 transformer files: original (Stability / ComfyUI) keys -> diffusers keys, and the config.

The renaming is diffusers' own converter (it reads every width from the tensors); what is added
here is strictness (keys the converter leaves behind are reported, not dropped) and a config read
from the shapes instead of fetched from the hub.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

ORIGINAL_PREFIX = "model.diffusion_model."
HEAD_DIM_METADATA_KEY = "easel.attention_head_dim"
# Every released SD3 / SD3.5 model uses 64; used when no qk-norm weight shows the head size.
RELEASED_HEAD_DIM = 64


def is_original_layout(keys: list[str] | set[str]) -> bool:
    return any(k.removeprefix(ORIGINAL_PREFIX).startswith(("joint_blocks.", "x_embedder.")) for k in keys)


def convert_original_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an SD3 transformer in the original layout. Raises ValueError on missing or unknown keys."""
    remaining = {k.removeprefix(ORIGINAL_PREFIX): v for k, v in state_dict.items()}
    try:
        converted = convert_sd3_transformer_checkpoint_to_diffusers(remaining)
    except KeyError as err:
        raise ValueError(f"key {err.args[0]} is missing") from err
    except (IndexError, ValueError) as err:
        raise ValueError(f"not an SD3 transformer ({err})") from err
    if remaining:  # the converter pops what it maps: anything left is a key it did not know
        raise ValueError(f"unknown keys for an SD3 transformer: {', '.join(sorted(remaining)[:5])}")
    return converted


def _count_blocks(keys: Mapping[str, Any], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def infer_config(
    state_dict: Mapping[str, torch.Tensor], released: Mapping[str, Any], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """SD3Transformer2DModel config for a diffusers-layout state dict: the released config with
    every width and count read from the tensors.

    The head size comes from the qk-norm weight when the model has one (SD3.5), else from the
    file's "easel.attention_head_dim" metadata, else it is the released 64.
    """
    inner_dim, in_channels, patch_size, _ = state_dict["pos_embed.proj.weight"].shape
    positions = state_dict["pos_embed.pos_embed"].shape[1]
    pos_embed_max_size = math.isqrt(positions)
    if pos_embed_max_size**2 != positions:
        raise ValueError(f"pos_embed has {positions} positions, not a square grid")
    caption_projection_dim, joint_attention_dim = state_dict["context_embedder.weight"].shape
    norm_q = state_dict.get("transformer_blocks.0.attn.norm_q.weight")
    if norm_q is not None:
        head_dim = norm_q.shape[0]
    else:
        head_dim = int(metadata.get(HEAD_DIM_METADATA_KEY, RELEASED_HEAD_DIM))
    if inner_dim % head_dim:
        raise ValueError(f"width {inner_dim} is not a multiple of the head dim {head_dim}")
    num_layers = _count_blocks(state_dict, "transformer_blocks.")
    config = dict(released)
    config.update(
        in_channels=in_channels,
        patch_size=patch_size,
        out_channels=state_dict["proj_out.weight"].shape[0] // (patch_size * patch_size),
        num_layers=num_layers,
        attention_head_dim=head_dim,
        num_attention_heads=inner_dim // head_dim,
        joint_attention_dim=joint_attention_dim,
        caption_projection_dim=caption_projection_dim,
        pooled_projection_dim=state_dict["time_text_embed.text_embedder.linear_1.weight"].shape[1],
        pos_embed_max_size=pos_embed_max_size,
        dual_attention_layers=[
            i for i in range(num_layers) if f"transformer_blocks.{i}.attn2.to_q.weight" in state_dict
        ],
        qk_norm="rms_norm" if norm_q is not None else None,
        # the default image size (in latent pixels) must fit the position grid
        sample_size=min(int(released.get("sample_size", 128)), pos_embed_max_size * patch_size),
    )
    return config
