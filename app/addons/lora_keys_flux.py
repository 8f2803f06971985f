"""FLUX.1 LoRA module names in the original (BFL) layout -> modules of FluxTransformer2DModel.

Kohya (sd-scripts), ComfyUI, XLabs and BFL's own control LoRAs name the modules they patch as
BFL's checkpoint does (double_blocks.N.img_attn.qkv, single_blocks.N.linear1, final_layer...),
where q, k and v (and, in the single blocks, the MLP input) are one fused weight. The renaming and
splitting is Easel's own checkpoint converter (app.families.keys_flux.convert_bfl_to_diffusers),
run here on row-labelled probe tensors: where each labelled row lands says which rows of a fused
LoRA up-matrix belong to which diffusers module, the final norm's scale/shift swap included. So
LoRA files and full checkpoints are renamed by one map.

`original_targets(transformer)` gives, for the model at hand (its block counts and widths), every
BFL module name -> [(diffusers module path, rows of the fused output it takes)].
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

import torch

from app.families.keys_flux import convert_bfl_to_diffusers

# The BFL modules a LoRA can patch (Linear layers; the qk norms are full tensors, not LoRA).
DOUBLE_BLOCK_MODULES = (
    "img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2", "img_mod.lin",
    "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2", "txt_mod.lin",
)
SINGLE_BLOCK_MODULES = ("linear1", "linear2", "modulation.lin")
TOP_LEVEL_MODULES = (
    "img_in", "txt_in", "time_in.in_layer", "time_in.out_layer", "vector_in.in_layer", "vector_in.out_layer",
    "guidance_in.in_layer", "guidance_in.out_layer", "final_layer.linear", "final_layer.adaLN_modulation.1",
)

# XLabs' attention processors -> the BFL module each one adds to. The single-block ones cover only
# the leading part of the fused weight: qkv_lora the q, k, v rows of linear1 (not its MLP rows),
# proj_lora the attention inputs of linear2 (not its MLP inputs).
_XLABS = re.compile(r"(double_blocks|single_blocks)\.(\d+)\.processor\.(qkv_lora[12]?|proj_lora[12]?)")
_XLABS_DOUBLE = {"qkv_lora1": "img_attn.qkv", "qkv_lora2": "txt_attn.qkv",
                 "proj_lora1": "img_attn.proj", "proj_lora2": "txt_attn.proj"}
_XLABS_SINGLE = {"qkv_lora": "linear1", "proj_lora": "linear2"}

Targets = dict[str, list[tuple[str, torch.Tensor]]]


def xlabs_to_bfl(name: str) -> tuple[str, bool] | None:
    """An XLabs module name -> (BFL module name, covers only the leading rows/columns), or None."""
    match = _XLABS.fullmatch(name.removeprefix("diffusion_model."))
    if match is None:
        return None
    kind, index, proc = match.groups()
    table = _XLABS_DOUBLE if kind == "double_blocks" else _XLABS_SINGLE
    if proc not in table:
        return None
    return f"{kind}.{index}.{table[proc]}", kind == "single_blocks"


def bfl_module_names(num_double: int, num_single: int) -> list[str]:
    names = list(TOP_LEVEL_MODULES)
    names += [f"double_blocks.{i}.{m}" for i in range(num_double) for m in DOUBLE_BLOCK_MODULES]
    names += [f"single_blocks.{i}.{m}" for i in range(num_single) for m in SINGLE_BLOCK_MODULES]
    return names


def _probe(row_counts: dict[str, int]) -> dict[str, dict[str, torch.Tensor]]:
    """Run the checkpoint converter on row labels: BFL name -> {diffusers module: rows it got}.

    Every name gets its own range of labels, so each converted tensor says where it came from.
    """
    names = list(row_counts)
    starts = list(accumulate((row_counts[n] for n in names), initial=0))
    state = {f"{n}.weight": torch.arange(starts[i], starts[i + 1]).unsqueeze(1) for i, n in enumerate(names)}
    found: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
    for key, labels in convert_bfl_to_diffusers(state).items():
        labels = labels.squeeze(1)
        i = bisect_right(starts, int(labels[0])) - 1
        found[names[i]][key.removesuffix(".weight")] = labels - starts[i]
    return found


def original_targets(transformer: torch.nn.Module) -> Targets:
    """Every BFL module name of this model -> [(diffusers module, rows of the fused output)].

    Names whose diffusers modules this model lacks (guidance_in on FLUX.1-schnell) are left out.
    """
    modules = dict(transformer.named_modules())
    inner = transformer.x_embedder.out_features
    names = bfl_module_names(len(transformer.transformer_blocks), len(transformer.single_transformer_blocks))
    # First pass: which modules each name reaches (any row count the splits accept will do).
    hint = {name: 3 * inner + 3 for name in names}
    hint["img_in"] = inner
    reached = _probe(hint)
    sizes = {}
    for name, parts in reached.items():
        if all(p in modules for p in parts):
            sizes[name] = sum(modules[p].weight.shape[0] for p in parts)
    # Second pass, with the model's true sizes: the rows each module takes.
    if "img_in" not in sizes:
        return {}
    exact = _probe(sizes)
    return {name: list(parts.items()) for name, parts in exact.items()}
