"""POST /extra-single-image, /extra-batch-images (upscaling) and /png-info (read an image's infotext)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from PIL import Image, ImageOps

from app.api.context import ApiContext
from app.api.images import decode_image, encode_png
from app.api.schemas import (
    ExtrasBase,
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
    PNGInfoRequest,
    PNGInfoResponse,
)
from app.errors import InvalidRequest
from app.generation.infotext import PARAMETERS_CHUNK, format_infotext, read_image_metadata
from app.generation.infotext_controlnet import controlnet_paste_fields
from app.upscale import MAX_OUTPUT_SIDE, UnknownUpscaler, Upscaler, find_upscaler, target_size

_NONE = "none"


def extras_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["extras"])

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse)
    def extra_single_image(body: ExtrasSingleImageRequest) -> dict[str, Any]:
        """Upscale one image by upscaling_resize (resize_mode 0) or to upscaling_resize_w x _h (1)."""
        plan = _Plan.of(ctx, body)
        image = decode_image(body.image, "image")
        out, note = plan.run(image, "image")
        return {"html_info": f"<p>{note}</p>", "image": _encode_keeping_infotext(out, image)}

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse)
    def extra_batch_images(body: ExtrasBatchImagesRequest) -> dict[str, Any]:
        """Upscale every image of imageList the same way."""
        plan = _Plan.of(ctx, body)
        images, notes = [], []
        for index, item in enumerate(body.imageList):
            field = f"imageList[{index}].data"
            image = decode_image(item.data, field)
            out, note = plan.run(image, field)
            images.append(_encode_keeping_infotext(out, image))
            notes.append(f"{item.name or index}: {note}")
        return {"html_info": "".join(f"<p>{n}</p>" for n in notes), "images": images}

    @router.post("/png-info", response_model=PNGInfoResponse)
    def png_info(body: PNGInfoRequest) -> dict[str, Any]:
        """The generation parameters stored in an image (A1111/Forge/Easel infotext; ComfyUI chunks in items)."""
        image = decode_image(body.image, "image")
        meta = read_image_metadata(image)
        text = meta.raw.get(PARAMETERS_CHUNK) or (format_infotext(meta.infotext) if meta.infotext else "")
        items = {k: v for k, v in meta.raw.items() if k != PARAMETERS_CHUNK}
        parameters: dict[str, Any] = {}
        if meta.infotext is not None:
            parameters = {"Prompt": meta.infotext.prompt, "Negative prompt": meta.infotext.negative_prompt,
                          **meta.infotext.params}
            width, sep, height = meta.infotext.params.get("Size", "").partition("x")
            if sep:
                parameters.update({"Size-1": width, "Size-2": height})
            parameters.update(controlnet_paste_fields(meta.infotext.params))  # as sd-webui-controlnet adds them
        return {"info": text, "items": items, "parameters": parameters}

    return router


class _Plan:
    """The checked upscale settings of one request, applied to each of its images."""

    def __init__(self, body: ExtrasBase, first: Upscaler, second: Upscaler | None):
        self.body, self.first, self.second = body, first, second

    @classmethod
    def of(cls, ctx: ApiContext, body: ExtrasBase) -> _Plan:
        upscalers = ctx.engine.upscalers()
        first = _find(body.upscaler_1, "upscaler_1", upscalers)
        second = None
        if body.extras_upscaler_2_visibility > 0 and (body.upscaler_2 or _NONE).lower() != _NONE:
            second = _find(body.upscaler_2, "upscaler_2", upscalers)
        if body.resize_mode not in (0, 1):
            raise InvalidRequest("resize_mode", f"{body.resize_mode!r} is out of range: allowed 0 (scale) or 1 (size)")
        if body.resize_mode == 1:
            for name in ("upscaling_resize_w", "upscaling_resize_h"):
                value = getattr(body, name)
                if not 1 <= value <= MAX_OUTPUT_SIDE:
                    raise InvalidRequest(name, f"{value} is out of range: allowed 1..{MAX_OUTPUT_SIDE}")
        return cls(body, first, second)

    def run(self, image: Image.Image, field: str) -> tuple[Image.Image, str]:
        body = self.body
        if self.first.name.lower() == _NONE:
            return image, f"{image.width}x{image.height}, unchanged (upscaler None)"
        if body.resize_mode == 0:
            scale = body.upscaling_resize
            size = _size(image, scale, "upscaling_resize")
        else:
            w, h = body.upscaling_resize_w, body.upscaling_resize_h
            scale = max(w / image.width, h / image.height)
            field = "upscaling_resize_w" if w / image.width >= h / image.height else "upscaling_resize_h"
            size = _size(image, scale, field)
        out = self.first.run(image, size)
        names = self.first.name
        if self.second is not None:
            other = self.second.run(image, size)
            visibility = body.extras_upscaler_2_visibility
            out = Image.blend(out.convert("RGB"), other.convert("RGB").resize(out.size), visibility)
            names += f" + {self.second.name} ({visibility:g})"
        wanted = (body.upscaling_resize_w, body.upscaling_resize_h)
        if body.resize_mode == 1 and body.upscaling_crop and out.size != wanted:
            out = ImageOps.fit(out, wanted, Image.Resampling.LANCZOS)
        note = f"{image.width}x{image.height} to {out.width}x{out.height} with {names}"
        if body.gfpgan_visibility or body.codeformer_visibility:
            note += "; face restoration is not available and was skipped"
        return out, note


def _find(name: str | None, field: str, upscalers: list[Upscaler]) -> Upscaler:
    try:
        return find_upscaler(name or "None", upscalers)
    except UnknownUpscaler as exc:
        raise HTTPException(status_code=404, detail=f"{field}: {exc}") from None


def _size(image: Image.Image, scale: float, field: str) -> tuple[int, int]:
    try:
        return target_size(image.size, scale=scale)
    except InvalidRequest as exc:
        raise InvalidRequest(field, exc.message) from None


def _encode_keeping_infotext(out: Image.Image, source: Image.Image) -> str:
    """The upscaled image keeps the source's infotext, so png-info still reads how it was made."""
    return encode_png(out, read_image_metadata(source).raw.get(PARAMETERS_CHUNK))
