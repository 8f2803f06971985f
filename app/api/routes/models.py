"""Models and options: /sd-models, /options, refresh/unload/reload, and the lists of samplers,
schedulers, upscalers, LoRAs and VAEs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.api.context import ApiContext
from app.api.option_values import post_description
from app.api.schemas import LoraItem, SamplerItem, SchedulerItem, SDModelItem, SDVaeItem, UpscalerItem
from app.errors import EaselError

# FLUX.1 and SD3.5 are flow-matching models: diffusers' FlowMatchEulerDiscreteScheduler is their sampler.
SAMPLERS = [{"name": "Euler", "aliases": ["euler", "k_euler", "flow_match_euler"],
             "options": {"flow_matching": "True"}}]
SCHEDULERS = [{"name": "simple", "label": "Simple", "aliases": ["automatic"], "default_rho": -1.0,
               "need_inner_model": False}]


def models_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["models"])

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models() -> list[dict[str, Any]]:
        """Ready models. hash is null until it is cheap to know (see app.api.hashes)."""
        out = []
        for entry in ctx.engine.models():
            if not entry.ready:
                continue
            short, sha256 = ctx.hashes.of(entry)
            out.append({"title": entry.title, "model_name": entry.name, "hash": short, "sha256": sha256,
                        "filename": str(entry.path), "config": None})
        return out

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        """Every A1111 option with its value, as one flat dict: Easel's value where it has one (the
        selected model, the output folders, the filename pattern ...), else the value last posted,
        else A1111's default. See POST for what Easel does with each."""
        return ctx.options.snapshot(hash_of=ctx.hashes.of)

    @router.post("/options", description=post_description())
    def set_options(values: Annotated[dict[str, Any], Body()]) -> dict[str, list[str]]:
        return ctx.options.update(values)

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> dict[str, Any]:
        """Scan the models folders again."""
        return {"models": len(ctx.engine.models(refresh=True))}

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        """Scan the LoRA folders again. Answers null, as A1111 does."""
        ctx.engine.catalog(refresh=True)

    @router.post("/refresh-vae")
    def refresh_vae() -> dict[str, Any]:
        return {"vae": len(ctx.engine.catalog(refresh=True).files_of_kind("vae"))}

    @router.post("/unload-checkpoint")
    def unload_checkpoint() -> dict[str, Any]:
        """Unload every loaded model (after the running job) and give its memory back."""
        return {"unloaded": ctx.engine.unload()}

    @router.post("/reload-checkpoint")
    def reload_checkpoint() -> dict[str, Any]:
        """Load the selected model now (after the running job), as A1111 does."""
        name = ctx.engine.load(ctx.options.model)
        return {"model": ctx.options.current_title(), "loaded": list(ctx.engine.loaded_models), "name": name}

    @router.get("/samplers", response_model=list[SamplerItem])
    def samplers() -> list[dict[str, Any]]:
        return SAMPLERS

    @router.get("/schedulers", response_model=list[SchedulerItem])
    def schedulers() -> list[dict[str, Any]]:
        return SCHEDULERS

    @router.get("/upscalers", response_model=list[UpscalerItem])
    def upscalers() -> list[dict[str, Any]]:
        return [{"name": u.name, "model_name": u.model_name, "model_path": u.model_path, "model_url": None,
                 "scale": u.scale} for u in ctx.engine.upscalers()]

    @router.get("/loras", response_model=list[LoraItem])
    def loras() -> list[dict[str, Any]]:
        """LoRA files in the models folders, as A1111 lists them: name (what `<lora:NAME:1>` calls it),
        alias (the training's output name), path, and the file's safetensors metadata."""
        try:
            infos = ctx.engine.loras()
        except EaselError:
            infos = []
        return [{"name": i.name, "alias": i.alias, "path": str(i.path), "metadata": i.a1111_metadata()}
                for i in infos]

    @router.get("/sd-vae", response_model=list[SDVaeItem])
    def sd_vae() -> list[dict[str, Any]]:
        scan = _scan(ctx)
        files = scan.files_of_kind("vae") if scan else []
        return [{"model_name": f.path.stem, "filename": str(f.path)} for f in files]

    return router


def _scan(ctx: ApiContext):
    try:
        return ctx.engine.catalog()
    except EaselError:
        return None
