"""Run one job on a loaded model: seeds, pipeline arguments, per-step progress and cancel, infotext, saving."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from app import __version__
from app.engine.jobs import RUNNING, GenerationResult, Job, Progress
from app.engine.preview import unpack_flux_latents
from app.errors import InvalidRequest
from app.families.base import VariantDefaults
from app.generation.images import fill_masked, fit_image, paste_unmasked, prepare_mask
from app.generation.infotext import Infotext, format_infotext
from app.generation.request import MAX_SEED, SIZE_MULTIPLE, GenerationRequest
from app.generation.tokens import CLIP_WINDOW, count_clip_tokens

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Geometry:
    width: int
    height: int


def resolve_size(request: GenerationRequest, defaults: VariantDefaults) -> Geometry:
    """Requested size; for img2img/inpaint without one, the input's size rounded to a multiple of 16."""
    if request.image is not None and (request.width is None or request.height is None):
        iw, ih = _input_size(*request.image.size)
        width = request.width or iw
        height = request.height or ih
    else:
        width = request.width or defaults.width
        height = request.height or defaults.height
    return Geometry(width, height)


def _round_to_multiple(v: float) -> int:
    return min(4096, max(64, int(round(v / SIZE_MULTIPLE)) * SIZE_MULTIPLE))


def _input_size(width: int, height: int, max_side: int = 4096) -> tuple[int, int]:
    """An input image's size as a generation size: aspect kept, longest side at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return _round_to_multiple(width * scale), _round_to_multiple(height * scale)


def pick_seed(seed: int) -> int:
    return random.randint(0, MAX_SEED) if seed < 0 else seed


def check_model_limits(pipe, family_name: str, geometry: Geometry) -> None:
    """Sizes a particular model cannot take (SD3's position embedding has a maximum), named clearly."""
    if family_name == "sd3":
        cfg = pipe.transformer.config
        limit = cfg.pos_embed_max_size * cfg.patch_size * pipe.vae_scale_factor
        for field, value in (("width", geometry.width), ("height", geometry.height)):
            if value > limit:
                raise InvalidRequest(field, f"{value} is larger than this model allows ({limit} px at most)")


class StepReporter:
    """callback_on_step_end: reports progress, makes previews, and stops the pipeline when asked."""

    def __init__(self, job: Job, *, total_steps: int, batch: int, previewer, preview_every: int,
                 geometry: Geometry, family_name: str, vae_config, hooks=None):
        self.job, self.total_steps, self.batch = job, total_steps, batch
        self.previewer, self.preview_every = previewer, preview_every
        self.geometry, self.family_name, self.vae_config = geometry, family_name, vae_config
        self.started = time.perf_counter()
        self.steps_run = 0
        self.stopped_at: int | None = None  # the step after which a cancel stopped the pipeline
        self.hooks = hooks

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        self.steps_run += 1
        done = step + 1
        elapsed = time.perf_counter() - self.started
        per_step = elapsed / max(1, self.steps_run)
        remaining_batches = self.job.request.batch_count - self.batch - 1
        eta = per_step * ((self.total_steps - done) + remaining_batches * self.total_steps)
        preview = self._preview(pipe, callback_kwargs, done)
        self.job.report(Progress(job_id=self.job.id, state=RUNNING, step=done, total_steps=self.total_steps,
                                 batch=self.batch, total_batches=self.job.request.batch_count,
                                 eta_seconds=eta, preview=preview))
        if self.hooks is not None:  # never raises: a failing extension is recorded and skipped
            self.hooks.step_end(self.job, done, self.total_steps, callback_kwargs.get("latents"))
        if self.job.cancel.stop_current_batch():
            pipe._interrupt = True  # diffusers' documented way to stop a pipeline from a callback
            self.stopped_at = done
        return {}

    def _preview(self, pipe, callback_kwargs, done: int):
        if not self.previewer or not self.preview_every or done % self.preview_every or done == self.total_steps:
            return None
        try:
            latents = callback_kwargs["latents"]
            if self.family_name == "flux":
                latents = unpack_flux_latents(latents, self.geometry.height, self.geometry.width, pipe.vae_scale_factor)
            scale = self.vae_config.scaling_factor
            shift = self.vae_config.shift_factor or 0.0
            return self.previewer.to_image(latents / scale + shift)
        except Exception:  # a preview is optional: never let it break a generation
            log.exception("preview failed; continuing without previews")
            self.previewer = None
            return None


def run_job(job: Job, loaded, store, *, previewer=None, hooks=None) -> GenerationResult:
    """Make every image of `job` on `loaded` (a LoadedModel); save them when the request says so."""
    request = job.request
    family, entry = loaded.family, loaded.entry
    defaults = family.defaults_for(entry.variant, entry.path)
    geometry = resolve_size(request, defaults)
    pipe = loaded.pipeline_for(request.task)
    check_model_limits(pipe, family.name, geometry)

    result = GenerationResult(model=entry.name)
    started = time.perf_counter()
    base_seed = pick_seed(request.seed)
    result.clip_tokens = count_clip_tokens(getattr(pipe, family.clip_tokenizer, None), request.prompt)
    result.clip_tokens_dropped = max(0, result.clip_tokens - CLIP_WINDOW)
    if result.clip_tokens_dropped:
        result.warnings.append(
            f"prompt is {result.clip_tokens} CLIP tokens: CLIP reads the first {CLIP_WINDOW} and dropped "
            f"{result.clip_tokens_dropped}; T5 reads up to {defaults.max_sequence_length}")

    kwargs = family.call_kwargs(request, defaults)
    kwargs.update(height=geometry.height, width=geometry.width, output_type="pil",
                  num_images_per_prompt=request.batch_size)
    init_image = mask = None
    if request.task in ("img2img", "inpaint"):
        init_image = fit_image(request.image, geometry.width, geometry.height, request.resize_mode)
        kwargs.update(image=init_image, strength=request.strength)
    if request.task == "inpaint":
        mask = prepare_mask(request.mask, geometry.width, geometry.height, request.resize_mode, request.mask_blur)
        kwargs["mask_image"] = mask
        kwargs["image"] = fill_masked(init_image, mask, request.masked_content, base_seed)
        if request.inpaint_only_masked and mask.getbbox() is not None:  # diffusers cannot crop to nothing
            kwargs["padding_mask_crop"] = request.inpaint_padding
    if request.task == "img2img" and request.strength == 0:
        result.warnings.append("denoising strength 0: the input image is returned unchanged")

    steps = kwargs["num_inference_steps"]
    # what diffusers' get_timesteps runs for a strength below 1
    effective_steps = steps if request.task == "txt2img" else max(1, steps - int(steps - steps * request.strength))
    cfg_used = kwargs.get("true_cfg_scale", kwargs.get("guidance_scale") if family.name == "sd3" else 1.0)
    for batch in range(request.batch_count):
        seeds = [base_seed + batch * request.batch_size + i for i in range(request.batch_size)]
        stopped_at = None
        if request.task != "txt2img" and request.strength == 0:
            images = [init_image.copy() for _ in seeds]
        else:
            images, stopped_at = _run_pipeline(job, pipe, kwargs, seeds, batch, effective_steps, previewer,
                                               geometry, family.name, request.preview_every, hooks)
        for image, seed in zip(images, seeds):
            if mask is not None:
                image = paste_unmasked(image, init_image, mask)
            text = format_infotext(_infotext(request, defaults, loaded, geometry, steps, seed, cfg_used, kwargs,
                                             stopped_at))
            result.images.append(image)
            result.seeds.append(seed)
            result.infotexts.append(text)
            if request.save and store is not None:
                result.paths.append(_save(store, result, image, request, text, seed, entry.name))
        if job.cancel.interrupted:
            result.interrupted = True
            break
        job.cancel.clear_skip()
    result.seconds = time.perf_counter() - started
    return result


def _save(store, result: GenerationResult, image, request, text: str, seed: int, model: str):
    """Save one image; a failure (disk full, folder gone) is a warning, and the image stays in the result."""
    try:
        return store.save(image, task=request.task, infotext=text, seed=seed, model=model, prompt=request.prompt)
    except OSError as exc:
        result.warnings.append(f"image with seed {seed} could not be saved: {exc.strerror or exc}")
        log.warning("saving failed: %s", exc)
        return None


def _run_pipeline(job, pipe, kwargs, seeds, batch, total_steps, previewer, geometry, family_name, preview_every,
                  hooks=None):
    """(the images, the number of steps they got when an interrupt or skip stopped them early, else None)."""
    import torch

    reporter = StepReporter(job, total_steps=total_steps, batch=batch, previewer=previewer,
                            preview_every=preview_every, geometry=geometry, family_name=family_name,
                            vae_config=pipe.vae.config, hooks=hooks)
    # CPU generators: a seed gives the same noise on any device, and image i depends only on seeds[i].
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    with torch.inference_mode():
        out = pipe(**kwargs, generator=generators, callback_on_step_end=reporter,
                   callback_on_step_end_tensor_inputs=["latents"])
    planned = getattr(pipe, "num_timesteps", total_steps)  # the steps this call would have run
    stopped_early = reporter.stopped_at is not None and reporter.stopped_at < planned
    return list(out.images), reporter.stopped_at if stopped_early else None


def _infotext(request, defaults, loaded, geometry, steps, seed, cfg_used, kwargs, stopped_at=None) -> Infotext:
    """The infotext of one image. `steps` is the requested step count, written as "Steps" as A1111 does.

    An image stopped early (interrupt or skip after `stopped_at` steps) is a partly denoised picture, not
    what `steps` would make: "Steps" then holds the steps it got (an int, as every reader parses it)
    and "Steps requested" the count asked for, so the picture's own infotext does not claim the full
    count and a reader can still re-run the request as it was."""
    values: dict[str, Any] = {
        "Steps": steps if stopped_at is None else stopped_at,
        "Sampler": defaults.sampler,
        "Schedule type": defaults.schedule_type,
        "CFG scale": cfg_used if cfg_used is not None else 1,
        "Seed": seed,
        "Size": f"{geometry.width}x{geometry.height}",
        "Model hash": loaded.model_hash or None,
        "Model": loaded.entry.name,
    }
    if stopped_at is not None:
        values["Steps requested"] = steps
    if request.task != "txt2img":
        values["Denoising strength"] = request.strength
    if loaded.family.name == "flux" and kwargs.get("guidance_scale") and loaded.entry.variant == "flux-dev":
        values["Distilled CFG Scale"] = kwargs["guidance_scale"]
    if request.task == "inpaint":
        values["Mask blur"] = request.mask_blur
        if request.masked_content != "original":
            values["Masked content"] = request.masked_content
        if request.inpaint_only_masked:
            values["Inpaint area"] = "Only masked"
            values["Masked area padding"] = request.inpaint_padding
    if loaded.entry.demo:
        values["Model type"] = loaded.entry.label or "demo"
    values["Version"] = f"easel {__version__}"
    negative = request.negative_prompt if ("negative_prompt" in kwargs) else ""
    return Infotext.build(request.prompt, negative, values)
