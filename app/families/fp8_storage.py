"""An fp8 transformer or T5 file (flux1-dev-fp8 e4m3fn, 11.9 GB; t5xxl_fp8_e4m3fn, 4.9 GB) kept fp8 in
memory, computing in bf16.

The file's fp8 tensors are loaded as they are (no bf16 copy is ever made) and diffusers' layerwise
casting hooks each linear and convolution layer to cast its weights to the compute dtype for its call
only. The layers diffusers keeps out of layerwise casting (norms, position embeddings, proj_in/out)
are cast to the compute dtype once: fp8 -> bf16 is exact, so the model computes what the upcast one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import torch

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_HOOK = "layerwise_casting"


def fp8_storage_dtype(tensors: Mapping[str, torch.Tensor]) -> torch.dtype | None:
    """The fp8 dtype holding most of a state dict's floating bytes, or None when fp8 is not the main one."""
    weight: Counter = Counter()
    for tensor in tensors.values():
        if tensor.is_floating_point():
            weight[tensor.dtype] += tensor.numel() * tensor.element_size()
    main = weight.most_common(1)[0][0] if weight else None
    return main if main in FP8_DTYPES else None


def keep_fp8_layers(model: torch.nn.Module, storage: torch.dtype, compute: torch.dtype,
                    fp32_modules: tuple[str, ...] = ()) -> torch.nn.Module:
    """Hook the model's layers for layerwise casting from `storage` (diffusers' selection: its default skip
    patterns and the model class's own), and cast what the hooks leave out to `compute`. The
    `fp32_modules` (T5's "wo", which casts its input to its weight's dtype itself) are left out of the
    hooks, in float32 under float16 (where they would overflow) and in `compute` otherwise."""
    from diffusers.hooks import apply_layerwise_casting
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    whole = tuple(fp32_modules)
    patterns = (*DEFAULT_SKIP_MODULES_PATTERN, *(getattr(model, "_skip_layerwise_casting_patterns", None) or ()),
                *whole)
    apply_layerwise_casting(model, storage, compute, skip_modules_pattern=patterns)
    for name, module in model.named_modules():
        if _HOOK in _hook_names(module):
            continue
        in_fp32 = compute == torch.float16 and set(name.split(".")) & set(whole)
        target = torch.float32 if in_fp32 else compute
        for _, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if tensor.dtype in FP8_DTYPES:
                tensor.data = tensor.data.to(target)
    return model


def _hook_names(module: torch.nn.Module) -> set[str]:
    registry = getattr(module, "_diffusers_hook", None)
    return set(getattr(registry, "hooks", {}) or {})
