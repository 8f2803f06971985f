"""POST /txt2img and /img2img: translate, run through the engine's queue, answer as A1111 does.

The endpoints are `async`: a request translates its body and submits on the event loop, then awaits its
job holding no thread, so 64 queued requests leave every other route answering. PNG encoding of the
results (CPU work) runs briefly in the threadpool.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter

from app.api.checkpoints import find_checkpoint
from app.api.context import ApiContext
from app.api.images import encode_png
from app.api.info import build_info, info_text, json_safe
from app.api.jobs import Finished
from app.api.schemas import GenerationBody, GenerationResponse, Img2ImgRequest, Txt2ImgRequest
from app.api.translate import Translation, a1111_field, translate_img2img, translate_txt2img
from app.errors import EaselError, InvalidRequest
from app.generation.infotext import parse_infotext

_IMAGE_FIELDS = ("init_images", "mask")


def generation_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["generation"])

    @router.post("/txt2img", response_model=GenerationResponse)
    async def txt2img(body: Txt2ImgRequest) -> dict[str, Any]:
        """Text to image. Unknown and non-applicable fields are accepted and listed in info.ignored_fields.
        The request waits in the engine's queue (see GET /sdapi/v1/queue) until its images are made."""
        translation = translate_txt2img(body, engine=ctx.engine, default_model=ctx.options.model,
                                        preview_every=ctx.options.preview_every)
        return await _generate(ctx, body, translation)

    @router.post("/img2img", response_model=GenerationResponse)
    async def img2img(body: Img2ImgRequest) -> dict[str, Any]:
        """Image to image; with `mask`, inpainting (unmasked pixels are kept exactly)."""
        translation = translate_img2img(body, engine=ctx.engine, default_model=ctx.options.model,
                                        preview_every=ctx.options.preview_every)
        return await _generate(ctx, body, translation)

    return router


async def _generate(ctx: ApiContext, body: GenerationBody, translation: Translation) -> dict[str, Any]:
    if translation.keep_model:
        ctx.options.select_model(translation.keep_model)
    try:
        finished = await ctx.jobs.run(translation.request)
    except InvalidRequest as exc:  # checked at submit (an upscaler, a ControlNet unit): name the client's field
        raise InvalidRequest(a1111_field(exc.field, translation.request.stages, translation.units),
                             exc.message) from None
    return await to_thread.run_sync(_response, ctx, body, translation, finished)


def _response(ctx: ApiContext, body: GenerationBody, translation: Translation, finished: Finished) -> dict[str, Any]:
    result = finished.result
    _learn_hash(ctx, result)
    info = build_info(result, translation.request, created=finished.job.created,
                      ignored_fields=translation.ignored_fields, notes=translation.notes)
    images = []
    if body.send_images:
        images = [encode_png(image, text) for image, text in zip(result.images, result.infotexts, strict=True)]
        # ControlNet's detected maps (units with save_detected_map) follow, as sd-webui-controlnet returns them.
        images += [encode_png(image) for image in result.extra_images]
    return {"images": images, "parameters": _echo(body), "info": info_text(info)}


def _echo(body: GenerationBody) -> dict[str, Any]:
    """The request as received; input images only when include_init_images asks (as A1111)."""
    echo = body.model_dump()
    if not echo.get("include_init_images"):
        for name in _IMAGE_FIELDS:
            if name in echo:
                echo[name] = None
    return json_safe(echo)


def _learn_hash(ctx: ApiContext, result) -> None:
    if not result.infotexts or not result.model:
        return
    try:
        entry = find_checkpoint(ctx.engine, result.model)
    except EaselError:
        return
    ctx.hashes.learn(entry, parse_infotext(result.infotexts[0]).params.get("Model hash"))
