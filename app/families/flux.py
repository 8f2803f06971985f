"""FLUX.1 (schnell, dev): defaults from Black Forest Labs' model cards, pipelines per task.

schnell is timestep-distilled: 4 steps, no guidance, T5 at 256 tokens. dev is guidance-distilled: the
"guidance" value (Forge's "Distilled CFG Scale", 3.5) is an input of the transformer, not true CFG, so
the negative prompt does nothing unless true CFG (cfg_scale > 1) is asked for, which doubles the cost.
"""

from __future__ import annotations

from typing import Any, Mapping

from app.families.base import CONTROLNET, FLUX_CONTROL, Capabilities, FamilyAdapter, VariantDefaults, common_call_kwargs, task_pipelines

VARIANTS = {
    "flux-schnell": VariantDefaults(steps=4, cfg_scale=1.0, guidance=None, max_sequence_length=256),
    "flux-dev": VariantDefaults(steps=28, cfg_scale=1.0, guidance=3.5, max_sequence_length=512),
    # FLUX.1 Fill (dev): inpaint and outpaint only; its model card's 50 steps at guidance 30.
    "flux-fill": VariantDefaults(steps=50, cfg_scale=1.0, guidance=30.0, max_sequence_length=512, true_cfg=False),
}


def call_kwargs(request: Any, defaults: VariantDefaults) -> dict[str, Any]:
    kwargs = common_call_kwargs(request, defaults)
    guidance = request.guidance if request.guidance is not None else defaults.guidance
    kwargs["guidance_scale"] = guidance if guidance is not None else 0.0
    cfg = request.cfg_scale if request.cfg_scale is not None else defaults.cfg_scale
    if cfg > 1.0 and defaults.true_cfg:
        kwargs["true_cfg_scale"] = cfg
        kwargs["negative_prompt"] = request.negative_prompt or ""
    return kwargs


PIPELINES = {
    **task_pipelines({"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline", "inpaint": "FluxInpaintPipeline"}),
    ("txt2img", CONTROLNET): "FluxControlNetPipeline",
    ("img2img", CONTROLNET): "FluxControlNetImg2ImgPipeline",
    ("inpaint", CONTROLNET): "FluxControlNetInpaintPipeline",
    ("txt2img", FLUX_CONTROL): "FluxControlPipeline",
    ("img2img", FLUX_CONTROL): "FluxControlImg2ImgPipeline",
    ("inpaint", FLUX_CONTROL): "FluxControlInpaintPipeline",
}
CAPABILITIES = {variant: Capabilities(pipelines=PIPELINES, lora_family="flux", addon_kinds=frozenset({"lora", "controlnet"}),
                                      pipeline_addon_kinds=CONTROLNET | FLUX_CONTROL) for variant in VARIANTS}
CAPABILITIES["flux-fill"] = Capabilities(pipelines=task_pipelines({"inpaint": "FluxFillPipeline"}), lora_family="flux",
                                         crops_to_mask=False)


def infotext_extras(variant: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Forge's key for dev's distilled guidance (schnell has none)."""
    if variant in ("flux-dev", "flux-fill") and kwargs.get("guidance_scale"):
        return {"Distilled CFG Scale": kwargs["guidance_scale"]}
    return {}


def unpack_latents(latents, height: int, width: int, vae_scale_factor: int):
    """FLUX's latents are a sequence of 2x2 patches; previews need the BCHW picture."""
    from app.engine.preview import unpack_flux_latents

    return unpack_flux_latents(latents, height, width, vae_scale_factor)


FLUX = FamilyAdapter(
    name="flux",
    display="FLUX.1",
    variants=VARIANTS,
    clip_tokenizer="tokenizer",
    t5_encoder="text_encoder_2",
    call_kwargs=call_kwargs,
    capabilities=CAPABILITIES,
    cfg_used=lambda kwargs: kwargs.get("true_cfg_scale", 1.0),  # guidance_scale is distilled, not CFG
    infotext_extras=infotext_extras,
    unpack_latents=unpack_latents,
    hires_upscaler="Lanczos",  # upscaled FLUX latents denoise into noise and blotches (Forge #1633)
)
