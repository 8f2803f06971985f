"""ControlNet state dicts in their original naming -> diffusers' FluxControlNetModel / SD3ControlNetModel keys.

XLabs (x-flux's ControlNetFlux): the blocks use BFL's names (app/families/keys_flux.py converts them);
pos_embed_input is diffusers' controlnet_x_embedder; input_hint_block is an nn.Sequential of convs with
SiLUs between, so its convs sit at the even indices 0..14: conv_in, the six blocks, conv_out of diffusers'
ControlNetConditioningEmbedding (block_out_channels (16, 16, 16, 16)).

Stability's SD3.5 Large ControlNets: time_text_embed.*, pos_embed_input.proj and controlnet_blocks are
already diffusers names; the blocks are SD3's DismantledBlock (attn.qkv fused, mlp.fc1/fc2,
adaLN_modulation.1), mapped as diffusers' scripts/convert_sd3_controlnet_to_diffusers.py does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# XLabs input_hint_block index -> diffusers ControlNetConditioningEmbedding module.
XLABS_HINT = {0: "conv_in", 2: "blocks.0", 4: "blocks.1", 6: "blocks.2", 8: "blocks.3", 10: "blocks.4",
              12: "blocks.5", 14: "conv_out"}
STABILITY_BLOCK = {"attn.proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2",
                   "adaLN_modulation.1": "norm1.linear"}
# In Stability's files but not in diffusers' model: the control type as a number (0 blur, 1 canny,
# 2 depth) and a patch embedding the 8B ControlNet takes from the transformer instead.
STABILITY_DROPPED = ("control_type", "pos_embed.proj.weight", "pos_embed.proj.bias")
_STABILITY_KEY = re.compile(r"transformer_blocks\.(\d+)\.(.+)\.(weight|bias)")


def to_diffusers(naming: str, state: Mapping) -> dict:
    """`state` ({name: tensor}) under diffusers' names; ValueError naming a key that has no diffusers name."""
    if naming == "diffusers":
        return dict(state)
    if naming == "bfl":
        return xlabs_to_diffusers(state)
    if naming == "stability":
        return stability_to_diffusers(state)
    raise ValueError(f"no conversion from {naming!r} names")


def xlabs_to_diffusers(state: Mapping) -> dict:
    from app.families.keys_flux import convert_bfl_to_diffusers

    out: dict = {}
    transformer: dict = {}
    for key, tensor in state.items():
        if key.startswith("controlnet_blocks."):
            out[key] = tensor
        elif key.startswith("pos_embed_input."):
            out["controlnet_x_embedder." + key.removeprefix("pos_embed_input.")] = tensor
        elif key.startswith("input_hint_block."):
            index, _, param = key.removeprefix("input_hint_block.").partition(".")
            module = XLABS_HINT.get(int(index)) if index.isdigit() else None
            if module is None:
                raise ValueError(f"unknown key {key}: the XLabs hint block has convs at {sorted(XLABS_HINT)}")
            out[f"input_hint_block.{module}.{param}"] = tensor
        else:
            transformer[key] = tensor
    out.update(convert_bfl_to_diffusers(transformer))
    return out


def stability_to_diffusers(state: Mapping) -> dict:
    out: dict = {}
    for key, tensor in state.items():
        if key in STABILITY_DROPPED:
            continue
        match = _STABILITY_KEY.fullmatch(key)
        if match is None:
            out[key] = tensor
            continue
        index, module, param = match.groups()
        prefix = f"transformer_blocks.{index}."
        if module == "attn.qkv":
            for name, part in zip(("to_q", "to_k", "to_v"), tensor.chunk(3, dim=0)):
                out[f"{prefix}attn.{name}.{param}"] = part
        elif module in STABILITY_BLOCK:
            out[f"{prefix}{STABILITY_BLOCK[module]}.{param}"] = tensor
        else:
            raise ValueError(f"unknown key {key} for an SD3.5 ControlNet block")
    return out
