"""VAE files: original (LDM / BFL "ae.safetensors") keys -> diffusers AutoencoderKL keys, and the config.

The renaming is diffusers' size-agnostic LDM converter; the config is read from the shapes, with
the latent scaling and shift taken from the family's released VAE (a file does not record them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

REQUIRED_LATENT_CHANNELS = 16


def is_ldm_layout(keys: list[str] | set[str]) -> bool:
    return any(k.startswith(("encoder.down.", "decoder.up.")) for k in keys)


def latent_channels(state_dict: Mapping[str, torch.Tensor]) -> int:
    """The decoder's input width; the key has the same name in both layouts."""
    return state_dict["decoder.conv_in.weight"].shape[1]


def wrong_channels_message(channels: int) -> str:
    kind = " (SD1/SDXL)" if channels == 4 else ""
    return (
        f"this VAE has {channels} latent channels{kind}; FLUX and SD3.5 need a "
        f"{REQUIRED_LATENT_CHANNELS}-channel VAE"
    )


def _count_blocks(keys: Mapping[str, Any] | list[str], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def convert_ldm_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an LDM-layout VAE. Keys the converter does not map are reported by the strict load."""
    blocks = _count_blocks(state_dict, "encoder.down.")
    layout = {"down_block_types": ["DownEncoderBlock2D"] * blocks, "up_block_types": ["UpDecoderBlock2D"] * blocks}
    return convert_ldm_vae_checkpoint(dict(state_dict), layout)


def infer_config(state_dict: Mapping[str, torch.Tensor], released: Mapping[str, Any]) -> dict[str, Any]:
    """AutoencoderKL config for a diffusers-layout state dict (widths, depth, optional convs from
    the tensors; scaling, shift and norm groups from the released config)."""
    blocks = _count_blocks(state_dict, "encoder.down_blocks.")
    config = dict(released)
    config.update(
        in_channels=state_dict["encoder.conv_in.weight"].shape[1],
        out_channels=state_dict["decoder.conv_out.weight"].shape[0],
        latent_channels=latent_channels(state_dict),
        block_out_channels=[
            state_dict[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in range(blocks)
        ],
        layers_per_block=_count_blocks(state_dict, "encoder.down_blocks.0.resnets."),
        down_block_types=["DownEncoderBlock2D"] * blocks,
        up_block_types=["UpDecoderBlock2D"] * blocks,
        use_quant_conv="quant_conv.weight" in state_dict,
        use_post_quant_conv="post_quant_conv.weight" in state_dict,
        mid_block_add_attention="encoder.mid_block.attentions.0.to_q.weight" in state_dict,
    )
    return config
