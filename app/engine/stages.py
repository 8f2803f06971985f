"""The passes of a job after its first one, planned from the request's `stages`: a table keyed by kind.

    for index, stage in enumerate(request.stages):
        images, values = STAGE_RUNNERS[stage.kind](StageRun(...), stage, images, seeds)

Hires fix (A1111's, with Forge's fields): the first pass's pictures are upscaled (a pixel upscaler, or
in latent space: "Latent" and its modes) to the hires size, then denoised again by the same model's
img2img pipeline with the same seeds, `strength` of the way. The Size in the infotext stays the first
pass's, as A1111 writes it; "Hires upscale"/"Hires resize" say what became of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from app.errors import InvalidRequest, ModelNotFound
from app.engine.task_inputs import img2img_steps
from app.engine.tiled_stage import (check_tiled_upscale, run_tiled_upscale, same_model_pass, scaled_size,
                                    tile_size, upscales_the_input)
from app.generation.request import MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE, HiresStage, RefineStage

# A1111's latent upscale modes: name -> (torch interpolate mode, antialias).
LATENT_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
LATENT_NAMES = {name.lower(): name for name in LATENT_MODES}  # as a client may write them -> A1111's spelling


def _snap(value: float) -> int:
    return min(MAX_SIZE, max(MIN_SIZE, int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE))


@dataclass(frozen=True)
class HiresSize:
    """cover: the size the picture is upscaled to; final: the hires pass's size (cover cropped to it)."""

    cover: tuple[int, int]
    final: tuple[int, int]


def hires_size(width: int, height: int, stage: HiresStage) -> HiresSize:
    """A1111's hires target: `scale` times the first pass, or resize_x / resize_y (one given: the other
    keeps the aspect; both: upscale to cover them, then crop the middle), snapped to multiples of 16."""
    x, y = stage.resize_x, stage.resize_y
    if not x and not y:
        size = (_snap(width * stage.scale), _snap(height * stage.scale))
        return HiresSize(size, size)
    if not y:
        size = (_snap(x), _snap(x * height / width))
        return HiresSize(size, size)
    if not x:
        size = (_snap(y * width / height), _snap(y))
        return HiresSize(size, size)
    final = (_snap(x), _snap(y))
    if width / height < final[0] / final[1]:
        cover = (final[0], _snap(max(final[1], final[0] * height / width)))
    else:
        cover = (_snap(max(final[0], final[1] * width / height)), final[1])
    return HiresSize(cover, final)


def pass_sizes(request, width: int, height: int) -> list[tuple[int, int]]:
    """The sizes a job's pipeline calls run at, `width` x `height` being its first pass's (the memory
    plan sizes the job by the largest; each must fit the model). A tiled upscale's calls are its tiles."""
    tiles_first = bool(request.stages) and request.stages[0].kind == "tiled_upscale"
    sizes = [] if tiles_first and upscales_the_input(request, 1) else [(width, height)]
    for stage in request.stages:
        if stage.kind == "hires":
            sizes.append(hires_size(width, height, stage).final)
        elif stage.kind == "tiled_upscale":
            sizes.append(tile_size(stage, width, height))
    return sizes


def hires_upscaler_name(stage: HiresStage, family) -> str:
    return stage.upscaler.strip() or family.hires_upscaler


def check_hires_upscaler(name: str, upscalers: list, index: int) -> None:
    """InvalidRequest naming stages[index].upscaler when there is no upscaler or latent mode of that name."""
    if name.lower() in LATENT_NAMES or any(u.name.lower() == name.lower() for u in upscalers):
        return
    allowed = [*LATENT_MODES, *(u.name for u in upscalers if u.name != "None")]
    raise InvalidRequest(f"stages[{index}].upscaler", f"no upscaler named {name!r} (available: {', '.join(allowed)})")


def check_stages(request, family, upscalers: Callable[[], list], resolve_model: Callable[[str], Any],
                 size: tuple[int, int]) -> None:
    """At submit: every stage's names exist and its picture fits (InvalidRequest naming stages[i].field).
    `size`: the job's first pass's."""
    picture = size
    for index, stage in enumerate(request.stages):
        if stage.kind == "tiled_upscale":
            source = request.image.size if upscales_the_input(request, index + 1) else picture
            check_tiled_upscale(stage, index, source, upscalers())
            picture = scaled_size(source, stage)
        elif stage.kind == "hires":
            picture = hires_size(*size, stage).final
            check_hires_upscaler(hires_upscaler_name(stage, family), upscalers(), index)
        elif stage.kind == "refine":
            try:
                entry = resolve_model(stage.model)
            except ModelNotFound as exc:
                raise InvalidRequest(f"stages[{index}].model", str(exc)) from None
            if not entry.ready:  # found at submit, not after the drafts are made and would be lost
                problems = "; ".join(entry.problems) or entry.status
                raise InvalidRequest(f"stages[{index}].model", f"{entry.name} cannot be loaded: {problems}")


@dataclass
class StageRun:
    """What a stage may use: the job, the loaded model, the first pass's call and the runner's pieces."""

    job: Any
    loaded: Any
    defaults: Any
    kwargs: dict[str, Any]  # the first pass's pipeline kwargs
    width: int
    height: int
    batch: int
    index: int  # the stage's place among the job's passes (the first pass is 0)
    total: int
    run_pipeline: Callable[..., tuple[list, int | None]]  # runner._run_pipeline with the job's previewer
    upscalers: Callable[[], list]
    load_model: Callable[[str], Any] | None = None  # a model by name, loaded with no add-ons (refine)
    values: dict[str, Any] = field(default_factory=dict)  # infotext values the stage adds
    stopped_at: int | None = None  # where an interrupt or skip stopped this stage, None when it finished


def _crop_middle(image, size: tuple[int, int]):
    if image.size == size:
        return image
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def _pixel_upscale(run: StageRun, images: list, name: str, target: HiresSize) -> list:
    upscaler = next(u for u in run.upscalers() if u.name.lower() == name.lower())
    return [_crop_middle(upscaler.run(image.convert("RGB"), target.cover), target.final) for image in images]


def _latent_upscale(run: StageRun, pipe, images: list, name: str, target: HiresSize):
    """The pictures encoded by the model's VAE, resized in latent space and cropped, as the img2img
    pipeline takes latents for its `image` (the family's `latents_as_image`)."""
    import torch

    mode, antialias = LATENT_MODES[LATENT_NAMES[name.lower()]]
    vae = pipe.vae
    factor = pipe.vae_scale_factor
    with torch.inference_mode():
        pixels = pipe.image_processor.preprocess(images).to(pipe._execution_device, vae.dtype)
        latents = vae.encode(pixels).latent_dist.mean
        latents = (latents - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
        cover = (target.cover[1] // factor, target.cover[0] // factor)
        latents = torch.nn.functional.interpolate(latents.float(), size=cover, mode=mode,
                                                  antialias=antialias and mode in ("bilinear", "bicubic"))
        top, left = (cover[0] - target.final[1] // factor) // 2, (cover[1] - target.final[0] // factor) // 2
        latents = latents[:, :, top: top + target.final[1] // factor, left: left + target.final[0] // factor]
    return run.loaded.family.latents_as_image(latents.to(vae.dtype), vae.config)


def run_hires(run: StageRun, stage: HiresStage, images: list, seeds: list[int]) -> list:
    """The hires pass over one batch's pictures; returns the new pictures (run.values gets the infotext)."""
    family, request = run.loaded.family, run.job.request
    target = hires_size(run.width, run.height, stage)
    name = hires_upscaler_name(stage, family)
    pipe = run.loaded.pipeline_for("img2img")
    kwargs = family.call_kwargs(same_model_pass(request, stage, run.kwargs["num_inference_steps"]), run.defaults)
    run.values.update(_hires_infotext(stage, request, name, kwargs["num_inference_steps"], target, family, kwargs))
    if stage.strength == 0:  # nothing to denoise: the upscaled pictures as they are
        return _pixel_upscale(run, images, "Lanczos" if name.lower() in LATENT_NAMES else name, target)
    if name.lower() in LATENT_NAMES:
        image = _latent_upscale(run, pipe, images, name, target)
    else:
        image = _pixel_upscale(run, images, name, target)
    kwargs.update(image=image, strength=stage.strength, width=target.final[0], height=target.final[1],
                  output_type="pil", num_images_per_prompt=len(images))
    steps_run = img2img_steps(kwargs["num_inference_steps"], stage.strength)
    out, run.stopped_at = run.run_pipeline(pipe, kwargs, seeds, steps_run, target.final,
                                           stage=("hires fix", run.index, run.total))
    if run.stopped_at is not None:
        run.values["Hires stopped at step"] = f"{run.stopped_at}/{steps_run}"
    return out


def _hires_infotext(stage: HiresStage, request, upscaler: str, steps: int, target: HiresSize, family,
                    kwargs: dict[str, Any]) -> dict[str, Any]:
    """A1111's and Forge's hires keys, only those that say something."""
    values: dict[str, Any] = {"Denoising strength": stage.strength}
    if stage.resize_x or stage.resize_y:
        values["Hires resize"] = f"{target.final[0]}x{target.final[1]}"
    else:
        values["Hires upscale"] = stage.scale
    if stage.steps:
        values["Hires steps"] = steps
    values["Hires upscaler"] = LATENT_NAMES.get(upscaler.lower(), upscaler)
    if stage.cfg_scale is not None:
        values["Hires CFG Scale"] = stage.cfg_scale
    if stage.guidance is not None:
        values["Hires Distilled CFG Scale"] = stage.guidance
    if stage.prompt and stage.prompt != request.prompt:
        values["Hires prompt"] = stage.prompt
    if stage.negative_prompt and stage.negative_prompt != request.negative_prompt:
        values["Hires negative prompt"] = stage.negative_prompt
    return values


def run_refine(run: StageRun, stage: RefineStage, images: list, seeds: list[int]) -> list:
    """The pictures denoised again by another model with the same seeds, its own defaults where the
    stage sets none; the job's add-ons (LoRAs) were for the first model and do not follow."""
    request = run.job.request
    loaded = run.load_model(stage.model)
    family, entry = loaded.family, loaded.entry
    defaults = family.defaults_for(entry.variant, entry.path)
    second = request.model_copy(update={
        "prompt": stage.prompt or request.prompt, "negative_prompt": stage.negative_prompt or request.negative_prompt,
        "steps": stage.steps or None, "cfg_scale": stage.cfg_scale, "guidance": stage.guidance})
    kwargs = family.call_kwargs(second, defaults)
    size = images[0].size
    kwargs.update(image=[image.convert("RGB") for image in images], strength=stage.strength, width=size[0],
                  height=size[1], output_type="pil", num_images_per_prompt=len(images))
    steps = kwargs["num_inference_steps"]
    run.values.update({"Refiner": f"{entry.name} [{loaded.model_hash}]" if loaded.model_hash else entry.name,
                       "Refiner denoise": stage.strength, "Refiner steps": steps})
    out, run.stopped_at = run.run_pipeline(loaded.pipeline_for("img2img"), kwargs, seeds,
                                           img2img_steps(steps, stage.strength), size,
                                           stage=("refine", run.index, run.total), model=loaded)
    if run.stopped_at is not None:
        run.values["Refiner stopped at step"] = f"{run.stopped_at}/{img2img_steps(steps, stage.strength)}"
    return out


STAGE_RUNNERS: dict[str, Callable[[StageRun, Any, list, list[int]], list]] = {
    "hires": run_hires,
    "refine": run_refine,
    "tiled_upscale": run_tiled_upscale,
}
# Stages that run once per job after every batch's other passes (they load another model: one swap).
AFTER_ALL_BATCHES = frozenset({"refine"})
