"""Run one job on a loaded model: seeds, pipeline arguments, per-step progress and cancel, infotext, saving."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from app import __version__
from app.engine.jobs import RUNNING, GenerationResult, Job, Progress
from app.errors import InvalidRequest
from app.families.base import VariantDefaults
from app.addons.base import Prepared
from app.addons.prompt_tags import strip_lora_tags
from app.engine.stages import AFTER_ALL_BATCHES, STAGE_RUNNERS, StageRun, pass_sizes
from app.engine.task_inputs import TASK_INPUTS
from app.generation.infotext import Infotext, format_infotext, format_value
from app.generation.request import MAX_SEED, SIZE_MULTIPLE, GenerationRequest
from app.generation.tokens import CLIP_WINDOW, count_clip_tokens
from app.runtime.block_cache import set_block_cache
from app.runtime.compile import compile_note

log = logging.getLogger(__name__)

FIRST_PASS_SUFFIX = "-before-highres-fix"  # A1111's name for the copy saved before the hires pass


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


def check_model_limits(pipe, family, geometry: Geometry) -> None:
    """Sizes a particular model cannot take (SD3's position embedding has a maximum), named clearly."""
    limit = family.size_limit(pipe)
    if limit is None:
        return
    for field, value in (("width", geometry.width), ("height", geometry.height)):
        if value > limit:
            raise InvalidRequest(field, f"{value} is larger than this model allows ({limit} px at most)")


class StepReporter:
    """callback_on_step_end: reports progress, makes previews, and stops the pipeline when asked."""

    def __init__(self, job: Job, *, total_steps: int, batch: int, previewer, preview_every: int,
                 geometry: Geometry, unpack_latents, vae_config, hooks=None, stage=("", 0, 1), tile=(0, 0)):
        self.job, self.total_steps, self.batch = job, total_steps, batch
        self.stage, self.stage_index, self.total_stages = stage
        self.tile, self.total_tiles = tile
        self.previewer, self.preview_every = previewer, preview_every
        self.geometry, self.unpack_latents, self.vae_config = geometry, unpack_latents, vae_config
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
        if self.total_tiles:  # a tiled pass: each tile still to come is another call of total_steps
            eta += per_step * self.total_steps * (self.total_tiles - self.tile - 1)
        preview = self._preview(pipe, callback_kwargs, done)
        self.job.report(Progress(job_id=self.job.id, state=RUNNING, step=done, total_steps=self.total_steps,
                                 batch=self.batch, total_batches=self.job.request.batch_count,
                                 eta_seconds=eta, preview=preview, stage=self.stage, stage_index=self.stage_index,
                                 total_stages=self.total_stages, tile=self.tile, total_tiles=self.total_tiles))
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
            if self.unpack_latents is not None:  # FLUX: a sequence of patches, not a BCHW picture
                latents = self.unpack_latents(latents, self.geometry.height, self.geometry.width, pipe.vae_scale_factor)
            scale = self.vae_config.scaling_factor
            shift = self.vae_config.shift_factor or 0.0
            return self.previewer.to_image(latents / scale + shift)
        except Exception:  # a preview is optional: never let it break a generation
            log.exception("preview failed; continuing without previews")
            self.previewer = None
            return None


@dataclass
class BatchDraft:
    """One batch's pictures between its passes, with the infotext values the passes added."""

    batch: int
    seeds: list[int]
    images: list
    values: dict[str, Any]
    stopped_at: int | None  # where an interrupt or skip stopped the first pass
    stage_stopped: bool = False  # a later pass was stopped: the passes after it do not run


def run_job(job: Job, loaded, store, *, previewer=None, hooks=None, addons: Prepared | None = None,
            upscalers=None, load_model=None) -> GenerationResult:
    """Make every image of `job` on `loaded` (a LoadedModel); save them when the request says so.
    `addons`: what the job's add-ons (LoRAs...) prepared on the model: call kwargs, infotext, warnings.
    `upscalers`: () -> the engine's upscalers, for stages that upscale (hires fix).
    `load_model`: name -> LoadedModel with no add-ons, for stages that use another model (refine)."""
    addons = addons or Prepared()
    request = job.request
    family, entry = loaded.family, loaded.entry
    defaults = family.defaults_for(entry.variant, entry.path)
    geometry = resolve_size(request, defaults)
    pipe = loaded.pipeline_for(request.task, addons.components, addons.pipeline_kinds)
    for size in pass_sizes(request, geometry.width, geometry.height):
        check_model_limits(pipe, family, Geometry(*size))

    result = GenerationResult(model=entry.name)
    started = time.perf_counter()
    base_seed = pick_seed(request.seed)
    result.warnings.extend(addons.warnings)
    result.clip_tokens = count_clip_tokens(getattr(pipe, family.clip_tokenizer, None), strip_lora_tags(request.prompt))
    result.clip_tokens_dropped = max(0, result.clip_tokens - CLIP_WINDOW)
    if result.clip_tokens_dropped:
        result.warnings.append(
            f"prompt is {result.clip_tokens} CLIP tokens: CLIP reads the first {CLIP_WINDOW} and dropped "
            f"{result.clip_tokens_dropped}; T5 reads up to {defaults.max_sequence_length}")

    kwargs = family.call_kwargs(request, defaults)
    kwargs.update(height=geometry.height, width=geometry.width, output_type="pil",
                  num_images_per_prompt=request.batch_size)
    inputs = TASK_INPUTS[request.task](request, geometry.width, geometry.height, base_seed)
    kwargs.update(inputs.kwargs)
    kwargs.update(addons.call_kwargs)
    result.warnings.extend(inputs.warnings)
    result.warnings.extend(_drop_unaccepted_cfg(pipe, kwargs))
    result.extra_images.extend(addons.extra_images)

    steps = kwargs["num_inference_steps"]
    cfg_used = family.cfg_used(kwargs)
    block_cache = set_block_cache(pipe.transformer, request.first_block_cache or 0.0, steps)
    cache_values = {"First block cache": block_cache} if block_cache else {}
    passes = 1 + len(request.stages)

    def run_pipeline_for(batch):
        """The pipeline call of one batch's passes; `model`: another loaded model than the job's (refine)."""
        def run_pipeline(pipe_, kwargs_, seeds_, steps_run, size, stage=("first pass" if passes > 1 else "", 0, passes),
                         model=None, tile=(0, 0)):
            preview = previewer if model is None else (model.previewer if request.preview_every else None)
            return _run_pipeline(job, pipe_, kwargs_, seeds_, batch, steps_run, preview, Geometry(*size),
                                 (model or loaded).family.unpack_latents, request.preview_every, hooks, stage, tile)
        return run_pipeline

    def run_stages(draft: BatchDraft, stages) -> None:
        for index, stage in stages:
            if draft.stopped_at is not None or job.cancel.stop_current_batch():
                return  # interrupted or skipped: the batch keeps what its passes made so far
            run = StageRun(job=job, loaded=loaded, defaults=defaults, kwargs=kwargs, width=geometry.width,
                           height=geometry.height, batch=draft.batch, index=index, total=passes,
                           run_pipeline=run_pipeline_for(draft.batch), upscalers=upscalers or (lambda: []),
                           load_model=load_model)
            draft.images = STAGE_RUNNERS[stage.kind](run, stage, draft.images, draft.seeds)
            draft.values.update(run.values)
            draft.stage_stopped = draft.stage_stopped or run.stopped_at is not None
            if run.stopped_at is not None:
                return

    def finish(draft: BatchDraft) -> None:
        for image, seed in zip(draft.images, draft.seeds):
            text = format_infotext(_infotext(request, defaults, loaded, geometry, steps, seed, cfg_used, kwargs,
                                             draft.values, draft.stopped_at))
            result.images.append(image)
            result.seeds.append(seed)
            result.infotexts.append(text)
            if request.save and store is not None:
                result.paths.append(_save(store, result, image, request, text, seed, entry.name))

    staged = list(enumerate(request.stages, start=1))
    per_batch = [(i, s) for i, s in staged if s.kind not in AFTER_ALL_BATCHES]
    after_all = [(i, s) for i, s in staged if s.kind in AFTER_ALL_BATCHES]
    drafts: list[BatchDraft] = []
    for batch in range(request.batch_count):
        seeds = [base_seed + batch * request.batch_size + i for i in range(request.batch_size)]
        stopped_at = None
        if inputs.unchanged is not None:  # strength 0: nothing to denoise
            images = [inputs.unchanged.copy() for _ in seeds]
        else:
            first = kwargs
            if request.task == "txt2img" and (addons.components or addons.pipeline_kinds):
                first = {**kwargs, "latents": seed_noise(pipe, geometry, seeds)}
            called = time.perf_counter()
            images, stopped_at = run_pipeline_for(batch)(pipe, first, seeds, inputs.steps_run(steps),
                                                         (geometry.width, geometry.height))
            if getattr(loaded, "compile_pending", False):  # this call compiled the blocks: said once
                loaded.compile_pending = False
                result.warnings.append(compile_note(time.perf_counter() - called))
                log.info(result.warnings[-1])
        images = [inputs.finish(image) for image in images]
        draft = BatchDraft(batch, seeds, images, {**inputs.infotext, **addons.infotext, **cache_values}, stopped_at)
        if request.stages and getattr(request.stages[0], "save_first_pass", False) and request.save \
                and store is not None and stopped_at is None:
            for image, seed in zip(images, seeds):
                text = format_infotext(_infotext(request, defaults, loaded, geometry, steps, seed, cfg_used,
                                                 kwargs, draft.values))
                _save(store, result, image, request, text, seed, entry.name, suffix=FIRST_PASS_SUFFIX)
        run_stages(draft, per_batch)
        if after_all:
            drafts.append(draft)
        else:
            finish(draft)
        if job.cancel.interrupted:
            result.interrupted = True
            break
        job.cancel.clear_skip()
    for draft in drafts:  # the stages that load another model, once for the whole job
        if not job.cancel.interrupted and not draft.stage_stopped:
            run_stages(draft, after_all)
            job.cancel.clear_skip()
        finish(draft)
    result.interrupted = result.interrupted or job.cancel.interrupted
    result.seconds = time.perf_counter() - started
    return result


def seed_noise(pipe, geometry: Geometry, seeds: list[int]):
    """The starting noise the plain txt2img pipeline draws for `seeds`, for an add-on's pipeline to start
    from: FLUX's ControlNet and control pipelines draw from the seed's generator for the control picture's
    latents first, so the same seed would otherwise give other noise than without the unit."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]  # one image per seed, as _run_pipeline
    noise = pipe.prepare_latents(len(seeds), pipe.vae.config.latent_channels, geometry.height, geometry.width,
                                 pipe.text_encoder.dtype, pipe._execution_device, generators)
    return noise[0] if isinstance(noise, tuple) else noise


def _drop_unaccepted_cfg(pipe, kwargs: dict[str, Any]) -> list[str]:
    """True CFG left out where the task's pipeline has none (FLUX's ControlNet img2img and inpaint)."""
    import inspect

    if "true_cfg_scale" not in kwargs or "true_cfg_scale" in inspect.signature(pipe.__call__).parameters:
        return []
    cfg = kwargs.pop("true_cfg_scale")
    kwargs.pop("negative_prompt", None)
    return [f"CFG scale {format_value(cfg)} is not available with {type(pipe).__name__}: it ran without true CFG "
            "(the negative prompt has no effect)"]


def _save(store, result: GenerationResult, image, request, text: str, seed: int, model: str, suffix: str = ""):
    """Save one image; a failure (disk full, folder gone) is a warning, and the image stays in the result."""
    try:
        return store.save(image, task=request.task, infotext=text, seed=seed, model=model, prompt=request.prompt,
                          suffix=suffix)
    except OSError as exc:
        result.warnings.append(f"image with seed {seed} could not be saved: {exc.strerror or exc}")
        log.warning("saving failed: %s", exc)
        return None


def _run_pipeline(job, pipe, kwargs, seeds, batch, total_steps, previewer, geometry, unpack_latents, preview_every,
                  hooks=None, stage=("", 0, 1), tile=(0, 0)):
    """(the images, the number of steps they got when an interrupt or skip stopped them early, else None)."""
    import torch

    reporter = StepReporter(job, total_steps=total_steps, batch=batch, previewer=previewer,
                            preview_every=preview_every, geometry=geometry, unpack_latents=unpack_latents,
                            vae_config=pipe.vae.config, hooks=hooks, stage=stage, tile=tile)
    # CPU generators: a seed gives the same noise on any device, and image i depends only on seeds[i].
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    with torch.inference_mode():
        out = pipe(**kwargs, generator=generators, callback_on_step_end=reporter,
                   callback_on_step_end_tensor_inputs=["latents"])
    planned = getattr(pipe, "num_timesteps", total_steps)  # the steps this call would have run
    stopped_early = reporter.stopped_at is not None and reporter.stopped_at < planned
    return list(out.images), reporter.stopped_at if stopped_early else None


def _infotext(request, defaults, loaded, geometry, steps, seed, cfg_used, kwargs, task_values,
              stopped_at=None) -> Infotext:
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
    values.update(task_values)
    values.update(loaded.family.infotext_extras(loaded.entry.variant, kwargs))
    if loaded.entry.demo:
        values["Model type"] = loaded.entry.label or "demo"
    values["Version"] = f"easel {__version__}"
    negative = request.negative_prompt if ("negative_prompt" in kwargs) else ""
    return Infotext.build(request.prompt, negative, values)
