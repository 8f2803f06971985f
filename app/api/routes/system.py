"""Lists A1111 clients read at start-up and the machine's state: /memory, /cmd-flags, /scripts, ...

Easel has no prompt styles, scripts, embeddings or face restorers yet: those lists are empty.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.context import ApiContext
from app.api.schemas import MemoryResponse, ScriptsList
from app.api.system_info import cmd_flags, cuda_stats, ram_stats


def system_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/memory", response_model=MemoryResponse)
    def memory() -> dict[str, Any]:
        """RAM of this process and, with CUDA, the GPU's memory and the allocator's counters."""
        return {"ram": ram_stats(), "cuda": cuda_stats()}

    @router.get("/cmd-flags")
    def flags() -> dict[str, Any]:
        """Settings in force (credentials are never shown)."""
        return cmd_flags(ctx.settings, ctx.flags)

    @router.get("/scripts", response_model=ScriptsList)
    def scripts() -> dict[str, Any]:
        return {"txt2img": [], "img2img": []}

    @router.get("/script-info")
    def script_info() -> list[Any]:
        return []

    @router.get("/extensions")
    def extensions() -> list[Any]:
        return []

    @router.get("/prompt-styles")
    def prompt_styles() -> list[Any]:
        return []

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        return {"loaded": {}, "skipped": {}}

    @router.get("/hypernetworks")
    def hypernetworks() -> list[Any]:
        return []

    @router.get("/face-restorers")
    def face_restorers() -> list[Any]:
        return []

    @router.get("/realesrgan-models")
    def realesrgan_models() -> list[Any]:
        return []

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[Any]:
        return []

    return router
