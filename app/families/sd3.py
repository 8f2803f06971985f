"""Stable Diffusion 3.5 (large, large-turbo, medium): defaults from Stability AI's model cards.

SD3.5 uses true classifier-free guidance, so the negative prompt matters; large-turbo is distilled for
4 steps without guidance. T5 is optional: without it the pipeline feeds zeros for the T5 tokens.
"""

from __future__ import annotations

from typing import Any

from app.families.base import CONTROLNET, Capabilities, FamilyAdapter, VariantDefaults, common_call_kwargs, task_pipelines

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


PIPELINES = {
    **task_pipelines({"txt2img": "StableDiffusion3Pipeline", "img2img": "StableDiffusion3Img2ImgPipeline",
                      "inpaint": "StableDiffusion3InpaintPipeline"}),
    # diffusers has SD3 ControlNet pipelines for txt2img only (its inpainting one is for inpainting ControlNets)
    ("txt2img", CONTROLNET): "StableDiffusion3ControlNetPipeline",
}
# SD3.5 large and medium differ in depth and width: a LoRA of one has no key that fits the other, which
# the LoRA loader reports by name; the family check here catches FLUX files before any load.
CAPABILITIES = {variant: Capabilities(pipelines=PIPELINES, lora_family="sd3", addon_kinds=frozenset({"lora", "controlnet"}),
                                      pipeline_addon_kinds=CONTROLNET) for variant in VARIANTS}


def size_limit(pipe) -> int:
    """SD3's position embedding has a largest grid: beyond it the model cannot place a patch."""
    cfg = pipe.transformer.config
    return cfg.pos_embed_max_size * cfg.patch_size * pipe.vae_scale_factor


SD3 = FamilyAdapter(
    name="sd3",
    display="SD3.5",
    variants=VARIANTS,
    clip_tokenizer="tokenizer",
    t5_encoder="text_encoder_3",
    call_kwargs=call_kwargs,
    capabilities=CAPABILITIES,
    cfg_used=lambda kwargs: kwargs["guidance_scale"],
    size_limit=size_limit,
    # SD3's img2img takes latents as they come from the VAE and normalises them itself.
    latents_as_image=lambda latents, vae_config: latents / vae_config.scaling_factor + (vae_config.shift_factor or 0.0),
)
