"""Tiny ControlNet files with the released models' tensor names: diffusers-named ones saved from tiny
diffusers models, XLabs / Stability / BFL ones written key by key from the original code's module names
(x-flux's ControlNetFlux, Stability's ControlNetEmbedder as diffusers' conversion script reads it, BFL's
FLUX transformer and control LoRAs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

Shapes = dict[str, tuple[int, ...]]

# Every width tiny; head width 16 splits into the rotary axes (2, 6, 8) when nothing says otherwise.
TINY_FLUX = dict(in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                 joint_attention_dim=32, pooled_projection_dim=24, guidance_embeds=True, axes_dims_rope=[2, 6, 8])
TINY_SD35 = dict(patch_size=2, in_channels=16, num_layers=1, attention_head_dim=64, num_attention_heads=2,
                 joint_attention_dim=None, caption_projection_dim=2048, pooled_projection_dim=32, out_channels=16,
                 pos_embed_max_size=None, pos_embed_type=None, use_pos_embed=False,
                 force_zeros_for_pooled_projection=False)
TINY_SD3_INSTANTX = dict(sample_size=16, patch_size=2, in_channels=16, num_layers=1, attention_head_dim=8,
                         num_attention_heads=2, joint_attention_dim=24, caption_projection_dim=16,
                         pooled_projection_dim=32, out_channels=16, pos_embed_max_size=8, qk_norm="rms_norm",
                         dual_attention_layers=(0,))  # the query norm shows the head width


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (ControlNets start with zeroed blocks), so a compared tensor means something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model


def flux_controlnet(**overrides):
    from diffusers import FluxControlNetModel

    return randomised(FluxControlNetModel(**(TINY_FLUX | overrides)))


def sd3_controlnet(config: dict):
    from diffusers import SD3ControlNetModel

    return randomised(SD3ControlNetModel(**config))


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def write(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


def with_config(model) -> dict[str, str]:
    """The metadata Easel's own ControlNets carry: the diffusers config as JSON."""
    return {"config": json.dumps(dict(model.config))}


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=generator) for k, s in shapes.items()}


def xlabs_shapes(hidden: int = 32, heads: int = 2, in_channels: int = 64, context: int = 32, vec: int = 24,
                 depth: int = 2) -> Shapes:
    """x-flux's ControlNetFlux state dict (guidance-distilled, as for FLUX.1 dev)."""
    h, head = hidden, hidden // heads
    keys: Shapes = {"img_in.weight": (h, in_channels), "img_in.bias": (h,), "txt_in.weight": (h, context),
                    "txt_in.bias": (h,)}
    for name, width in (("time_in", 256), ("vector_in", vec), ("guidance_in", 256)):
        keys |= {f"{name}.in_layer.weight": (h, width), f"{name}.in_layer.bias": (h,),
                 f"{name}.out_layer.weight": (h, h), f"{name}.out_layer.bias": (h,)}
    for i in range(depth):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            keys |= {
                f"{p}mod.lin.weight": (6 * h, h), f"{p}mod.lin.bias": (6 * h,),
                f"{p}attn.qkv.weight": (3 * h, h), f"{p}attn.qkv.bias": (3 * h,),
                f"{p}attn.norm.query_norm.scale": (head,), f"{p}attn.norm.key_norm.scale": (head,),
                f"{p}attn.proj.weight": (h, h), f"{p}attn.proj.bias": (h,),
                f"{p}mlp.0.weight": (4 * h, h), f"{p}mlp.0.bias": (4 * h,),
                f"{p}mlp.2.weight": (h, 4 * h), f"{p}mlp.2.bias": (h,),
            }
        keys |= {f"controlnet_blocks.{i}.weight": (h, h), f"controlnet_blocks.{i}.bias": (h,)}
    keys |= {"pos_embed_input.weight": (h, in_channels), "pos_embed_input.bias": (h,)}
    for index in range(0, 16, 2):  # Conv2d, SiLU, Conv2d, ...: the convs at 0, 2, ..., 14
        keys |= {f"input_hint_block.{index}.weight": (16, 3 if index == 0 else 16, 3, 3),
                 f"input_hint_block.{index}.bias": (16,)}
    return keys


def stability_sd35_shapes(hidden: int = 128, layers: int = 1, pooled: int = 32, channels: int = 16) -> Shapes:
    """Stability's sd3.5_large_controlnet_*.safetensors keys (their diffusers conversion script's inputs)."""
    h = hidden
    # the released files also carry the base model's patch embedding, which the ControlNet does not use
    keys: Shapes = {"pos_embed_input.proj.weight": (h, channels, 2, 2), "pos_embed_input.proj.bias": (h,),
                    "pos_embed.proj.weight": (h, channels, 2, 2), "pos_embed.proj.bias": (h,)}
    for name, width in (("timestep_embedder", 256), ("text_embedder", pooled)):
        p = f"time_text_embed.{name}."
        keys |= {f"{p}linear_1.weight": (h, width), f"{p}linear_1.bias": (h,),
                 f"{p}linear_2.weight": (h, h), f"{p}linear_2.bias": (h,)}
    for i in range(layers):
        p = f"transformer_blocks.{i}."
        keys |= {
            f"{p}adaLN_modulation.1.weight": (6 * h, h), f"{p}adaLN_modulation.1.bias": (6 * h,),
            f"{p}attn.qkv.weight": (3 * h, h), f"{p}attn.qkv.bias": (3 * h,),
            f"{p}attn.proj.weight": (h, h), f"{p}attn.proj.bias": (h,),
            f"{p}mlp.fc1.weight": (4 * h, h), f"{p}mlp.fc1.bias": (4 * h,),
            f"{p}mlp.fc2.weight": (h, 4 * h), f"{p}mlp.fc2.bias": (h,),
            f"controlnet_blocks.{i}.weight": (h, h), f"controlnet_blocks.{i}.bias": (h,),
        }
    return keys


def stability_sd35_state(control_type: int = 1) -> dict[str, torch.Tensor]:
    return random_state(stability_sd35_shapes()) | {"control_type": torch.tensor([control_type], dtype=torch.int32)}


def bfl_control_shapes(diffusers: bool = False) -> Shapes:
    """FLUX.1 Canny/Depth dev: a whole transformer whose input projection takes 128 channels (released width)."""
    if diffusers:
        return {"x_embedder.weight": (3072, 128), "context_embedder.weight": (1,),
                "time_text_embed.guidance_embedder.linear_1.weight": (1,),
                "transformer_blocks.0.attn.to_q.weight": (1,), "single_transformer_blocks.0.attn.to_q.weight": (1,),
                "proj_out.weight": (64, 3072)}
    return {"img_in.weight": (3072, 128), "img_in.bias": (3072,), "txt_in.weight": (1,),
            "time_in.in_layer.weight": (1,), "guidance_in.in_layer.weight": (1,),
            "double_blocks.0.img_attn.qkv.weight": (1,), "single_blocks.0.linear1.weight": (1,),
            "final_layer.linear.weight": (64, 3072)}


def bfl_control_lora_shapes(in_channels: int = 128, diffusers: bool = False) -> Shapes:
    """flux1-canny-dev-lora: LoRAs of the blocks, an img_in LoRA reading 128 channels, and the q/k norms whole."""
    if diffusers:
        return {"transformer.x_embedder.lora_A.weight": (4, in_channels),
                "transformer.x_embedder.lora_B.weight": (8, 4),
                "transformer.transformer_blocks.0.attn.to_q.lora_A.weight": (4, 8),
                "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": (8, 4)}
    return {"img_in.lora_A.weight": (4, in_channels), "img_in.lora_B.weight": (8, 4),
            "double_blocks.0.img_attn.qkv.lora_A.weight": (4, 8), "double_blocks.0.img_attn.qkv.lora_B.weight": (24, 4),
            "double_blocks.0.img_attn.norm.query_norm.scale": (4,), "single_blocks.0.linear1.lora_A.weight": (4, 8),
            "single_blocks.0.linear1.lora_B.weight": (40, 4)}


def as_header(state_or_shapes: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The {name: (dtype, shape)} read_header gives."""
    return {k: ("F32", tuple(v.shape) if hasattr(v, "shape") else tuple(v)) for k, v in state_or_shapes.items()}
