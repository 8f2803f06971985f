"""Stable Diffusion 3.5 (large, large-turbo, medium): defaults from Stability AI's model cards.

SD3.5 uses true classifier-free guidance, so the negative prompt matters; large-turbo is distilled for
4 steps without guidance. T5 is optional: without it the pipeline feeds zeros for the T5 tokens.
"""

from __future__ import annotations

from typing import Any

from app.families.base import FamilyAdapter, VariantDefaults, common_call_kwargs

VARIANTS = {
    "sd3.5-large": VariantDefaults(steps=28, cfg_scale=4.5, guidance=None, max_sequence_length=256, negative_prompt=True),
    "sd3.5-large-turbo": VariantDefaults(steps=4, cfg_scale=0.0, guidance=None, max_sequence_length=256),
    "sd3.5-medium": VariantDefaults(steps=40, cfg_scale=4.5, guidance=None, max_sequence_length=256, negative_prompt=True),
}


def call_kwargs(request: Any, defaults: VariantDefaults) -> dict[str, Any]:
    kwargs = common_call_kwargs(request, defaults)
    kwargs["guidance_scale"] = request.cfg_scale if request.cfg_scale is not None else defaults.cfg_scale
    kwargs["negative_prompt"] = request.negative_prompt or ""
    return kwargs


SD3 = FamilyAdapter(
    name="sd3",
    display="SD3.5",
    pipelines={
        "txt2img": "StableDiffusion3Pipeline",
        "img2img": "StableDiffusion3Img2ImgPipeline",
        "inpaint": "StableDiffusion3InpaintPipeline",
    },
    variants=VARIANTS,
    clip_tokenizer="tokenizer",
    t5_encoder="text_encoder_3",
    call_kwargs=call_kwargs,
)
