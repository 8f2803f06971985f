"""LoRAs on quantized weights (a GGUF transformer): added at run time beside the layer instead of fused.

A GGUF layer keeps its weight quantized and dequantizes it at each call, so a delta cannot be added to it.
Each patched layer instead gets a forward hook that adds the LoRA's product to the layer's output:
`out + strength * scale * (x @ down^T) @ up^T`, with the rank-r factors only (a few MB for a whole FLUX
LoRA, as ComfyUI-GGUF patches them). LyCORIS kinds without such factors (LoHa, LoKr, full diffs) add
their dense delta the same way, at the cost of its size. Taking the hooks off gives the base model back
exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def is_quantized(parameter: Any) -> bool:
    """A GGUF-quantized weight (diffusers' GGUFParameter carries its quant type)."""
    return hasattr(parameter, "quant_type")


class RuntimeLora:
    """The forward hook of one patch: its factors kept on the CPU, copied to the call's device and dtype once."""

    def __init__(self, patch: Any, strength: float):
        adapter = patch.adapter
        if getattr(adapter, "kind", "") == "lora" and adapter.down.dim() == 2:
            up = adapter.up if patch.rows is None else adapter.up.index_select(0, patch.rows)
            self.factors = (adapter.down.float(), up.float() * (adapter.scale * float(strength)))
        else:
            dense = patch.delta(strength, torch.float32)
            self.factors = (dense, None)
        self.columns = patch.columns
        self._placed: dict[tuple, tuple] = {}

    def __call__(self, module, args, output):
        x = args[0]
        if self.columns is not None:
            x = x[..., : self.columns]
        key = (x.device, x.dtype)
        if key not in self._placed:
            self._placed[key] = tuple(None if t is None else t.to(x.device, x.dtype) for t in self.factors)
        first, second = self._placed[key]
        added = F.linear(x, first) if second is None else F.linear(F.linear(x, first), second)
        return output + added


def attach(module: torch.nn.Module, patch: Any, strength: float):
    """Hook `module` to add the patch's LoRA at `strength`; returns the handle that takes it off."""
    if len(patch.shape) != 2:
        raise ValueError(f"a LoRA on a quantized {tuple(patch.shape)} weight is not supported")
    return module.register_forward_hook(RuntimeLora(patch, strength))
