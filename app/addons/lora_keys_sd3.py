"""SD3 / SD3.5 LoRA module names in the original (Stability) layout -> modules of SD3Transformer2DModel.

Kohya's sd-scripts trains SD3.5 on Stability's MMDiT and names what it patches after it
(lora_unet_joint_blocks_0_x_block_attn_qkv, ..._context_block_mlp_fc1, ..._adaLN_modulation_1);
diffusers loads such files without error and without effect. This is the renaming of diffusers'
own checkpoint converter (convert_sd3_transformer_checkpoint_to_diffusers, which
app.families.keys_sd3 runs on full checkpoints), written per module instead of per tensor:

- joint_blocks.N.x_block.attn.qkv      -> transformer_blocks.N.attn.to_q / to_k / to_v (rows in thirds)
- joint_blocks.N.x_block.attn.proj     -> transformer_blocks.N.attn.to_out.0
- joint_blocks.N.x_block.attn2.*       -> transformer_blocks.N.attn2.* (SD3.5 medium, MMDiT-X)
- joint_blocks.N.x_block.mlp.fc1 / fc2 -> transformer_blocks.N.ff.net.0.proj / ff.net.2
- joint_blocks.N.x_block.adaLN_modulation.1 -> transformer_blocks.N.norm1.linear
- joint_blocks.N.context_block.*       -> add_q/k/v_proj, to_add_out, ff_context.*, norm1_context.linear;
  the last block is context-pre-only: no proj, no mlp, and its modulation's (shift, scale) halves swapped
- x_embedder.proj, context_embedder, t_embedder.mlp.0/2, y_embedder.mlp.0/2, final_layer.linear,
  final_layer.adaLN_modulation.1 (halves swapped)

tests/addons/test_lora_formats.py checks this map against that converter, row by row.
"""

from __future__ import annotations

import torch

Targets = dict[str, list[tuple[str, torch.Tensor]]]

_X_BLOCK = {"attn.proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2",
            "adaLN_modulation.1": "norm1.linear"}
_X_BLOCK_ATTN2 = {"attn2.proj": "attn2.to_out.0"}
_CONTEXT_BLOCK = {"attn.proj": "attn.to_add_out", "mlp.fc1": "ff_context.net.0.proj",
                  "mlp.fc2": "ff_context.net.2", "adaLN_modulation.1": "norm1_context.linear"}
_FUSED_QKV = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_TOP_LEVEL = {
    "x_embedder.proj": "pos_embed.proj",
    "context_embedder": "context_embedder",
    "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
    "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out",
}
_SWAPPED_TOP_LEVEL = {"final_layer.adaLN_modulation.1": "norm_out.linear"}


def _rows(module: torch.nn.Module) -> int:
    return module.weight.shape[0]


def _swapped(n: int) -> torch.Tensor:
    """Rows of a (shift, scale) output read as diffusers' (scale, shift)."""
    return torch.cat([torch.arange(n // 2, n), torch.arange(0, n // 2)])


def original_targets(transformer: torch.nn.Module) -> Targets:
    """Every original module name of this model -> [(diffusers module, rows of the fused output)]."""
    modules = dict(transformer.named_modules())
    targets: Targets = {}

    def add(name: str, module: str, rows: torch.Tensor | None = None) -> None:
        if module in modules and getattr(modules[module], "weight", None) is not None:
            targets[name] = [(module, torch.arange(_rows(modules[module])) if rows is None else rows)]

    for original, diffusers_name in _TOP_LEVEL.items():
        add(original, diffusers_name)
    for original, diffusers_name in _SWAPPED_TOP_LEVEL.items():
        if diffusers_name in modules:
            add(original, diffusers_name, _swapped(_rows(modules[diffusers_name])))

    for i, block in enumerate(transformer.transformer_blocks):
        src, dst = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        for fused, parts in _FUSED_QKV.items():
            present = [dst + p for p in parts if dst + p in modules]
            if len(present) == len(parts):
                start, split = 0, []
                for p in present:
                    n = _rows(modules[p])
                    split.append((p, torch.arange(start, start + n)))
                    start += n
                targets[src + fused] = split
        for table, side in ((_X_BLOCK, "x_block."), (_X_BLOCK_ATTN2, "x_block."), (_CONTEXT_BLOCK, "context_block.")):
            for original, diffusers_name in table.items():
                add(src + side + original, dst + diffusers_name)
        if getattr(block, "context_pre_only", False):
            name = dst + _CONTEXT_BLOCK["adaLN_modulation.1"]
            add(src + "context_block.adaLN_modulation.1", name, _swapped(_rows(modules[name])))
    return targets
