"""The tiled upscale stage (A1111's "SD upscale"): upscale the pictures, then img2img them tile by tile.

    image = upscaler.run(picture, scaled size)
    for each tile of image: the job's img2img pipeline at stage.strength, the picture's seed
    blend the tiles with feathered edges (app/upscale/refine.py)

One job, whatever the tile count: progress says "tiled upscale 2/2 · tile 3/16 · step 2/4", an interrupt
or skip stops it at the tile it is on and keeps the tiles done laid over the upscaled picture.
"""

from __future__ import annotations

from typing import Any

from app.engine.task_inputs import img2img_steps
from app.errors import InvalidRequest
from app.generation.request import MAX_TILED_OUTPUT, TiledUpscaleStage
from app.upscale.registry import NONE

STAGE_NAME = "tiled upscale"
DEFAULT_UPSCALER = "Lanczos"


def upscaler_name(stage: TiledUpscaleStage) -> str:
    return stage.upscaler.strip() or DEFAULT_UPSCALER


def upscales_the_input(request, index: int) -> bool:
    """An img2img job at strength 0 whose first stage this is: the input itself is upscaled, exactly as
    it is (not its copy fitted to a multiple of 16), as A1111's img2img script and the Upscale tab do."""
    return index == 1 and request.task == "img2img" and request.strength == 0


def tile_size(stage: TiledUpscaleStage, width: int, height: int) -> tuple[int, int]:
    """The tiles' size: the stage's, or the job's own size (A1111's script takes the img2img size)."""
    return stage.tile_width or width, stage.tile_height or height


def scaled_size(size: tuple[int, int], stage: TiledUpscaleStage) -> tuple[int, int]:
    """The upscaled picture's size; upscaler "None" (A1111's first) leaves it as it is: tiles over the picture."""
    if upscaler_name(stage).lower() == NONE.lower():
        return size
    return round(size[0] * stage.scale), round(size[1] * stage.scale)


def same_model_pass(request, stage, first_pass_steps: int):
    """The request of a later pass on the job's own model: the stage's prompt, steps and CFG where it
    sets them, the first pass's where it does not."""
    return request.model_copy(update={
        "prompt": stage.prompt or request.prompt, "negative_prompt": stage.negative_prompt or request.negative_prompt,
        "steps": stage.steps or first_pass_steps,
        "cfg_scale": stage.cfg_scale if stage.cfg_scale is not None else request.cfg_scale,
        "guidance": stage.guidance if stage.guidance is not None else request.guidance})


def check_tiled_upscale(stage: TiledUpscaleStage, index: int, source: tuple[int, int], upscalers: list) -> None:
    """At submit: the upscaler exists (a pixel one: the tiles are pictures) and the picture fits."""
    name = upscaler_name(stage)
    if not any(u.name.lower() == name.lower() for u in upscalers):
        allowed = [u.name for u in upscalers]
        raise InvalidRequest(f"stages[{index}].upscaler", f"no upscaler named {name!r} (available: {', '.join(allowed)})")
    out = scaled_size(source, stage)
    if max(out) > MAX_TILED_OUTPUT:
        raise InvalidRequest(f"stages[{index}].scale", f"{stage.scale} makes a {out[0]}x{out[1]} picture from "
                             f"{source[0]}x{source[1]}; at most {MAX_TILED_OUTPUT} px per side")


def run_tiled_upscale(run, stage: TiledUpscaleStage, images: list, seeds: list[int]) -> list:
    """Each picture upscaled, then refined tile by tile with its seed; returns the new pictures."""
    from app.upscale.refine import refine_in_tiles

    request, family = run.job.request, run.loaded.family
    if upscales_the_input(request, run.index):
        images = [request.image.convert("RGB") for _ in images]
    name = upscaler_name(stage)
    upscaler = next(u for u in run.upscalers() if u.name.lower() == name.lower())
    kwargs = family.call_kwargs(same_model_pass(request, stage, run.kwargs["num_inference_steps"]), run.defaults)
    steps = kwargs["num_inference_steps"]
    steps_run = img2img_steps(steps, stage.strength)
    tile_w, tile_h = tile_size(stage, run.width, run.height)
    pipe = run.loaded.pipeline_for("img2img")
    out, done, total = [], 0, 0
    for number, (image, seed) in enumerate(zip(images, seeds)):
        upscaled = upscaler.run(image.convert("RGB"), scaled_size(image.size, stage))
        if stage.strength == 0 or run.stopped_at is not None:
            out.append(upscaled)
            continue

        def refine_tile(part, tile, index: int, count: int, seed=seed, number=number) -> Any:
            call = {**kwargs, "image": [part], "strength": stage.strength, "width": part.width,
                    "height": part.height, "output_type": "pil", "num_images_per_prompt": 1}
            made, stopped = run.run_pipeline(pipe, call, [seed], steps_run, part.size,
                                             stage=(STAGE_NAME, run.index, run.total),
                                             tile=(number * count + index, len(images) * count))
            return None if stopped is not None else made[0]

        tiled = refine_in_tiles(upscaled, refine_tile, tile=tile_w, tile_height=tile_h, overlap=stage.overlap)
        out.append(tiled.image)
        done, total = done + tiled.done, total + tiled.total
        if tiled.done < tiled.total:
            run.stopped_at = done
    run.values.update(_tiled_infotext(stage, request, run, name, steps, (tile_w, tile_h)))
    if run.stopped_at is not None:
        run.values["SD upscale stopped at tile"] = f"{done}/{total}"
    return out


def _tiled_infotext(stage: TiledUpscaleStage, request, run, upscaler: str, steps: int,
                    tile: tuple[int, int]) -> dict[str, Any]:
    """A1111's SD upscale keys, and Easel's for what A1111 reads from the img2img fields."""
    values: dict[str, Any] = {"SD upscale overlap": stage.overlap, "SD upscale upscaler": upscaler,
                              "SD upscale tile": f"{tile[0]}x{tile[1]}", "SD upscale denoise": stage.strength}
    if upscaler.lower() != NONE.lower():
        values["SD upscale scale"] = stage.scale
    if stage.steps:
        values["SD upscale steps"] = steps
    if upscales_the_input(request, run.index):  # the tiles are the job's only denoising: A1111's reading
        values["Denoising strength"] = stage.strength
    if stage.prompt and stage.prompt != request.prompt:
        values["SD upscale prompt"] = stage.prompt
    return values
