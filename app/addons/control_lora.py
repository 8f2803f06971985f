"""The parts of a FLUX.1 Canny/Depth dev LoRA (BFL's control LoRAs) that a plain LoRA does not have.

Such a LoRA reads the control picture's latents beside the image's: its x_embedder (BFL `img_in`) LoRA
takes 128 input channels where FLUX.1's projection takes 64. As diffusers' FLUX control LoRA loading does,
the projection is widened to 128 inputs with the new columns zero (the widened model computes what the old
one did until the LoRA's delta lands) and the transformer's config says in_channels 128, which
FluxControlPipeline reads. The file also holds new scales for the attention's q/k RMS norms; they are set as
`original + weight * (new - original)`: weight 1 gives the file's scales, weight 0 the base model's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

CONTROL_IN_CHANNELS = 128
INPUT = "x_embedder"
_PREFIXES = ("diffusion_model.", "transformer.", "model.diffusion_model.")
# BFL's norm names -> diffusers' (the file's ".scale" is the norm's weight)
_BFL_NORMS = (
    (re.compile(r"^double_blocks\.(\d+)\.img_attn\.norm\.query_norm\.scale$"), "transformer_blocks.{}.attn.norm_q"),
    (re.compile(r"^double_blocks\.(\d+)\.img_attn\.norm\.key_norm\.scale$"), "transformer_blocks.{}.attn.norm_k"),
    (re.compile(r"^double_blocks\.(\d+)\.txt_attn\.norm\.query_norm\.scale$"),
     "transformer_blocks.{}.attn.norm_added_q"),
    (re.compile(r"^double_blocks\.(\d+)\.txt_attn\.norm\.key_norm\.scale$"), "transformer_blocks.{}.attn.norm_added_k"),
    (re.compile(r"^single_blocks\.(\d+)\.norm\.query_norm\.scale$"), "single_transformer_blocks.{}.attn.norm_q"),
    (re.compile(r"^single_blocks\.(\d+)\.norm\.key_norm\.scale$"), "single_transformer_blocks.{}.attn.norm_k"),
)
_DIFFUSERS_NORM = re.compile(r"^((?:single_)?transformer_blocks\.\d+\.attn\.norm_(?:added_)?[qk])\.weight$")


def norm_scales(tensors: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """{the file's key: (the transformer's norm module, its new weight)} for every q/k norm scale in a control
    LoRA, in BFL names (`...norm.key_norm.scale`) or diffusers' (`...attn.norm_k.weight`), any prefix."""
    found = {}
    for key, tensor in tensors.items():
        name = next((key[len(p):] for p in _PREFIXES if key.startswith(p)), key)
        module = _diffusers_norm(name)
        if module is not None:
            found[key] = (module, tensor)
    return found


def _diffusers_norm(name: str) -> str | None:
    for pattern, module in _BFL_NORMS:
        match = pattern.match(name)
        if match:
            return module.format(match.group(1))
    match = _DIFFUSERS_NORM.match(name)
    return match.group(1) if match else None


def widen_input(transformer, channels: int = CONTROL_IN_CHANNELS, device=None):
    """Replace the transformer's input projection by one taking `channels` inputs (the old columns first,
    the rest zero) and say so in its config. Returns the original projection, for `narrow_input`.
    `device`: where the new projection goes (the execution device where offload hooks would have moved
    the old one's weights); None: where the old weights are."""
    import torch

    from app.addons.lora import stored_weight

    old = getattr(transformer, INPUT)
    weight = stored_weight(old, "weight")
    out_features, in_features = weight.shape
    if in_features >= channels:
        raise ValueError(f"the input projection already takes {in_features} channels")
    new = torch.nn.Linear(channels, out_features, bias=old.bias is not None, device=device or weight.device,
                          dtype=weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :in_features].copy_(weight)
        if old.bias is not None:
            new.bias.copy_(stored_weight(old, "bias"))
    new.requires_grad_(False)
    setattr(transformer, INPUT, new)
    transformer.register_to_config(in_channels=channels)
    return old


def narrow_input(transformer, original) -> None:
    """Put back the projection `widen_input` replaced, and its width in the config."""
    from app.addons.lora import stored_weight

    setattr(transformer, INPUT, original)
    transformer.register_to_config(in_channels=stored_weight(original, "weight").shape[1])
